"""Writer (or speaker) verification: genuine vs impostor similarity and the equal error rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cpc.eval.probes import ArrayLike, _to_tensor


@dataclass
class EERResult:
    """Outcome of a verification experiment.

    Attributes:
        eer: Equal error rate against random impostors (other identities).
        threshold: Cosine-similarity threshold at the EER (accept if score >= it).
        genuine: Scores of genuine attempts.
        impostor: Scores of random-impostor attempts.
        num_ids: Identities that were enrolled and scored.
        skilled_eer: EER of genuine attempts against skilled forgeries, if given.
        skilled_threshold: Threshold at ``skilled_eer``.
        skilled: Scores of the skilled forgeries.

    """

    eer: float
    threshold: float
    genuine: np.ndarray
    impostor: np.ndarray
    num_ids: int
    skilled_eer: float | None = None
    skilled_threshold: float | None = None
    skilled: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """Summarise as JSON-friendly values (without the raw scores)."""
        return {
            "eer": self.eer,
            "threshold": self.threshold,
            "num_ids": self.num_ids,
            "num_genuine": len(self.genuine),
            "num_impostor": len(self.impostor),
            "skilled_eer": self.skilled_eer,
            "skilled_threshold": self.skilled_threshold,
        }


def equal_error_rate(genuine: ArrayLike, impostor: ArrayLike) -> tuple[float, float]:
    """Equal error rate of a score-based verifier that accepts when ``score >= t``.

    The false acceptance rate ``FAR(t)`` (impostors accepted) and false rejection rate
    ``FRR(t)`` (genuine attempts rejected) are evaluated exactly at every distinct score
    and above the largest one. ``FRR - FAR`` never decreases with ``t``; between the last
    threshold where it is negative and the first where it is not, both rates are
    interpolated linearly and the EER is where they meet.

    Args:
        genuine: Scores of genuine attempts.
        impostor: Scores of impostor attempts.

    Returns:
        ``(eer, threshold)``.

    Shape:
        - genuine: ``(n_g,)``, impostor: ``(n_i,)``

    """
    gen = np.sort(np.asarray(genuine, dtype=np.float64).reshape(-1))
    imp = np.sort(np.asarray(impostor, dtype=np.float64).reshape(-1))
    if len(gen) == 0 or len(imp) == 0:
        raise ValueError("equal_error_rate needs genuine and impostor scores")
    thr = np.append(np.unique(np.concatenate([gen, imp])), np.inf)
    far = 1.0 - np.searchsorted(imp, thr, side="left") / len(imp)
    frr = np.searchsorted(gen, thr, side="left") / len(gen)
    gap = frr - far  # non-decreasing in thr, ends at 1
    i = int(np.argmax(gap >= 0))
    if i == 0:
        return float(far[0]), float(thr[0])
    alpha = -gap[i - 1] / (gap[i] - gap[i - 1])
    eer = far[i - 1] + alpha * (far[i] - far[i - 1])
    hi = thr[i] if np.isfinite(thr[i]) else thr[i - 1]
    return float(eer), float(thr[i - 1] + alpha * (hi - thr[i - 1]))


def verification_eer(
    embeddings: ArrayLike,
    ids: Sequence[Any] | np.ndarray,
    *,
    enrol_per_id: int = 3,
    seed: int = 0,
    forgeries: ArrayLike | None = None,
    forgery_ids: Sequence[Any] | np.ndarray | None = None,
) -> EERResult:
    """Writer (or speaker) verification with cosine scores against enrolled templates.

    Protocol: for every identity with more than ``enrol_per_id`` samples, draw
    ``enrol_per_id`` of them at random as references; the template is the mean of the
    L2-normalised references. Genuine scores compare the template with that identity's
    remaining samples; random-impostor scores compare it with every sample of every
    other identity (identities too small to enrol still serve as impostors). Optional
    skilled forgeries of an identity (forgeries of its signature) are scored against its
    template and give a separate ``skilled_eer`` against the same genuine scores.

    Args:
        embeddings: One embedding per sample (e.g. pooled CPC features).
        ids: Identity of each sample.
        enrol_per_id: References per identity.
        seed: Seed for choosing the references.
        forgeries: Embeddings of skilled forgeries.
        forgery_ids: Identity each forgery imitates.

    Returns:
        An :class:`EERResult`.

    Shape:
        - embeddings: ``(n, d)``, ids: ``(n,)``
        - forgeries: ``(m, d)``, forgery_ids: ``(m,)``

    """
    if enrol_per_id < 1:
        raise ValueError(f"enrol_per_id must be positive, got {enrol_per_id}")
    emb = F.normalize(_to_tensor(embeddings, torch.float64), dim=-1).numpy()
    id_arr = np.asarray(ids)
    if emb.ndim != 2 or len(emb) != len(id_arr):
        raise ValueError("embeddings must be (n, d) with one id per row")
    values, codes = np.unique(id_arr, return_inverse=True)
    codes = codes.reshape(-1)
    rng = np.random.default_rng(seed)
    enrolled, templates, probes = [], [], []
    for c in range(len(values)):
        members = rng.permutation(np.flatnonzero(codes == c))
        if len(members) > enrol_per_id:
            enrolled.append(c)
            templates.append(emb[members[:enrol_per_id]].mean(0))
            probes.append(members[enrol_per_id:])
    if len(enrolled) < 2:
        raise ValueError(f"need two identities with more than {enrol_per_id} samples")
    tmpl = np.stack(templates)
    tmpl /= np.linalg.norm(tmpl, axis=1, keepdims=True).clip(1e-12)  # (u, d)
    scores = emb @ tmpl.T  # (n, u)
    genuine = np.concatenate([scores[p, j] for j, p in enumerate(probes)])
    impostor = np.concatenate([scores[codes != c, j] for j, c in enumerate(enrolled)])
    eer, threshold = equal_error_rate(genuine, impostor)
    result = EERResult(eer, threshold, genuine, impostor, num_ids=len(enrolled))
    if forgeries is not None:
        if forgery_ids is None:
            raise ValueError("forgeries need forgery_ids")
        forg = F.normalize(_to_tensor(forgeries, torch.float64), dim=-1).numpy()
        fids = np.asarray(forgery_ids)
        fscores = forg @ tmpl.T  # (m, u)
        skilled = np.concatenate([fscores[fids == values[c], j] for j, c in enumerate(enrolled)])
        if len(skilled):
            result.skilled = skilled
            result.skilled_eer, result.skilled_threshold = equal_error_rate(genuine, skilled)
    return result
