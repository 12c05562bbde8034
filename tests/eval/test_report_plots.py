import json
from pathlib import Path

import numpy as np
import pytest

from cpc.eval.plots import (
    pca_2d,
    plot_accuracy_vs_offset,
    plot_confusion,
    plot_projection,
    plot_training_curves,
)
from cpc.eval.probes import ProbeResult
from cpc.eval.report import collect_provenance, format_cell, write_report


def probe_result(acc: float) -> ProbeResult:
    return ProbeResult(acc, np.array([acc, np.nan]), np.eye(2, dtype=np.int64), np.zeros(2))


def test_write_report(tmp_path: Path) -> None:
    results = {
        "phone (linear)": {"CPC": 0.6482, "random init": 0.2713, "MFCC": {"accuracy": 0.391}},
        "speaker (linear)": {"CPC": probe_result(0.973), "MFCC": {"accuracy": 0.5, "std": 0.012}},
        "writer EER": {"CPC": {"eer": 0.081}, "random init": float("nan")},
    }
    prov = {"command": "cpc probe --x", "machine": "test"}
    json_path, md_path = write_report(results, tmp_path / "out", "Probes", provenance=prov)
    md = md_path.read_text()
    assert "# Probes" in md
    assert "| features | phone (linear) | speaker (linear) | writer EER |" in md
    assert "| CPC | 64.8 | 97.3 | 8.1 |" in md
    assert "| random init | 27.1 | – | – |" in md
    assert "| MFCC | 39.1 | 50.0 ± 1.2 | – |" in md
    assert "cpc probe --x" in md
    data = json.loads(json_path.read_text())
    assert data["results"]["speaker (linear)"]["CPC"]["accuracy"] == pytest.approx(0.973)
    assert data["results"]["speaker (linear)"]["CPC"]["per_class_accuracy"] == [0.973, None]
    assert data["results"]["writer EER"]["random init"] is None
    assert data["provenance"]["machine"] == "test"


def test_provenance_and_cells() -> None:
    prov = collect_provenance("cmd")
    assert prov["command"] == "cmd"
    assert {"date", "machine", "torch", "git_commit"} <= set(prov)
    assert format_cell(None) == "–"
    assert format_cell(np.float32(0.5)) == "50.0"


def nonempty_png(path: Path) -> bool:
    return (
        path.exists()
        and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        and path.stat().st_size > 1000
    )


def test_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for step in range(0, 500, 50):
        acc = (0.1 + step / 1000 * rng.random(4)).tolist()
        lines.append({"step": step, "split": "train", "loss": 5 - step / 200, "accuracy": acc})
        if step % 100 == 0:
            lines.append({"step": step, "split": "val", "loss": 5.2 - step / 220, "accuracy": acc})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert nonempty_png(plot_training_curves(metrics, tmp_path / "curves.png"))
    assert nonempty_png(plot_training_curves(lines[:3], tmp_path / "curves2.png"))

    accs = {"CPC": [0.9, 0.7, 0.5, 0.4], "random init": [0.3, 0.2, 0.1, 0.1]}
    assert nonempty_png(plot_accuracy_vs_offset(accs, [1, 2, 3, 4], tmp_path / "off.png"))

    names = [f"ph{i}" for i in range(40)]
    conf = rng.integers(0, 5, size=(40, 40)) + np.diag(rng.integers(20, 50, size=40))
    conf[3] = 0
    assert nonempty_png(plot_confusion(conf, names, tmp_path / "conf.png"))

    x = np.concatenate([rng.normal(i * 3, 1, size=(50, 6)) for i in range(4)])
    labels = np.repeat(["a", "b", "c", "d"], 50)
    assert nonempty_png(plot_projection(x, labels, tmp_path / "pca.png"))
    many = np.arange(200) % 30
    assert nonempty_png(plot_projection(x, many, tmp_path / "pca30.png", max_points=100))


def test_pca_matches_svd() -> None:
    x = np.random.default_rng(1).normal(size=(60, 5)) * np.array([5, 3, 1, 0.5, 0.1])
    proj = pca_2d(x)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:2].T
    assert np.allclose(np.abs(proj), np.abs(ref))
