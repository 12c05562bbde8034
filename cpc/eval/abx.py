"""Phone ABX discriminability of frozen features, within and across speakers.

The Libri-light / ZeroSpeech 2021 protocol (written here from its definition; no code
taken). Every *token* is one phone occurrence: its frames, its phone, its context (the
previous and next phones) and its speaker. For a triplet ``(a, b, x)`` with ``a`` and
``x`` of phone ``A``, ``b`` of phone ``B != A``, all three in the same context, ABX is
right when ``d(a, x) < d(b, x)`` (a tie counts one half). The error of a cell is one
minus the mean over its triplets:

- *within* speakers: ``a``, ``b``, ``x`` of one speaker ``s``; ``x != a``.
  Cells ``(context, s, A, B)``.
- *across* speakers: ``a`` and ``b`` of speaker ``s``, ``x`` of another speaker ``s'``.
  Cells ``(context, s, A, B, s')``.

The score is averaged the standard way: over contexts (and, across, over ``s'`` in the
same step), then over speakers ``s``, then over the ordered phone pairs ``(A, B)``.

Distance: frames are L2-normalised, the frame distance is the angle
``arccos(u . v) / pi`` (0 to 1), and ``d`` is the dynamic-time-warping cost along the
best path (steps: diagonal, right, down; ties broken diagonal, then right, then down)
divided by the number of cells on that path, as in Libri-light. ``d(x, a)`` puts ``x``
on the rows. All-zero frames sit at the maximal distance from every other frame.

Tokens are cut from the features as in Libri-light: a feature frame ``i`` is centred at
time ``(i + 0.5) / rate + shift``; a token ``[onset, offset)`` takes frames
``ceil(rate (onset - shift) - 0.5)`` to ``floor(rate (offset - shift) - 0.5)``
(exclusive); tokens left with no frame are dropped.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from cpc.data.corpora.espeak import load_phone_labels, read_phone_inventory
from cpc.data.seeds import check_seed
from cpc.errors import ConfigError, DataError

Mode = Literal["within", "across"]

#: Work per DTW chunk: pairs x rows x columns (float32 elements).
_DTW_BUDGET = 1 << 22
#: Largest frame rate (frames per second) and time (seconds) accepted.
MAX_RATE = 1e6
MAX_TIME = 1e7


@dataclass(frozen=True)
class ItemToken:
    """One line of a ``.item`` file: a phone occurrence in a file, with its context."""

    file: str
    onset: float
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str


@dataclass
class ABXResult:
    """ABX errors (0 to 1) and the sizes they rest on."""

    within: float | None
    across: float | None
    tokens: int
    cells: dict[str, int] = field(default_factory=dict)
    """Number of scored cells per mode."""
    pairs: dict[str, int] = field(default_factory=dict)
    """Number of ordered phone pairs averaged per mode."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "within": self.within,
            "across": self.across,
            "tokens": self.tokens,
            "cells": self.cells,
            "pairs": self.pairs,
        }


