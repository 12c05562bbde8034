import numpy as np
import pytest
import torch

from cpc.eval.probes import (
    extract,
    frames_from_sequences,
    knn_probe,
    linear_probe,
    pool_sequences,
)
from cpc.eval.splits import split_by_group, split_within_groups
from cpc.eval.verification import equal_error_rate, verification_eer

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n: int, c: int, d: int, seed: int, spread: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=g) * spread
    y = torch.randint(0, c, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def test_linear_probe_separable_and_deterministic() -> None:
    x, y = blobs(1200, 6, 12, seed=0)
    r1 = linear_probe(x[:900], y[:900], x[900:], y[900:], epochs=30, seed=3)
    r2 = linear_probe(x[:900], y[:900], x[900:], y[900:], epochs=30, seed=3)
    assert r1.accuracy > 0.95
    assert np.array_equal(r1.predictions, r2.predictions)
    assert r1.confusion.shape == (6, 6)
    assert r1.confusion.sum() == 300
    assert np.trace(r1.confusion) == round(r1.accuracy * 300)
    assert r1.per_class_accuracy.shape == (6,)


def test_linear_probe_random_labels_near_chance() -> None:
    x, _ = blobs(4000, 4, 16, seed=1)
    y = torch.randint(0, 4, (4000,), generator=torch.Generator().manual_seed(9))
    r = linear_probe(x[:3000], y[:3000], x[3000:], y[3000:], epochs=20)
    assert abs(r.accuracy - 0.25) < 0.05


def test_linear_probe_numpy_fixed_epochs_and_weight_decay() -> None:
    x, y = blobs(400, 3, 5, seed=2)
    r = linear_probe(
        x.numpy()[:300],
        y.numpy()[:300],
        x.numpy()[300:],
        y.numpy()[300:],
        epochs=4,
        val_fraction=0.0,
        weight_decay=1e-3,
    )
    assert r.extra["epochs_run"] == 4
    assert r.accuracy > 0.9


def test_class_absent_from_train_is_never_predicted() -> None:
    x, y = blobs(600, 4, 8, seed=4)
    train = y != 3
    r = linear_probe(x[train], y[train], x, y, epochs=10)
    assert r.absent_from_train == [3]
    assert r.confusion.shape == (4, 4)
    assert r.confusion[:, 3].sum() == 0
    assert r.per_class_accuracy[3] == 0.0
    k = knn_probe(x[train], y[train], x, y, k=3)
    assert k.absent_from_train == [3]


def test_probe_rejects_bad_labels() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="labels"):
        linear_probe(x, torch.arange(10), x, torch.arange(10), num_classes=5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_probe(metric: str) -> None:
    x, y = blobs(1000, 5, 8, seed=5)
    r = knn_probe(x[:800], y[:800], x[800:], y[800:], k=5, metric=metric, chunk_size=64)
    assert r.accuracy > 0.95
    yr = torch.randint(0, 5, (3000,), generator=torch.Generator().manual_seed(1))
    xr = torch.randn(3000, 8, generator=torch.Generator().manual_seed(2))
    rr = knn_probe(xr[:2000], yr[:2000], xr[2000:], yr[2000:], k=10, metric=metric)
    assert abs(rr.accuracy - 0.2) < 0.05


def test_knn_chunking_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(6)
    xtr, xte = torch.randn(97, 4, generator=g), torch.randn(31, 4, generator=g)
    ytr, yte = torch.randint(0, 3, (97,), generator=g), torch.randint(0, 3, (31,), generator=g)
    chunked = knn_probe(xtr, ytr, xte, yte, k=1, metric="euclidean", chunk_size=8)
    nearest = torch.cdist(xte, xtr).argmin(1)
    assert np.array_equal(chunked.predictions, ytr[nearest].numpy())


def test_frames_alignment_rule() -> None:
    feats = [torch.arange(10.0)[:, None].repeat(1, 2), torch.zeros(5, 1, 2)]
    labels = [torch.arange(12), torch.arange(4)]
    x, y = frames_from_sequences(feats, labels, tolerance=2)
    assert x.shape == (14, 2) and y.shape == (14,)
    assert torch.equal(y[:10], torch.arange(10))  # truncated to the shorter, no shift
    x, y = frames_from_sequences(feats[:1], labels[:1], offset=2)
    assert torch.equal(y, torch.arange(2, 12))  # feature j <-> label j + 2
    assert torch.equal(x[:, 0], torch.arange(10.0))
    x, y = frames_from_sequences(feats[:1], labels[:1], offset=-1, tolerance=3)
    assert torch.equal(x[:, 0], torch.arange(1.0, 10.0)) and torch.equal(y, torch.arange(9))


def test_frames_alignment_raises_naming_utterance() -> None:
    feats = [torch.zeros(10, 2), torch.zeros(10, 2)]
    labels = [torch.zeros(10, dtype=torch.long), torch.zeros(14, dtype=torch.long)]
    with pytest.raises(ValueError, match="spk1_utt7"):
        frames_from_sequences(feats, labels, tolerance=2, names=["a", "spk1_utt7"])
    with pytest.raises(ValueError, match="#1"):
        frames_from_sequences(feats, labels, tolerance=3)
    frames_from_sequences(feats, labels, tolerance=4)


def test_pool_sequences_ignores_padding() -> None:
    feats = torch.randn(3, 7, 2, 4)
    lengths = torch.tensor([7, 3, 1])
    pooled = pool_sequences(feats, lengths)
    garbage = feats.clone()
    garbage[1, 3:] = 1e6
    garbage[2, 1:] = float("nan")
    assert torch.allclose(pool_sequences(garbage, lengths), pooled)
    assert torch.allclose(pooled[1], feats[1, :3].mean((0, 1)))
    assert torch.allclose(pool_sequences(feats[:, :, 0]), feats[:, :, 0].mean(1))


def test_extract_trims_padding() -> None:
    class Fake:
        def features(self, x, lengths=None, layer="context"):
            return x[..., None, None].repeat(1, 1, 1, 3), lengths

    items = extract(Fake(), torch.randn(2, 5), torch.tensor([5, 2]))
    assert [tuple(t.shape) for t in items] == [(5, 1, 3), (2, 1, 3)]


def test_splits_disjoint_deterministic_grouped() -> None:
    groups = np.repeat([f"spk{i}" for i in range(10)], 7)
    tr, te = split_by_group(groups, 0.3, seed=1)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(groups)
    assert set(groups[tr]).isdisjoint(groups[te])
    assert len(set(groups[te])) == 3
    tr2, te2 = split_by_group(groups, 0.3, seed=1)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert not np.array_equal(te, split_by_group(groups, 0.3, seed=2)[1])

    tr, te = split_within_groups(groups, 0.3, seed=1)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(groups)
    assert set(groups[tr]) == set(groups[te]) == set(groups)
    assert np.array_equal(te, split_within_groups(groups, 0.3, seed=1)[1])
    with pytest.raises(ValueError):
        split_by_group(["a"] * 5, 0.5)


def brute_force_eer(gen: np.ndarray, imp: np.ndarray) -> float:
    thresholds = [*sorted(set(gen.tolist()) | set(imp.tolist())), np.inf]
    prev = None
    for t in thresholds:
        far = sum(s >= t for s in imp) / len(imp)
        frr = sum(s < t for s in gen) / len(gen)
        if frr >= far:
            if prev is None:
                return far
            pfar, pfrr = prev
            a = (pfar - pfrr) / ((frr - far) - (pfrr - pfar))
            return pfar + a * (far - pfar)
        prev = (far, frr)
    raise AssertionError


def test_eer_closed_cases_and_brute_force() -> None:
    eer, thr = equal_error_rate(np.array([0.8, 0.9, 0.95]), np.array([0.1, 0.2, 0.5]))
    assert eer == 0.0 and 0.5 < thr <= 0.8
    rng = np.random.default_rng(0)
    eer, _ = equal_error_rate(rng.normal(size=4000), rng.normal(size=4000))
    assert abs(eer - 0.5) < 0.03
    for seed in range(5):
        rng = np.random.default_rng(seed)
        gen = rng.normal(1.0, 1.0, size=23).round(1)  # rounding makes ties
        imp = rng.normal(0.0, 1.0, size=31).round(1)
        eer, _ = equal_error_rate(gen, imp)
        assert eer == pytest.approx(brute_force_eer(gen, imp))
        rates = [
            ((imp >= t).mean(), (gen < t).mean()) for t in np.append(np.union1d(gen, imp), np.inf)
        ]
        assert max(min(r) for r in rates) - 1e-12 <= eer <= min(max(r) for r in rates) + 1e-12


def test_verification_eer_protocol() -> None:
    g = torch.Generator().manual_seed(7)
    centres = torch.randn(6, 16, generator=g)
    ids = torch.arange(6).repeat_interleave(8)
    emb = centres[ids] + 0.05 * torch.randn(48, 16, generator=g)
    res = verification_eer(emb, ids.numpy(), enrol_per_id=3, seed=0)
    assert res.eer == 0.0 and res.num_ids == 6
    assert len(res.genuine) == 6 * 5 and len(res.impostor) == 6 * 40
    forg = centres[ids[:12]] + 0.5 * torch.randn(12, 16, generator=g)
    res = verification_eer(emb, ids.numpy(), forgeries=forg, forgery_ids=ids[:12].numpy())
    assert res.skilled is not None and len(res.skilled) == 12
    assert res.skilled_eer is not None and 0.0 <= res.skilled_eer <= 1.0
    rnd = verification_eer(torch.randn(400, 8, generator=g), np.arange(400) % 10)
    assert abs(rnd.eer - 0.5) < 0.1
