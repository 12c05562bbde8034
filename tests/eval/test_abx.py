"""ABX against a brute-force triplet enumeration written from the protocol's definition."""

import math
from collections import defaultdict
from itertools import product

import numpy as np
import pytest
import torch

from cpc.errors import DataError
from cpc.eval.abx import (
    ItemToken,
    abx_errors,
    abx_from_items,
    cut_tokens,
    read_item_file,
    tokens_from_frame_labels,
    write_item_file,
)


def _angle(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0 if nu == nv else 1.0
    return math.acos(max(-1.0, min(1.0, float(u @ v) / (nu * nv)))) / math.pi


def _dtw_reference(x, y):
    """Cost along the best path / cells on it, found by backtracking (float64)."""
    n, m = len(x), len(y)
    d = np.array([[_angle(x[i], y[j]) for j in range(m)] for i in range(n)])
    cost = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                cost[i, j] = d[0, 0]
            else:
                prev = min(
                    cost[i - 1, j - 1] if i and j else np.inf,
                    cost[i, j - 1] if j else np.inf,
                    cost[i - 1, j] if i else np.inf,
                )
                cost[i, j] = d[i, j] + prev
    i, j, cells = n - 1, m - 1, 1
    while i > 0 and j > 0:
        diag, left, up = cost[i - 1, j - 1], cost[i, j - 1], cost[i - 1, j]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        cells += 1
    cells += i + j
    return cost[-1, -1] / cells


def _abx_reference(feats, ctx, ph, spk, mode):
    """Enumerate every triplet of every cell; average contexts, speakers, phone pairs."""
    n = len(feats)
    cells = defaultdict(list)  # (s, A, B) -> cell errors over contexts (and X speakers)
    for c, s, a_ph, b_ph in product(set(ctx), set(spk), set(ph), set(ph)):
        if a_ph == b_ph:
            continue
        A = [t for t in range(n) if (ctx[t], spk[t], ph[t]) == (c, s, a_ph)]
        B = [t for t in range(n) if (ctx[t], spk[t], ph[t]) == (c, s, b_ph)]
        if not A or not B:
            continue
        x_speakers = [s] if mode == "within" else sorted(set(spk) - {s})
        for sx in x_speakers:
            X = [t for t in range(n) if (ctx[t], spk[t], ph[t]) == (c, sx, a_ph)]
            triplets = [(a, b, x) for a in A for b in B for x in X if x != a]
            if not triplets:
                continue
            right = 0.0
            for a, b, x in triplets:
                dxa, dxb = _dtw_reference(feats[x], feats[a]), _dtw_reference(feats[x], feats[b])
                right += 1.0 if dxa < dxb else 0.5 if dxa == dxb else 0.0
            cells[(s, a_ph, b_ph)].append(1 - right / len(triplets))
    per_pair = defaultdict(list)
    for (_, a_ph, b_ph), errs in cells.items():
        per_pair[(a_ph, b_ph)].append(np.mean(errs))
    return float(np.mean([np.mean(v) for v in per_pair.values()]))


def _random_case(seed, n=40, contexts=2, speakers=3, phones=3, dim=3, copies=False):
    rng = np.random.default_rng(seed)
    feats = [rng.normal(size=(rng.integers(1, 5), dim)) for _ in range(n)]
    if copies:  # tokens copied from 5 prototypes: many equal distances (the tie rule)
        feats = [feats[i].copy() for i in rng.integers(0, 5, n)]
    ctx = rng.integers(0, contexts, n).tolist()
    ph = rng.integers(0, phones, n).tolist()
    spk = rng.integers(0, speakers, n).tolist()
    return feats, ctx, ph, spk


@pytest.mark.parametrize(("seed", "copies"), [(0, False), (1, False), (2, True), (3, True)])
def test_matches_brute_force_enumeration(seed, copies):
    feats, ctx, ph, spk = _random_case(seed, copies=copies)
    got = abx_errors([torch.tensor(f) for f in feats], ctx, ph, spk)
    for mode in ("within", "across"):
        want = _abx_reference(feats, ctx, ph, spk, mode)
        assert getattr(got, mode) == pytest.approx(want, abs=1e-5), mode


def test_dtw_matches_reference_on_unequal_lengths():
    from cpc.eval.abx import _normalise, pair_distances

    rng = np.random.default_rng(5)
    feats = [rng.normal(size=(k, 4)) for k in (1, 2, 5, 7, 3)]
    feats[2][1] = 0.0  # a zero frame
    pairs = np.array([(i, j) for i in range(5) for j in range(5)])
    got = pair_distances([_normalise(torch.tensor(f)) for f in feats], pairs)
    want = [_dtw_reference(feats[i], feats[j]) for i, j in pairs]
    np.testing.assert_allclose(got, want, atol=1e-5)


def _clustered(seed, noise, shuffle=False, n_per=6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16))
    feats, ctx, ph, spk = [], [], [], []
    for c, s, p in product(range(3), range(3), range(4)):
        for _ in range(n_per):
            length = int(rng.integers(2, 6))
            feats.append(torch.tensor(centres[p] + noise * rng.normal(size=(length, 16))))
            ctx.append(c)
            ph.append(p)
            spk.append(s)
    if shuffle:
        ph = rng.permutation(ph).tolist()
    return feats, ctx, ph, spk