def read_item_file(path: str | Path) -> list[ItemToken]:
    """Read a Libri-light ``.item`` file (a header line, then 7 fields per line).

    Raises:
        DataError: naming the file and the line when a line is malformed.
        FileNotFoundError: when the file does not exist.

    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(str(path), f"not a text .item file ({err})") from None
    tokens = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 7:
            raise DataError(str(path), f"bad item line {number}: 7 fields expected, got {line!r}")
        try:
            onset, offset = float(fields[1]), float(fields[2])
        except ValueError:
            raise DataError(
                str(path), f"bad item line {number}: onset/offset not numbers"
            ) from None
        if not MAX_TIME >= offset > onset >= 0:  # NaN and infinities fail too
            raise DataError(
                str(path), f"bad item line {number}: need 0 <= onset < offset <= {MAX_TIME:g}"
            )
        tokens.append(ItemToken(fields[0], onset, offset, *fields[3:7]))
    if not tokens:
        raise DataError(str(path), "no items: empty .item file")
    return tokens


def write_item_file(tokens: Sequence[ItemToken], path: str | Path) -> Path:
    """Write tokens as a ``.item`` file (Libri-light's header and column order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#file onset offset #phone prev-phone next-phone speaker"]
    lines += [
        f"{t.file} {t.onset:.4f} {t.offset:.4f} {t.phone} {t.prev} {t.next} {t.speaker}"
        for t in tokens
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def tokens_from_frame_labels(
    file: str,
    labels: np.ndarray,
    names: Sequence[str],
    speaker: str,
    frame_seconds: float = 0.01,
    skip: Sequence[str] = ("sil",),
) -> list[ItemToken]:
    """Phone tokens of one utterance from its frame labels (runs of equal labels).

    Frame ``j`` covers ``[j, j + 1) * frame_seconds``. A phone's context is the phones of
    the runs before and after it (``skip`` labels, silence by default, are contexts but
    never tokens; the utterance edges count as ``skip[0]``). Two identical phones in a
    row form one run, so one token.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    run_names = [names[int(labels[s])] for s in starts]
    edge = skip[0] if skip else "#"
    out = []
    for r, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if run_names[r] in skip:
            continue
        prev = run_names[r - 1] if r > 0 else edge
        nxt = run_names[r + 1] if r + 1 < len(run_names) else edge
        out.append(
            ItemToken(file, s * frame_seconds, e * frame_seconds, run_names[r], prev, nxt, speaker)
        )
    return out


def _normalise(x: Tensor) -> Tensor:
    """Unit-norm frames, plus a last channel that flags all-zero frames.

    Shape:
        x: (frames, d) -> (frames, d + 1)
    """
    x = x.double()
    norm = x.norm(dim=-1, keepdim=True)
    zero = (norm == 0).float()
    return torch.cat([x / norm.clamp_min(1e-30), zero], -1)


def frame_distance(a: Tensor, b: Tensor) -> Tensor:
    """Angular distance ``arccos(a . b) / pi`` between frames from :func:`_normalise`.

    A zero frame is at the maximal distance 1 from every non-zero frame and at 0 from
    another zero frame.

    Shape:
        a: (p, i, d + 1), b: (p, j, d + 1) -> (p, i, j)
    """
    cos = torch.einsum("pid,pjd->pij", a[..., :-1], b[..., :-1])  # key: p pairs, i/j frames
    dist = torch.arccos(cos.clamp(-1.0, 1.0)) / math.pi
    za, zb = a[..., -1][:, :, None], b[..., -1][:, None, :]
    return torch.where(za + zb > 0, (za - zb).abs(), dist)


def dtw_normalised(dist: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Batched DTW cost divided by the path length, read at each pair's true size.

    Args:
        dist: frame distances, padded beyond each pair's size.
        rows: true number of rows per pair (>= 1).
        cols: true number of columns per pair (>= 1).

    Shape:
        dist: (p, i, j); rows, cols: (p,) -> (p,)

    Padding never reaches a real cell: a cell depends only on cells up and left of it.

    """
    p, n_i, n_j = dist.shape
    cost = torch.empty_like(dist)
    length = torch.empty_like(dist)
    for i in range(n_i):
        for j in range(n_j):
            d = dist[:, i, j]
            if i == 0 and j == 0:
                cost[:, 0, 0], length[:, 0, 0] = d, 1.0
                continue
            if i == 0:
                cost[:, 0, j] = d + cost[:, 0, j - 1]
                length[:, 0, j] = length[:, 0, j - 1] + 1
                continue
            if j == 0:
                cost[:, i, 0] = d + cost[:, i - 1, 0]
                length[:, i, 0] = length[:, i - 1, 0] + 1
                continue
            diag, left, up = cost[:, i - 1, j - 1], cost[:, i, j - 1], cost[:, i - 1, j]
            take_diag = (diag <= left) & (diag <= up)
            take_left = ~take_diag & (left <= up)
            best = torch.where(take_diag, diag, torch.where(take_left, left, up))
            prev_len = torch.where(
                take_diag,
                length[:, i - 1, j - 1],
                torch.where(take_left, length[:, i, j - 1], length[:, i - 1, j]),
            )
            cost[:, i, j] = d + best
            length[:, i, j] = prev_len + 1
    idx = torch.arange(p)
    return cost[idx, rows - 1, cols - 1] / length[idx, rows - 1, cols - 1]


def pair_distances(tokens: Sequence[Tensor], pairs: np.ndarray) -> np.ndarray:
    """DTW distances ``d(tokens[r], tokens[c])`` for each row ``(r, c)`` of ``pairs``.

    Pairs are sorted by size and cut into chunks so padding stays small.

    Shape:
        tokens[t]: (frames, d), unit-normalised; pairs: (q, 2) -> (q,)
    """
    lengths = np.array([t.shape[0] for t in tokens])
    out = np.empty(len(pairs))
    if len(pairs) == 0:
        return out
    dim = tokens[0].shape[1]  # with the zero flag
    max_len = int(lengths.max())
    padded = torch.zeros(len(tokens), max_len, dim, dtype=torch.float64)
    for n, t in enumerate(tokens):
        padded[n, : t.shape[0]] = t
    la, lb = lengths[pairs[:, 0]], lengths[pairs[:, 1]]
    order = np.lexsort((lb, la))
    start = 0
    while start < len(order):
        i_max, j_max = int(la[order[start]]), int(lb[order[start]])
        stop = start
        while stop < len(order):  # grow the chunk while it fits the budget
            i_max = max(i_max, int(la[order[stop]]))
            j_max = max(j_max, int(lb[order[stop]]))
            if (stop - start + 1) * i_max * j_max > _DTW_BUDGET and stop > start:
                break
            stop += 1
        chunk = order[start:stop]
        r, c = pairs[chunk, 0], pairs[chunk, 1]
        ri, cj = int(la[chunk].max()), int(lb[chunk].max())
        dist = frame_distance(padded[r, :ri], padded[c, :cj])
        out[chunk] = dtw_normalised(
            dist, torch.from_numpy(la[chunk]), torch.from_numpy(lb[chunk])
        ).numpy()
        start = stop
    return out


@dataclass
class _Cells:
    """Scores of the cells of one mode, keyed by (speaker, phone A, phone B, rest...)."""

    score: dict[tuple[int, ...], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, key: tuple[int, ...], value: float) -> None:
        self.score[key].append(value)

    def average(self) -> tuple[float | None, int, int]:
        """Mean over contexts (and X speakers), then speakers, then phone pairs."""
        by_speaker: dict[tuple[int, int], list[float]] = defaultdict(list)
        for (_, a, b), values in self.score.items():
            by_speaker[(a, b)].append(float(np.mean(values)))
        if not by_speaker:
            return None, 0, 0
        cells = sum(len(v) for v in self.score.values())
        return float(np.mean([np.mean(v) for v in by_speaker.values()])), cells, len(by_speaker)


def _score_context(
    dist: np.ndarray, group: np.ndarray, num_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ABX successes between groups of one context.

    Args:
        dist: ``dist[x, t]`` = d(x, t) for the tokens of the context (row = X).
        group: group index (speaker, phone) of each token, in ``[0, num_groups)``.
        num_groups: number of groups.

    Returns:
        ``num[gx, ga, gb]`` = sum over x in gx, a in ga (a != x), b in gb of
        [d(x,a) < d(x,b)] + 0.5 [d(x,a) = d(x,b)], and the group sizes.

    Shape:
        dist: (n, n); group: (n,) -> num: (g, g, g), sizes: (g,)

    """
    n, g = len(group), num_groups
    member = np.zeros((n, g))
    member[np.arange(n), group] = 1.0
    num = np.zeros((g, g, g))
    for x0 in range(0, n, 64):  # bounded memory: (64, n, n) comparisons at a time
        d = dist[x0 : x0 + 64]
        win = (d[:, :, None] < d[:, None, :]) + 0.5 * (d[:, :, None] == d[:, None, :])
        rows = np.arange(d.shape[0])
        win[rows, rows + x0, :] = 0.0  # a == x is never a triplet
        # Sum over tokens into groups: i (of x), j (of a), k (of b), one axis at a time.
        per_b = win @ member  # (x, a, k)
        per_ab = member.T @ per_b  # (x, j, k)
        num += np.tensordot(member[x0 : x0 + 64], per_ab, axes=(0, 0))  # (i, j, k)
    return num, member.sum(0)


def abx_errors(
    feats: Sequence[Tensor],
    contexts: Sequence[Any],
    phones: Sequence[Any],
    speakers: Sequence[Any],
    modes: Sequence[Mode] = ("within", "across"),
    max_group_size: int | None = None,
    seed: int = 0,
) -> ABXResult:
    """ABX error rates of tokens (see the module docstring for the protocol).

    Args:
        feats: frames of each token (any length >= 1).
        contexts, phones, speakers: labels of each token (any hashable values).
        modes: which of ``"within"`` and ``"across"`` to compute.
        max_group_size: keep at most this many tokens per (context, speaker, phone),
            drawn with ``seed`` (Libri-light subsamples groups to 10); None: all.
        seed: seed of that draw.

    Shape:
        feats[t]: (frames, d)

    """
    n = len(feats)
    if not (len(contexts) == len(phones) == len(speakers) == n):
        raise ValueError("feats, contexts, phones and speakers must have one entry per token")
    for mode in modes:
        if mode not in ("within", "across"):
            raise ValueError(f"ABX mode must be 'within' or 'across', got {mode!r}")
    labels = _Labels(_codes(contexts), _codes(phones), _codes(speakers))
    useful = labels.contexts(max_group_size, seed)
    unit = [_normalise(torch.as_tensor(f)) for f in feats]
    pairs = np.array(
        [(i, j) for m in useful.values() for i in m for j in m if i != j], dtype=np.int64
    ).reshape(-1, 2)
    values = pair_distances(unit, pairs)
    lookup = {(int(i), int(j)): v for (i, j), v in zip(pairs, values, strict=True)}
    cells = {mode: _Cells() for mode in modes}
    for members in useful.values():
        _score_cells(labels, members, lookup, cells)
    result = ABXResult(None, None, n)
    for mode in ("within", "across"):
        if mode in modes:
            err, count, n_pairs = cells[mode].average()
            setattr(result, mode, err)
            result.cells[mode], result.pairs[mode] = count, n_pairs
    return result


@dataclass
class _Labels:
    """Integer codes of each token's context, phone and speaker."""

    context: list[int]
    phone: list[int]
    speaker: list[int]

    def contexts(self, max_group_size: int | None, seed: int) -> dict[int, list[int]]:
        """Tokens of each context that can hold a triplet, groups subsampled with ``seed``.

        A group is a (context, speaker, phone) cell; only contexts where some speaker says
        two phones are kept.
        """
        rng = np.random.default_rng(seed)
        by_cell: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for t in range(len(self.context)):
            by_cell[(self.context[t], self.speaker[t], self.phone[t])].append(t)
        by_context: dict[int, list[int]] = defaultdict(list)
        for key, members in sorted(by_cell.items()):
            if max_group_size is not None and len(members) > max_group_size:
                members = sorted(rng.choice(members, max_group_size, replace=False).tolist())
            by_context[key[0]] += members
        s_ids, p_ids = self.speaker, self.phone
        return {
            c: m
            for c, m in by_context.items()
            if any(len({p_ids[t] for t in m if s_ids[t] == s}) > 1 for s in {s_ids[t] for t in m})
        }


def _score_cells(
    labels: _Labels,
    members: list[int],
    lookup: dict[tuple[int, int], float],
    cells: dict[Mode, _Cells],
) -> None:
    """Add the errors of one context's cells to ``cells["within"]`` / ``cells["across"]``."""
    s_ids, p_ids = labels.speaker, labels.phone
    keys = sorted({(s_ids[t], p_ids[t]) for t in members})
    index = {k: q for q, k in enumerate(keys)}
    group = np.array([index[(s_ids[t], p_ids[t])] for t in members])
    g_spk = np.array([k[0] for k in keys])
    g_ph = np.array([k[1] for k in keys])
    dist = np.array([[lookup.get((i, j), 0.0) for j in members] for i in members])
    num, size = _score_context(dist, group, len(keys))
    for ga in range(len(keys)):
        for gb in range(len(keys)):
            if g_spk[ga] != g_spk[gb] or g_ph[ga] == g_ph[gb]:
                continue
            key = (int(g_spk[ga]), int(g_ph[ga]), int(g_ph[gb]))
            if "within" in cells and size[ga] > 1:
                den = size[ga] * (size[ga] - 1) * size[gb]
                cells["within"].add(key, 1.0 - num[ga, ga, gb] / den)
            if "across" in cells:
                for gx in np.flatnonzero((g_ph == g_ph[ga]) & (g_spk != g_spk[ga])):
                    den = size[gx] * size[ga] * size[gb]
                    cells["across"].add(key, 1.0 - num[gx, ga, gb] / den)


def _codes(values: Sequence[Any]) -> list[int]:
    table: dict[Any, int] = {}
    return [table.setdefault(v, len(table)) for v in values]


def check_timing(rate: float, shift: float) -> None:
    """Refuse a frame rate or centre shift that cannot place a frame in time.

    Raises:
        ConfigError: ``rate`` not in ``(0, MAX_RATE]`` or ``|shift| > MAX_TIME`` (NaN and
            infinities included), naming the flag.

    """
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise ConfigError(f"--rate must be a number in (0, {MAX_RATE:g}] frames/s, got {rate}")
    if not (math.isfinite(shift) and abs(shift) <= MAX_TIME):
        raise ConfigError(f"--shift must be a number of seconds within +-{MAX_TIME:g}, got {shift}")


def cut_tokens(
    features: Mapping[str, Tensor | np.ndarray],
    items: Sequence[ItemToken],
    rate: float = 100.0,
    shift: float = 0.0,
) -> tuple[list[Tensor], list[ItemToken]]:
    """Frames of each item (module docstring's rule); items left with none are dropped.

    Raises:
        DataError: when an item's file has no features.
        ConfigError: a rate or shift that is not a finite number in range.

    """
    check_timing(rate, shift)
    out, kept = [], []
    for item in items:
        if item.file not in features:
            raise DataError(item.file, "no features for this file of the .item file")
        f = torch.as_tensor(features[item.file])
        if f.ndim != 2:
            raise DataError(item.file, f"features must be (frames, dim), got {tuple(f.shape)}")
        start = max(0, math.ceil(rate * (item.onset - shift) - 0.5))
        stop = min(f.shape[0], math.floor(rate * (item.offset - shift) - 0.5))
        if stop > start:
            out.append(f[start:stop])
            kept.append(item)
    return out, kept


def abx_from_items(
    features: Mapping[str, Tensor | np.ndarray],
    items: Sequence[ItemToken],
    rate: float = 100.0,
    shift: float = 0.0,
    modes: Sequence[Mode] = ("within", "across"),
    max_group_size: int | None = None,
    seed: int = 0,
) -> ABXResult:
    """ABX errors of per-file features (``file id -> (frames, d)``) on ``.item`` tokens.

    Args:
        features: features of each file, keyed by the ``.item`` file's first column.
        items: tokens, e.g. from :func:`read_item_file`.
        rate: feature frames per second (100 for 10 ms frames).
        shift: seconds by which frame ``i``'s centre lies after ``(i + 0.5) / rate``.
        modes, max_group_size, seed: as in :func:`abx_errors`.

    """
    if max_group_size is not None and max_group_size < 1:
        raise ConfigError(f"--max-group-size must be at least 1, got {max_group_size}")
    check_seed(seed, "--seed")
    feats, kept = cut_tokens(features, items, rate, shift)
    if not kept:
        raise DataError("items", "no token has a frame: check the rate and the features")
    return abx_errors(
        feats,
        [(t.prev, t.next) for t in kept],
        [t.phone for t in kept],
        [t.speaker for t in kept],
        modes,
        max_group_size,
        seed,
    )


def items_from_espeak_corpus(
    root: str | Path, paths: Sequence[str] | None = None
) -> list[ItemToken]:
    """Tokens of the built-in eSpeak corpus (its frame labels), one file id per wav stem.

    Args:
        root: a corpus folder of :func:`cpc.data.corpora.espeak.build_espeak_corpus`.
        paths: manifest paths (relative wavs) to include; None: every utterance.

    """
    root = Path(root)
    inventory = read_phone_inventory(root)
    labels = load_phone_labels(root)
    with open(root / "manifest.csv", newline="") as f:
        speaker = {row["path"]: row["speaker"] for row in csv.DictReader(f)}
    frame = 1.0 / 100  # the corpus's 10 ms frames
    chosen = list(labels) if paths is None else list(paths)
    out: list[ItemToken] = []
    for path in chosen:
        out += tokens_from_frame_labels(
            Path(path).stem,
            labels[path],
            inventory["phones"],
            speaker[path],
            frame,
            skip=(inventory["silence"],),
        )
    return out
