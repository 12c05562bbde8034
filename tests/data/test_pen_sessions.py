import numpy as np
import pytest

from cpc.data.corpora.pen import CHANNELS, generate_pen_samples
from cpc.data.corpora.pen_sessions import generate_session_forgeries, generate_session_samples
from cpc.eval.dtw import dtw_pairs
from cpc.eval.signatures import local_features

MEAN_CHANNELS = [CHANNELS.index(c) for c in ("x", "y", "pressure", "azimuth", "altitude")]


def _channel_means(samples: list[np.ndarray]) -> np.ndarray:
    """Per-channel means (pressure while the pen is down), z-scored over the set."""
    rows = []
    for s in samples:
        down = s[:, 3] > 0
        row = s[:, MEAN_CHANNELS].mean(axis=0)
        row[2] = s[down, 2].mean()
        rows.append(row)
    m = np.array(rows)
    return (m - m.mean(0)) / m.std(0)


def _nearest_centroid(train: np.ndarray, train_ids, test: np.ndarray, test_ids) -> float:
    ids = np.unique(train_ids)
    centroids = np.stack([train[train_ids == w].mean(0) for w in ids])
    guess = ids[np.linalg.norm(test[:, None] - centroids[None], axis=-1).argmin(1)]
    return float(np.mean(guess == test_ids))


def test_channel_means_do_not_identify_writers_across_sessions() -> None:
    writers, sessions, per_session = 20, 4, 2
    hard = generate_session_samples(writers, sessions, per_session, seed=3)
    # one vector per (writer, session): the session's mean of the signatures' channel means
    feats = _channel_means(hard.samples).reshape(writers, sessions, per_session, -1).mean(2)
    ids = np.repeat(np.arange(writers), sessions - 1)
    hits = 0
    for s in range(sessions):  # enrol on the other sessions, test on this one
        enrol = np.delete(feats, s, axis=1).reshape(-1, feats.shape[-1])
        hits += round(_nearest_centroid(enrol, ids, feats[:, s], np.arange(writers)) * writers)
    # chance is 1/20; with 80 independent tests P(>= 10 right by chance) < 1%
    assert hits < 10, hits
    # the same test does catch the easy setting's constant pressure and tilt
    easy, easy_ids = generate_pen_samples(writers, 4, seed=3)
    feats = _channel_means(easy)
    half = np.tile(np.arange(4) >= 2, writers)
    accuracy = _nearest_centroid(feats[~half], easy_ids[~half], feats[half], easy_ids[half])
    assert accuracy > 0.6


def test_sessions_are_deterministic_and_well_formed() -> None:
    a = generate_session_samples(2, 2, 2, seed=5)
    b = generate_session_samples(3, 2, 2, seed=5)
    assert np.array_equal(a.writers, [0, 0, 0, 0, 1, 1, 1, 1])
    assert np.array_equal(a.sessions, [0, 0, 1, 1, 0, 0, 1, 1])
    assert all(np.array_equal(x, y) for x, y in zip(a.samples, b.samples[:8], strict=False))
    for s in a.samples:
        assert s.dtype == np.float32 and s.shape[1] == 6 and np.isfinite(s).all()
        assert 150 <= len(s) <= 900  # about 2-8 s at 100 Hz
        pen = s[:, 3]
        assert np.all(s[pen == 0, 2] == 0) and s[:, 2].max() <= 1
        assert np.count_nonzero(np.diff(pen) < 0) >= 1  # at least one pen-up inside
    with pytest.raises(ValueError, match="session"):
        generate_session_samples(1, 0, 2, seed=0)


def test_forgeries_keep_genuine_tempo_but_are_told_apart_by_dynamics() -> None:
    writers = 5
    genuine = generate_session_samples(writers, 1, 3, seed=7)
    forged = generate_session_forgeries(writers, 3, seed=7)
    assert np.array_equal(forged.writers, np.repeat(np.arange(writers), 3))
    assert np.all(forged.sessions == -1)
    g_len = np.array([len(s) for s in genuine.samples])
    f_len = np.array([len(s) for s in forged.samples])
    ratios = [f_len[forged.writers == w] / g_len[genuine.writers == w].mean() for w in range(5)]
    ratios_all = np.concatenate(ratios)
    # the forger's tempo lies inside the genuine range, not a slowed copy
    assert 0.85 < np.median(ratios_all) < 1.15 and np.all(ratios_all < 1.5), ratios_all
    # ... yet the forgery is further (DTW on local features) from the target than genuine
    feats = [local_features(s)[::4] for s in genuine.samples]
    ffeats = [local_features(s)[::4] for s in forged.samples]
    pairs_g = [(i, j) for i in range(15) for j in range(15) if i < j and i // 3 == j // 3]
    pairs_f = [(i, j) for i in range(15) for j in range(15) if i // 3 == j // 3]
    d_g = dtw_pairs([feats[i] for i, _ in pairs_g], [feats[j] for _, j in pairs_g])
    d_f = dtw_pairs([ffeats[i] for i, _ in pairs_f], [feats[j] for _, j in pairs_f])
    assert d_f.mean() > 1.2 * d_g.mean()


@pytest.mark.parametrize("fmt", ["npy", "svc"])
def test_cli_writes_the_hard_corpus(tmp_path, capsys, fmt: str) -> None:
    import csv

    from cpc.cli import main

    out = tmp_path / "pen"
    args = ["data", "pen", "--out", str(out), "--writers", "2", "--samples", "2"]
    assert main([*args, "--sessions", "2", "--forgeries", "1", "--format", fmt]) == 0
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["writer"], r["genuine"], r["session"]) for r in rows] == [
        ("w000", "1", "0"),
        ("w000", "1", "1"),
        ("w001", "1", "0"),
        ("w001", "1", "1"),
        ("w000", "0", "-1"),
        ("w001", "0", "-1"),
    ]
    first = generate_session_samples(1, 2, 1, seed=0).samples[0]
    if fmt == "npy":
        assert np.array_equal(np.load(out / rows[0]["path"]), first)
    else:
        assert rows[0]["path"] == "U1S1.txt" and rows[4]["path"] == "U1S3.txt"
    # a user's mistake: one line, exit 2, nothing written
    capsys.readouterr()
    assert main(["data", "pen", "--out", str(tmp_path / "bad"), "--sessions", "0"]) == 2
    assert main([*args[:3], str(tmp_path / "bad"), "--samples", "5", "--sessions", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "cpc data pen: error: --sessions must be at least 1, got 0",
        "cpc data pen: error: --samples 5 is not a multiple of --sessions 2",
    ]
    assert not (tmp_path / "bad").exists()
