"""Online signature verification: local features, the enrolment protocol and scoring.

**Local features** (:func:`local_features`), the ones DTW verifiers in the field use
(e.g. Fierrez-Aguilar et al. 2005; Kholmatov and Yanikoglu 2005): position, velocity,
pressure and its derivative, the path's tangent angle, and the pen state. Every
continuous feature is z-scored over the signature, which removes what a session sets
(tablet offset and scale, pressure gain and baseline) and keeps the dynamics.

**Protocol** (:func:`signature_protocol`). For every evaluation writer the first ``k``
genuine signatures (in recording order: the first session, as at enrolment) are the
references; the writer's other genuine signatures are genuine queries; the writer's
skilled forgeries are skilled queries; one genuine signature of every other evaluation
writer (their first query) is a random-impostor query. Evaluation writers must not be
seen in pretraining; that is the caller's split (different generator seeds here).

**Scoring** (:func:`score_protocol`). Every verifier is a distance between two
signatures (DTW over frame features, or a distance between pooled embeddings). A query
``q`` claimed as writer ``w`` scores ``-mean_r d(q, r) / mean_{r != r'} d(r, r')``: its
mean distance to ``w``'s references divided by the references' own mean pairwise
distance, the per-writer normalisation that makes one threshold fit writers of
different variability. The EER of genuine against random-impostor scores and of
genuine against skilled-forgery scores is :func:`cpc.eval.verification.equal_error_rate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cpc.eval.verification import equal_error_rate

__all__ = [
    "LOCAL_FEATURES",
    "SignatureProtocol",
    "VerificationScores",
    "local_features",
    "score_protocol",
    "signature_protocol",
]

LOCAL_FEATURES = ("x", "y", "vx", "vy", "pressure", "dpressure", "cos", "sin", "pen_down")
"""Columns of :func:`local_features`."""

_X, _Y, _P, _PEN = 0, 1, 2, 3  # input channels (cpc.data.corpora.pen.CHANNELS order)


def _zscore(v: np.ndarray) -> np.ndarray:
    std = v.std(axis=0)
    return (v - v.mean(axis=0)) / np.where(std < 1e-8, 1.0, std)


def local_features(sample: np.ndarray, sample_rate: float = 100.0) -> np.ndarray:
    """Local features of one pen stream, z-scored over the signature where continuous.

    Velocities and the pressure derivative are central differences (``np.gradient``)
    in units per second; the tangent angle is given as ``cos, sin`` of the velocity's
    direction, damped to zero when the pen is nearly still (speed below 2% of the
    signature's median speed), where the direction is noise.

    Args:
        sample: A stream with channels ``x, y, pressure, pen_down, ...`` (the order of
            :data:`cpc.data.corpora.pen.CHANNELS` and of SVC2004's reader); further
            channels (tilt) are ignored: they are set by the session, not the writer.
        sample_rate: Samples per second.

    Returns:
        ``(t, 9)`` float32 with columns :data:`LOCAL_FEATURES`.

    """
    s = np.asarray(sample, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 4 or len(s) < 2:
        raise ValueError(f"sample must be (t >= 2, c >= 4), got {s.shape}")
    xy = s[:, [_X, _Y]]
    vel = np.gradient(xy, axis=0) * sample_rate  # (t, 2)
    dp = np.gradient(s[:, _P]) * sample_rate
    speed = np.linalg.norm(vel, axis=1)
    floor = 0.02 * np.median(speed) + 1e-9
    direction = vel / np.sqrt(speed**2 + floor**2)[:, None]  # (t, 2): cos, sin
    continuous = _zscore(np.column_stack([xy, vel, s[:, _P], dp]))  # (t, 6)
    pen = (s[:, _PEN] > 0.5).astype(np.float64)
    return np.column_stack([continuous, direction, pen]).astype(np.float32)


@dataclass(frozen=True)
class SignatureProtocol:
    """Who is enrolled with what, and which queries are scored against whom.

    Attributes:
        references: Per evaluation writer, indices (into the genuine list) of references.
        genuine: ``(query, writer)`` pairs of genuine queries.
        impostor: ``(query, writer)`` pairs of random impostors (indices into genuine).
        skilled: ``(forgery, writer)`` pairs (indices into the forgery list).

    """

    references: dict[int, np.ndarray]
    genuine: list[tuple[int, int]]
    impostor: list[tuple[int, int]]
    skilled: list[tuple[int, int]]


def signature_protocol(
    writers: Sequence[int] | np.ndarray,
    forgery_writers: Sequence[int] | np.ndarray,
    *,
    references: int = 4,
) -> SignatureProtocol:
    """Build the enrolment protocol described in the module docstring.

    Args:
        writers: Writer of each genuine signature, in recording order per writer.
        forgery_writers: Target writer of each skilled forgery.
        references: ``k``, references per writer.

    Shape:
        writers: ``(n,)``; forgery_writers: ``(m,)``.

    """
    ids = np.asarray(writers)
    fids = np.asarray(forgery_writers)
    if references < 1:
        raise ValueError(f"references must be positive, got {references}")
    refs, queries = {}, {}
    for w in np.unique(ids).tolist():
        members = np.flatnonzero(ids == w)
        if len(members) <= references:
            raise ValueError(f"writer {w} has {len(members)} signatures, need > {references}")
        refs[w], queries[w] = members[:references], members[references:]
    genuine = [(int(q), w) for w, qs in queries.items() for q in qs]
    impostor = [(int(queries[o][0]), w) for w in refs for o in refs if o != w]
    skilled = [(int(f), int(fids[f])) for f in range(len(fids)) if int(fids[f]) in refs]
    return SignatureProtocol(refs, genuine, impostor, skilled)


@dataclass
class VerificationScores:
    """Scores (higher: more likely genuine) and EERs of one verifier."""

    genuine: np.ndarray
    impostor: np.ndarray
    skilled: np.ndarray

    @property
    def eer(self) -> float:
        """EER against random impostors."""
        return equal_error_rate(self.genuine, self.impostor)[0]

    @property
    def skilled_eer(self) -> float:
        """EER against skilled forgeries."""
        return equal_error_rate(self.genuine, self.skilled)[0]


PairDistance = Callable[[list[tuple[int, int]], list[tuple[int, int]]], np.ndarray]
"""``distances(left, right)``: distance of item ``left[i]`` to item ``right[i]``. Items are
``(kind, index)`` with kind 0 a genuine signature and 1 a forgery."""


def score_protocol(protocol: SignatureProtocol, distances: PairDistance) -> VerificationScores:
    """Score every query of ``protocol`` with per-writer normalised mean distances.

    All the distances needed (queries to references, references to references) are
    asked for in one call, so a batched DTW sees them together.
    """
    left: list[tuple[int, int]] = []
    right: list[tuple[int, int]] = []
    for refs in protocol.references.values():
        for a in range(len(refs)):
            for b in range(a + 1, len(refs)):
                left.append((0, int(refs[a])))
                right.append((0, int(refs[b])))
    queries = [
        (kind, q, w)
        for kind, pairs in ((0, protocol.genuine), (0, protocol.impostor), (1, protocol.skilled))
        for q, w in pairs
    ]
    for kind, q, w in queries:
        for r in protocol.references[w]:
            left.append((kind, q))
            right.append((0, int(r)))
    dist = np.asarray(distances(left, right), dtype=np.float64)
    pos = 0
    spread = {}
    for w, refs in protocol.references.items():
        n = len(refs) * (len(refs) - 1) // 2
        spread[w] = dist[pos : pos + n].mean() if n else 1.0
        pos += n
    scores = []
    for _, _, w in queries:
        k = len(protocol.references[w])
        scores.append(-dist[pos : pos + k].mean() / max(spread[w], 1e-12))
        pos += k
    out = np.asarray(scores)
    n_g, n_i = len(protocol.genuine), len(protocol.impostor)
    return VerificationScores(out[:n_g], out[n_g : n_g + n_i], out[n_g + n_i :])