def test_separable_features_give_no_error():
    res = abx_errors(*_clustered(0, noise=0.1))
    assert res.within < 0.01 and res.across < 0.01
    assert res.pairs == {"within": 12, "across": 12}


def test_shuffled_labels_give_chance():
    res = abx_errors(*_clustered(1, noise=0.1, shuffle=True))
    assert abs(res.within - 0.5) < 0.06 and abs(res.across - 0.5) < 0.06


def test_group_cap_subsamples_and_is_seeded():
    feats, ctx, ph, spk = _clustered(2, noise=2.0, n_per=8)
    full = abx_errors(feats, ctx, ph, spk)
    capped = abx_errors(feats, ctx, ph, spk, max_group_size=3, seed=0)
    again = abx_errors(feats, ctx, ph, spk, max_group_size=3, seed=0)
    assert capped.within == again.within and capped.within != full.within
    assert abs(capped.across - full.across) < 0.1


def test_item_file_round_trip_and_cutting(tmp_path):
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0, 3, 3])
    names = ["sil", "a", "b", "c"]
    toks = tokens_from_frame_labels("u1", labels, names, "spk1")
    assert [(t.phone, t.prev, t.next) for t in toks] == [
        ("a", "sil", "b"),
        ("b", "a", "sil"),
        ("c", "sil", "sil"),
    ]
    assert (toks[0].onset, toks[0].offset) == pytest.approx((0.02, 0.05))
    path = write_item_file(toks, tmp_path / "x.item")
    assert read_item_file(path) == toks
    feats = {"u1": torch.arange(10.0)[:, None].repeat(1, 2)}
    cut, kept = cut_tokens(feats, toks, rate=100.0)
    # [0.02, 0.05) -> frames ceil(1.5)=2 .. floor(4.5)=4 (exclusive), as in Libri-light
    assert cut[0][:, 0].tolist() == [2.0, 3.0]
    shifted, _ = cut_tokens(feats, toks, rate=100.0, shift=0.01)
    assert shifted[0][:, 0].tolist() == [1.0, 2.0]
    assert len(kept) == 3


def test_bad_item_files_name_the_line(tmp_path):
    bad = tmp_path / "bad.item"
    bad.write_text("#header\nu1 0.1 0.2 a sil b\n")
    with pytest.raises(DataError, match="line 2"):
        read_item_file(bad)
    bad.write_text("#header\nu1 0.3 0.2 a sil b s1\n")
    with pytest.raises(DataError, match="onset < offset"):
        read_item_file(bad)
    tok = [ItemToken("missing", 0.0, 0.1, "a", "b", "c", "s")]
    with pytest.raises(DataError, match="missing"):
        abx_from_items({"other": torch.zeros(5, 2)}, tok)
