"""Discrete units: fit/apply on a tiny set, collapse warning, purity and PNMI."""

import csv
import math

import numpy as np
import pytest

from cpc.cli import main
from cpc.eval.unit_quality import unit_quality
from cpc.features.units import dedup, entropy


def write_features(folder, arrays):
    folder.mkdir(parents=True)
    with open(folder / "index.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "features", "steps", "dim"])
        for i, a in enumerate(arrays):
            np.save(folder / f"f{i}.npy", a.astype(np.float32))
            writer.writerow([f"/data/utt{i}.wav", f"f{i}.npy", len(a), a.shape[1]])


def blobs(seed, n=60):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    which = np.repeat([0, 1, 2, 1], n // 4)  # runs of the same blob
    return centers[which] + 0.1 * rng.standard_normal((len(which), 3)), which


def test_fit_apply_recovers_blobs_and_dedups(tmp_path, capsys):
    data = [blobs(i) for i in range(3)]
    write_features(tmp_path / "feats", [x for x, _ in data])
    km, out = tmp_path / "km", tmp_path / "units"
    assert main(["units", "fit", str(tmp_path / "feats"), "--k", "3", "--out", str(km)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert (
        main(["units", "apply", str(tmp_path / "feats"), "--units", str(km), "--out", str(out)])
        == 0
    )
    rows = list(csv.DictReader(open(out / "units.tsv"), delimiter="\t"))
    assert [r["path"] for r in rows] == [f"/data/utt{i}.wav" for i in range(3)]
    for row, (_, which) in zip(rows, data, strict=True):
        units = np.array(row["units"].split(), dtype=int)
        assert len(units) == len(which)
        # the same blob always gets the same unit, different blobs different units
        assert len({(w, u) for w, u in zip(which, units, strict=True)}) == 3
    dd = tmp_path / "dedup"
    assert (
        main(
            [
                "units",
                "apply",
                str(tmp_path / "feats"),
                "--units",
                str(km),
                "--out",
                str(dd),
                "--dedup",
            ]
        )
        == 0
    )
    first = next(csv.DictReader(open(dd / "units.tsv"), delimiter="\t"))["units"].split()
    assert len(first) == 4  # blob runs 0, 1, 2, 1


def test_collapsed_units_warn(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = np.zeros((400, 4))  # silence-like frames that all look the same ...
    x[:12] = 1e3 * rng.standard_normal((12, 4))  # ... and a few loud outliers
    write_features(tmp_path / "feats", [x])
    args = ["units", "fit", str(tmp_path / "feats"), "--k", "8", "--normalize", "none"]
    assert main([*args, "--out", str(tmp_path / "km")]) == 0
    err = capsys.readouterr().err
    assert "collapsed" in err and len(err.strip().splitlines()) == 1


def test_bad_features_folder_is_one_line(tmp_path, capsys):
    assert main(["units", "fit", str(tmp_path), "--k", "50", "--out", str(tmp_path / "km")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "index.csv" in err
    assert not (tmp_path / "km").exists()


def test_dedup_and_entropy():
    assert dedup(np.array([3, 3, 5, 5, 5, 3])).tolist() == [3, 5, 3]
    assert entropy(np.array([0, 1, 2, 3]), 4) == pytest.approx(math.log(4))
    assert entropy(np.zeros(10, dtype=int), 4) == 0


def reference(phones, units, k):
    """Straight from the definitions, with loops."""
    n = len(phones)
    ys, zs = sorted(set(phones.tolist())), range(k)
    p = {
        (y, z): sum(1 for a, b in zip(phones, units, strict=True) if a == y and b == z) / n
        for y in ys
        for z in zs
    }
    py = {y: sum(p[y, z] for z in zs) for y in ys}
    pz = {z: sum(p[y, z] for y in ys) for z in zs}
    phone_purity = sum(pz[z] * max(p[y, z] / pz[z] for y in ys) for z in zs if pz[z] > 0)
    cluster_purity = sum(py[y] * max(p[y, z] / py[y] for z in zs) for y in ys)
    mi = sum(p[y, z] * math.log(p[y, z] / (py[y] * pz[z])) for y in ys for z in zs if p[y, z] > 0)
    hy = -sum(py[y] * math.log(py[y]) for y in ys)
    return phone_purity, cluster_purity, mi / hy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unit_quality_matches_the_definitions(seed):
    rng = np.random.default_rng(seed)
    phones = rng.integers(0, 5, 300) * 7  # phone ids need not be contiguous
    units = (phones // 7 + rng.integers(0, 3, 300)) % 6
    q = unit_quality(phones, units, 6)
    assert (q.phone_purity, q.cluster_purity, q.pnmi) == pytest.approx(reference(phones, units, 6))


def test_unit_quality_closed_forms():
    phones = np.repeat(np.arange(4), 24)
    perfect = unit_quality(phones, (phones + 1) % 4, 4)
    assert (perfect.phone_purity, perfect.cluster_purity, perfect.pnmi) == pytest.approx((1, 1, 1))
    independent = unit_quality(phones, np.tile(np.arange(4), 24), 4)
    assert independent.pnmi == pytest.approx(0, abs=1e-12)
    assert independent.phone_purity == pytest.approx(0.25)
