"""The prediction core: InfoNCE over prediction offsets, shared by every modality.

The core sees latents ``z`` of shape ``(b, s, p, d)`` and predictions of shape
``(b, s, p, k, d)`` made from the context at each position, where ``s`` is the prediction
axis (time steps, or grid rows) and ``p`` the positions sharing it (1 for sequences, grid
columns for images). The prediction ``pred[b, i, p, j]`` is a guess of ``z[b, i + k_j, p]``
with ``k_j = k_min + j``. It does not know which modality it is looking at.

Terms, in the names used throughout this module:

- *pool*: every valid latent of the batch, flattened in ``(b, s, p)`` order. Padding
  (steps at or past a sequence's length) is never in the pool, so it can never be a
  positive, a negative or an anchor.
- *anchor*: a valid position ``(b, i, p)`` with at least one valid target, i.e.
  ``i + k_min < length[b]``. The pair (anchor, offset) is a loss term when
  ``i + k < length[b]``.
- *candidates*: the negatives an anchor's prediction is scored against.

Negative modes (van den Oord et al. 2018; CPC_audio; CPC v2):

- ``"batch"``: ``num_negatives`` latents drawn uniformly from the whole pool (CPC_audio's
  default). Combine with a same-speaker batch sampler to get same-speaker negatives.
- ``"sequence"``: drawn uniformly from the valid latents of the anchor's own sequence
  (for grids: its own image, every row and column).
- ``"mixed"``: ``round(sequence_fraction * num_negatives)`` drawn as in ``"sequence"``,
  the rest as in ``"batch"`` (same-voice negatives force content, other-voice negatives
  keep speaker information; ``cpc suite`` measures the trade).
- ``"all"``: every latent in the pool is a candidate (a full softmax over the batch, as
  CPC v2 does for images); the positive is the one correct class among them.

Positive exclusion: in the sampled modes one set of negatives is drawn per anchor and
shared by all its offsets, so a draw equal to *any* of the anchor's own targets
``z[b, i + k, p]`` (for every offset in range) is redrawn. Each term therefore scores its
positive against exactly ``num_negatives`` other latents. (Draws are redrawn up to
``max_redraws`` times; a draw that still collides, which needs a pool barely larger than
the anchor's own targets, is masked out of the softmax instead.) In ``"all"`` mode the
positive appears once, as the target class. The same latent at another position (a
repeated frame of silence) is a legitimate negative: exclusion is by index, not by value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cpc.losses.gather import gather_pool

NegativeMode = Literal["batch", "sequence", "mixed", "all"]
ScoreStrategy = Literal["auto", "gather", "matmul", "sequence"]
NEGATIVE_MODES: tuple[str, ...] = ("batch", "sequence", "mixed", "all")
#: ``strategy="auto"`` scores against the whole pool when it holds at most this many
#: times as many latents as an anchor has candidates (see ``InfoNCE._score_candidates``).
#: Measured (benchmarks/, speech shapes, pool of 1008 latents, 12 offsets): the two
#: strategies cost the same near 256 negatives (a ratio of 3.8) and "matmul" was twice
#: as fast at 512 (ratio 1.9).
MATMUL_POOL_RATIO = 3
SCORE_STRATEGIES: tuple[str, ...] = ("auto", "gather", "matmul", "sequence")


@dataclass
class Layout:
    """Where anchors, positives and candidates live in the flattened batch.

    Shape:
        pool: (m,) flat ``(b, s, p)`` indices of the valid latents.
        anchors: (a,) flat indices of the anchors into ``(b, s, p)``.
        targets: (a, k) pool index of each anchor's positive at each offset (0 where
            the term is invalid; see ``valid``).
        valid: (a, k) whether the term (anchor, offset) exists.
        seq_start, seq_count: (a,) the pool range of the anchor's own sequence.
        target_stride: when the valid targets of every anchor are ``targets[:, 0] +
            j * target_stride`` for ``j`` below their count (as :func:`build_layout`
            makes them: consecutive offsets, ``p`` positions apart), that stride; it
            lets a draw be checked against the positives by arithmetic. None: compare.
    """

    pool: Tensor
    anchors: Tensor
    targets: Tensor
    valid: Tensor
    seq_start: Tensor
    seq_count: Tensor
    target_stride: int | None = None


@dataclass
class InfoNCEOutput:
    """The result of the prediction core.

    Shape:
        loss: () mean over offsets of the per-offset mean loss.
        loss_per_offset: (k,) mean InfoNCE loss of every offset.
        accuracy: (k,) fraction of terms whose positive scores strictly above every
            candidate negative, per offset.
        count: (k,) number of loss terms per offset.
    """

    loss: Tensor
    loss_per_offset: Tensor
    accuracy: Tensor
    count: Tensor


def step_mask(lengths: Tensor | None, b: int, s: int, device: torch.device) -> Tensor:
    """Boolean mask of valid steps.

    Shape:
        lengths: (b,) valid steps per sequence, or None (all valid).
        returns: (b, s)
    """
    steps = torch.arange(s, device=device)
    if lengths is None:
        return torch.ones(b, s, dtype=torch.bool, device=device)
    return steps[None, :] < lengths.to(device)[:, None]


def build_layout(
    lengths: Tensor | None, b: int, s: int, p: int, offsets: Tensor, consecutive: bool = False
) -> Layout:
    """Index the anchors, their positives and their sequence's pool range.

    Args:
        lengths: (b,) valid steps along ``s`` per sequence, or None.
        b, s, p: the latent grid.
        offsets: (k,) the prediction offsets, increasing.
        consecutive: the offsets are consecutive integers (as InfoNCE's): the layout
            then records its ``target_stride`` (reading them would wait for the device).

    """
    device = offsets.device
    valid_bs = step_mask(lengths, b, s, device)  # (b, s)
    valid_flat = valid_bs[:, :, None].expand(b, s, p).reshape(-1)  # (b s p)
    pool = valid_flat.nonzero().squeeze(1)
    pool_pos = torch.cumsum(valid_flat.long(), 0) - 1  # flat index -> pool index
    seq_len = valid_bs.sum(1)  # (b,)

    step = torch.arange(s, device=device)[None, :, None].expand(b, s, p)
    is_anchor = step + offsets[0] < seq_len[:, None, None]  # (b, s, p)
    # flat (b s p) indices, increasing; their step and sequence by arithmetic (boolean
    # masks would each wait for the device to count the anchors again)
    anchors = is_anchor.reshape(-1).nonzero().squeeze(1)
    a_step, a_seq = (anchors // p) % s, anchors // (s * p)

    target_step = a_step[:, None] + offsets[None, :]  # (a, k)
    valid = target_step < seq_len[a_seq][:, None]
    target_flat = anchors[:, None] + offsets[None, :] * p
    targets = torch.where(valid, pool_pos[target_flat.clamp(max=b * s * p - 1)], 0)

    counts = seq_len * p
    starts = torch.cumsum(counts, 0) - counts
    stride = p if consecutive else None
    return Layout(pool, anchors, targets, valid, starts[a_seq], counts[a_seq], stride)


def sample_candidates(
    layout: Layout,
    num_negatives: int,
    mode: NegativeMode,
    pool_size: int,
    pool_offset: int = 0,
    generator: torch.Generator | None = None,
    max_redraws: int = 10,
    num_sequence: int = 0,
) -> Tensor:
    """Draw ``num_negatives`` pool indices per anchor, excluding the anchor's positives.

    Args:
        layout: from :func:`build_layout`.
        mode: ``"batch"`` (the whole pool), ``"sequence"`` (the anchor's own sequence)
            or ``"mixed"`` (the first ``num_sequence`` columns from the anchor's
            sequence, the others from the whole pool).
        pool_size: size of the pool to draw from in ``"batch"`` mode (larger than the
            local pool when candidates are gathered across processes).
        pool_offset: where this process's pool starts in the gathered pool.

    Returns:
        (a, n) long tensor of pool indices; ``-1`` marks a draw that kept colliding with
        a positive (only possible for tiny pools) and must be masked.

    """
    a = layout.anchors.numel()
    device = layout.anchors.device
    positives = torch.where(layout.valid, layout.targets + pool_offset, -1)  # (a, k)

    from_own = torch.arange(num_negatives, device=device) < num_sequence  # (n,) "mixed"

    def draw(rows: Tensor) -> Tensor:
        u = torch.rand(rows.numel(), num_negatives, generator=generator, device=device)
        if mode == "batch":
            return (u * pool_size).long().clamp(max=pool_size - 1)
        start = layout.seq_start[rows, None] + pool_offset
        count = layout.seq_count[rows, None]
        own = start + (u * count).long().clamp(max=count - 1)
        if mode == "sequence":
            return own
        return torch.where(from_own, own, (u * pool_size).long().clamp(max=pool_size - 1))

    hits = _positive_hits(layout, positives, pool_offset)
    rows = torch.arange(a, device=device)
    idx = draw(rows)
    for _ in range(max_redraws):
        hit = hits(idx)
        bad_rows = hit.any(1).nonzero().squeeze(1)  # one wait for the device per round
        if bad_rows.numel() == 0:
            return idx
        fresh = draw(bad_rows)
        idx[bad_rows] = torch.where(hit[bad_rows], fresh, idx[bad_rows])
    return idx.masked_fill(hits(idx), -1)


def _positive_hits(
    layout: Layout, positives: Tensor, pool_offset: int
) -> Callable[[Tensor], Tensor]:
    """A function: (a, n) draws -> (a, n) whether each is one of its anchor's positives."""
    stride = layout.target_stride
    if stride is None:
        # (a, n, k) comparison against every target
        return lambda idx: (idx[:, :, None] == positives[:, None, :]).any(-1)
    # the positives are first, first + stride, ... (count of them): one range test per
    # draw instead of k comparisons
    first = (layout.targets[:, 0] + pool_offset)[:, None]
    span = (layout.valid.sum(1) * stride)[:, None]

    def hits(idx: Tensor) -> Tensor:
        delta = idx - first
        hit = (delta >= 0) & (delta < span)
        return hit if stride == 1 else hit & (delta % stride == 0)

    return hits


class _ScoreSampled(torch.autograd.Function):
    """Scores of each anchor's predictions against its own sampled negatives.

    ``scores[a, k, n] = q[a, k] · pool[candidates[a, n]]``, computed a chunk of anchors at
    a time: the ``(chunk, n, d)`` negatives of one chunk are gathered into one reused
    buffer and scored for every offset with one batched product, so the full
    ``(a, n, d)`` tensor never exists. Backward gathers each chunk again and scatters its
    gradient into the pool with ``index_add_``. Same values as
    ``torch.bmm(q, pool[candidates].transpose(1, 2))``.

    Shape:
        q: (a, k, d); pool: (m, d); candidates: (a, n) valid pool indices -> (a, k, n)
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        q: Tensor,
        pool: Tensor,
        candidates: Tensor,
        chunk: int,
    ) -> Tensor:
        a, k, d = q.shape
        n = candidates.shape[1]
        scores = q.new_empty(a, k, n)
        buffer = pool.new_empty(min(chunk, a) * n, d)  # one chunk's negatives, reused
        for lo in range(0, a, chunk):
            hi = min(lo + chunk, a)
            idx = candidates[lo:hi].reshape(-1)
            negatives = torch.index_select(pool, 0, idx, out=buffer[: idx.numel()])
            # key: per anchor, (k, d) predictions x (d, n) negatives
            torch.bmm(q[lo:hi], negatives.view(-1, n, d).transpose(1, 2), out=scores[lo:hi])
        ctx.save_for_backward(q, pool, candidates)
        ctx.chunk = chunk  # type: ignore[attr-defined]
        return scores

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, d_scores: Tensor
    ) -> tuple[Tensor | None, ...]:
        q, pool, candidates = ctx.saved_tensors  # type: ignore[attr-defined]
        chunk: int = ctx.chunk  # type: ignore[attr-defined]
        need_q, need_pool = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
        a, _, d = q.shape
        n = candidates.shape[1]
        d_scores = d_scores.contiguous()
        d_q = torch.empty_like(q) if need_q else None
        d_pool = torch.zeros_like(pool) if need_pool else None
        buffer = pool.new_empty(min(chunk, a) * n, d)  # negatives, then their gradient
        for lo in range(0, a, chunk):
            hi = min(lo + chunk, a)
            idx = candidates[lo:hi].reshape(-1)
            rows = buffer[: idx.numel()]
            if d_q is not None:
                torch.index_select(pool, 0, idx, out=rows)
                torch.bmm(d_scores[lo:hi], rows.view(-1, n, d), out=d_q[lo:hi])  # (c, k, d)
            if d_pool is not None:
                d_neg = rows.view(-1, n, d)  # (c, n, d)
                torch.bmm(d_scores[lo:hi].transpose(1, 2), q[lo:hi], out=d_neg)
                d_pool.index_add_(0, idx, rows)
        return d_q, d_pool, None, None


def _score_own_sequence(pred: Tensor, z: Tensor, layout: Layout, candidates: Tensor) -> Tensor:
    """Scores of each anchor's predictions against candidates from its own sequence.

    One batched product per sequence, ``(s p k, d) @ (d, s p)``: every prediction
    against every latent of its sequence, then the anchors' rows and their candidates'
    columns are picked. Only for candidates that all lie in the anchor's own sequence
    (``negatives="sequence"``): a pool index ``i`` of sequence ``j`` is the latent
    ``i - seq_start`` of that sequence, because the valid steps are a prefix. Larger
    products than ``"gather"``'s per-anchor ``(k, d) @ (d, c)``, and no gathered
    ``(a, c, d)`` negatives forward or scattered gradient backward.

    Shape:
        pred: (b, s, p, k, d); z: (b, s, p, d); candidates: (a, c) pool indices
        (entries outside the anchor's sequence must be masked by the caller)
        -> (a, k, c)
    """
    b, s, p, k, d = pred.shape
    length = s * p
    # key: per sequence, (s p k) predictions x (s p) latents
    scores = torch.bmm(pred.reshape(b, length * k, d), z.reshape(b, length, d).transpose(1, 2))
    scores = scores.view(b * length, k, length).index_select(0, layout.anchors)  # (a, k, s p)
    local = (candidates - layout.seq_start[:, None]).clamp(min=0, max=length - 1)
    return scores.gather(2, local[:, None, :].expand(-1, k, -1))


class InfoNCE(nn.Module):
    """InfoNCE over ``num_offsets`` prediction offsets ``k_min .. k_min + num_offsets - 1``.

    For the term (anchor ``(b, i, p)``, offset ``k``) with prediction ``q`` and positive
    ``z+ = z[b, i + k, p]``, the loss is the cross-entropy of picking ``z+`` among
    ``{z+} ∪ negatives`` with logits ``q·z / temperature`` (van den Oord et al. 2018,
    eq. 4). With all scores equal it is ``log(1 + N)``.

    Args:
        num_offsets: how many offsets ``K`` are predicted (CPC paper speech: 12;
            CPC v2 images: up to 5 rows ahead).
        k_min: the first offset. 1 for sequences; 2 for grids of 50%-overlapping patches,
            whose next row shares pixels with the current one.
        num_negatives: negatives per anchor in the sampled modes (CPC_audio: 128).
        negatives: ``"batch"``, ``"sequence"``, ``"mixed"`` or ``"all"`` (see the module
            docstring).
        sequence_fraction: ``"mixed"`` only: the fraction of the negatives drawn from the
            anchor's own sequence (rounded to a whole number of draws).
        temperature: logits are divided by it (1.0 in the CPC paper).
        gather_distributed: draw candidates from the latents of every process (needs an
            initialised process group; without one this is a no-op).
        strategy: how sampled negatives are scored. ``"gather"`` gathers the ``(a, n, d)``
            negatives and scores every offset against them with one batched product;
            ``"matmul"`` scores every prediction against the whole pool with one matrix
            product and gathers the ``(a, k, n)`` scores; ``"sequence"`` (only with
            ``negatives="sequence"``, whose candidates all lie in the anchor's own
            sequence) scores every prediction against its own sequence's latents, one
            product per sequence, and gathers. ``"auto"`` picks by cost.
        max_redraws: redraw rounds for negatives that collide with a positive.
        chunk_elements: ``"gather"`` works on chunks of anchors whose gathered negatives
            hold about this many values (the default, 2**21, is 8 MB in float32: it stays
            in the last-level cache; on the 2-core benchmark machine 2**19 to 2**21 ran
            within 10% of each other, 2**22 15% slower). It changes speed and memory
            only, never the result.

    Shape:
        pred: (b, s, p, k, d) predictions of ``z[:, i + k]`` made at every position.
        z: (b, s, p, d) latents.
        lengths: (b,) valid steps along ``s``, or None.

    """

    def __init__(
        self,
        num_offsets: int,
        k_min: int = 1,
        num_negatives: int = 128,
        negatives: NegativeMode = "batch",
        temperature: float = 1.0,
        gather_distributed: bool = False,
        sequence_fraction: float = 0.5,
        strategy: ScoreStrategy = "auto",
        max_redraws: int = 10,
        chunk_elements: int = 1 << 21,
    ) -> None:
        super().__init__()
        if num_offsets < 1:
            raise ValueError(f"num_offsets must be >= 1, got {num_offsets}")
        if k_min < 1:
            raise ValueError(f"k_min must be >= 1 (k=0 would predict the input), got {k_min}")
        if negatives not in NEGATIVE_MODES:
            raise ValueError(f"negatives must be one of {NEGATIVE_MODES}, got {negatives!r}")
        if negatives != "all" and num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        if not 0.0 <= sequence_fraction <= 1.0:
            raise ValueError(f"sequence_fraction must be in [0, 1], got {sequence_fraction}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if strategy not in SCORE_STRATEGIES:
            raise ValueError(f"strategy must be one of {SCORE_STRATEGIES}, got {strategy!r}")
        if chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.num_offsets = num_offsets
        self.k_min = k_min
        self.num_negatives = num_negatives
        self.negatives: NegativeMode = negatives
        self.temperature = temperature
        self.sequence_fraction = sequence_fraction
        self.gather_distributed = gather_distributed
        self.strategy: ScoreStrategy = strategy
        self.max_redraws = max_redraws
        self.chunk_elements = chunk_elements

    @property
    def offsets(self) -> list[int]:
        """The prediction offsets ``k``, in order."""
        return list(range(self.k_min, self.k_min + self.num_offsets))

    def extra_repr(self) -> str:
        return (
            f"offsets={self.k_min}..{self.k_min + self.num_offsets - 1}, "
            f"negatives={self.negatives!r}, num_negatives={self.num_negatives}, "
            f"temperature={self.temperature}"
            + (f", sequence_fraction={self.sequence_fraction}" if self.negatives == "mixed" else "")
        )

    def forward(
        self,
        pred: Tensor,
        z: Tensor,
        lengths: Tensor | None = None,
        candidates: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> InfoNCEOutput:
        """Score every (anchor, offset) term; see the class docstring for shapes.

        Args:
            candidates: (a, n) pool indices to use as negatives instead of drawing them
                (for tests and reproducible evaluation); ignored in ``"all"`` mode.
            generator: random generator for the draws.

        """
        b, s, p, d = z.shape
        if pred.shape != (b, s, p, self.num_offsets, d):
            raise ValueError(
                f"pred must have shape (b, s, p, k, d) = {(b, s, p, self.num_offsets, d)}, "
                f"got {tuple(pred.shape)}"
            )
        # made on the device (torch.tensor would build it on the host and copy it over)
        offsets = torch.arange(self.k_min, self.k_min + self.num_offsets, device=z.device)
        layout = build_layout(lengths, b, s, p, offsets, consecutive=True)
        if layout.anchors.numel() == 0:
            longest = s if lengths is None else int(lengths.max())
            raise ValueError(
                f"no loss term: the longest sequence has {longest} steps, but predicting "
                f"offset k_min={self.k_min} needs at least {self.k_min + 1}"
            )
        if self.negatives == "all":
            q, pool_all, pool_offset = self._queries_and_pool(pred, z, layout)
            # key: a anchors, k offsets, d features, m pool -> (a, k, m) logits
            logits = torch.einsum("akd,md->akm", q, pool_all) / self.temperature
            target = layout.targets + pool_offset
            return self._reduce(logits, target, layout.valid, None)

        k = self.num_offsets
        n = self.num_negatives if candidates is None else candidates.shape[1]
        score, pool_size, pool_offset = self._scorer(pred, z, layout, k + n)
        if candidates is None:
            with torch.no_grad():
                candidates = sample_candidates(
                    layout,
                    self.num_negatives,
                    self.negatives,
                    pool_size,
                    pool_offset,
                    generator,
                    self.max_redraws,
                    round(self.sequence_fraction * self.num_negatives),
                )
        # One candidate list per anchor, scored for every offset: the anchor's own k
        # positives, then its n negatives. Row j keeps column j (its positive) and the
        # negatives; the other offsets' positives are masked, so each term is the softmax
        # over {z+} ∪ negatives exactly. Scoring k extra columns costs k/n more products
        # and saves a separate (a, k, d) gather and product for the positives.
        own = layout.targets + pool_offset  # (a, k)
        scores = score(torch.cat([own, candidates.clamp(min=0)], 1))
        other_offsets = ~torch.eye(k, dtype=torch.bool, device=z.device)  # (k, k)
        masked = torch.cat(
            [
                other_offsets.expand(layout.anchors.numel(), k, k),
                (candidates < 0)[:, None, :].expand(-1, k, n),  # draws that kept colliding
            ],
            -1,
        )  # (a, k, k + n)
        target = torch.arange(k, device=z.device).expand_as(layout.targets)
        return self._reduce(scores / self.temperature, target, layout.valid, masked)

    def _scorer(
        self, pred: Tensor, z: Tensor, layout: Layout, c: int
    ) -> tuple[Callable[[Tensor], Tensor], int, int]:
        """How ``c`` candidates per anchor are scored: (a, c) -> (a, k, c); pool size, offset."""
        _, s, p, _ = z.shape
        if self._per_sequence(s * p, c):
            # no pool, no gathered queries: one product per sequence (own draws only)
            return partial(_score_own_sequence, pred, z, layout), layout.pool.numel(), 0
        q, pool_all, pool_offset = self._queries_and_pool(pred, z, layout)
        return partial(self._score_candidates, q, pool_all), pool_all.shape[0], pool_offset

    def _queries_and_pool(
        self, pred: Tensor, z: Tensor, layout: Layout
    ) -> tuple[Tensor, Tensor, int]:
        """The anchors' predictions, the pool (every process's, if gathered), its offset.

        Shape:
            pred: (b, s, p, k, d); z: (b, s, p, d) -> q (a, k, d), pool (m, d)
        """
        b, s, p, d = z.shape
        # index_select rather than advanced indexing: its backward is a fast index_add_.
        pool = z.reshape(b * s * p, d).index_select(0, layout.pool)  # (m, d)
        pool_all, pool_offset = pool, 0
        if self.gather_distributed and self.negatives != "sequence":
            pool_all, pool_offset = gather_pool(pool)
        q = pred.reshape(b * s * p, self.num_offsets, d).index_select(0, layout.anchors)
        return q, pool_all, pool_offset

    def _per_sequence(self, sequence: int, c: int) -> bool:
        """Whether candidates are scored against their own sequence (``"sequence"``).

        ``sequence`` latents per sequence (``s * p``), ``c`` candidates per anchor. As
        ``"matmul"`` against the whole pool, the product against the anchor's own
        sequence wins while the sequence is short next to the candidate list (the
        threshold is measured in benchmarks/; see docs/performance.md).
        """
        if self.strategy == "sequence":
            if self.negatives != "sequence":
                raise ValueError(
                    "strategy='sequence' scores against the anchor's own sequence and needs "
                    f"negatives='sequence', got negatives={self.negatives!r}"
                )
            return True
        auto = self.strategy == "auto" and self.negatives == "sequence"
        return auto and sequence <= MATMUL_POOL_RATIO * c

    def _score_candidates(self, q: Tensor, pool: Tensor, candidates: Tensor) -> Tensor:
        """Scores of every offset's prediction against the anchor's candidates.

        Shape:
            q: (a, k, d); pool: (m, d); candidates: (a, c) pool indices -> (a, k, c)
        """
        a, k, d = q.shape
        c, m = candidates.shape[1], pool.shape[0]
        strategy = self.strategy
        if strategy == "auto":
            # "gather" multiplies a*k*c*d in small per-anchor products; "matmul" multiplies
            # a*k*m*d in one large product, and wins while the pool is small next to the
            # candidate list. The threshold is measured in benchmarks/ (prediction core).
            strategy = "matmul" if m <= MATMUL_POOL_RATIO * c else "gather"
        if strategy == "matmul":
            # key: (a k) predictions x m pool -> gather c per anchor
            scores = (q.reshape(a * k, d) @ pool.T).view(a, k, m)
            return scores.gather(2, candidates[:, None, :].expand(a, k, c))
        # The products below write into preallocated buffers, which autocast does not
        # cast: give both operands the dtype autocast would (a bf16 prediction scored
        # against float32 latents, e.g. after a norm kept in float32, failed here).
        device = q.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
        else:
            dtype = torch.promote_types(q.dtype, pool.dtype)
        chunk = max(1, self.chunk_elements // (c * d))
        return _ScoreSampled.apply(q.to(dtype), pool.to(dtype), candidates, chunk)

    def _reduce(
        self, logits: Tensor, target: Tensor, valid: Tensor, masked: Tensor | None
    ) -> InfoNCEOutput:
        """Cross-entropy and accuracy per offset over the valid terms.

        Shape:
            logits: (a, k, c) candidate logits; target: (a, k) the positive's column;
            valid: (a, k); masked: (a, k, c) candidates to drop, or None.
        """
        if masked is not None:
            logits = logits.masked_fill(masked, float("-inf"))
        a, k, c = logits.shape
        dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16/fp16 -> fp32
        terms = F.cross_entropy(
            logits.reshape(a * k, c).to(dtype), target.reshape(-1), reduction="none"
        ).view(a, k)
        with torch.no_grad():
            pos = logits.gather(2, target[..., None])  # (a, k, 1)
            others = logits.scatter(2, target[..., None], float("-inf"))
            correct = pos.squeeze(2) > others.amax(2)
        vf = valid.to(terms.dtype)
        count = vf.sum(0)  # (k,)
        denom = count.clamp(min=1)
        loss_per_offset = (terms * vf).sum(0) / denom
        accuracy = (correct.to(terms.dtype) * vf).sum(0) / denom
        # mean over the offsets that have terms, without a boolean mask (a host sync)
        has_terms = (count > 0).to(terms.dtype)
        loss = (loss_per_offset * has_terms).sum() / has_terms.sum()
        return InfoNCEOutput(loss, loss_per_offset, accuracy, count)
