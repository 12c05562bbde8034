"""`cpc probe` and `cpc abx` end to end from `cpc extract` output on the built-in corpus."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cpc.cli import main
from cpc.eval.probes import linear_probe
from cpc.eval.splits import split_within_groups


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A tiny corpus, a 3-step model, and its context and encoder features."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("probe")
    corpus, run = tmp / "espeak", tmp / "run"
    args = ["data", "espeak", "--out", str(corpus), "--minutes", "0.8", "--speakers", "3"]
    assert main(args) == 0
    overrides = [
        f"data.train={corpus / 'manifest.csv'}",
        f"run.out_dir={run}",
        "model.channels=16",
        "model.context_dim=16",
        "model.num_negatives=8",
        "data.window=4000",
        "data.batch_size=4",
        "optim.max_steps=3",
        "optim.warmup_steps=1",
        "run.progress=false",
    ]
    assert main(["pretrain", "configs/speech_small_cpu.yaml", *overrides]) == 0
    feats = {}
    for layer in ("context", "encoder"):
        feats[layer] = tmp / layer
        cmd = ["extract", "--checkpoint", str(run), "--input", str(corpus / "manifest.csv")]
        assert main([*cmd, "--output", str(feats[layer]), "--layer", layer]) == 0
    yield corpus, feats, tmp
    torch.set_num_threads(before)


def test_probe_sequence_labels_match_the_python_api(extracted, capsys):
    corpus, feats, tmp = extracted
    out = tmp / "probe_speaker"
    args = ["probe", f"cpc={feats['context']}", f"enc={feats['encoder']}"]
    args += ["--manifest", str(corpus / "manifest.csv"), "--label", "speaker", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| cpc |" in printed and "| enc |" in printed
    report = json.loads((out / "probe.json").read_text())["results"]
    assert set(report) == {"speaker (linear)", "speaker (kNN, k=5)", "speaker verification EER"}
    eer = report["speaker verification EER"]["cpc"]["eer"]
    assert 0.0 <= eer <= 1.0

    # The same probe through the Python API on the extracted arrays gives the same number.
    with open(corpus / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    index = {Path(r["path"]).stem: r["features"] for r in _index(feats["context"])}
    pooled = torch.stack(
        [
            torch.from_numpy(np.load(feats["context"] / index[Path(r["path"]).stem])).mean(0)
            for r in rows
        ]
    )
    names, y = np.unique([r["speaker"] for r in rows], return_inverse=True)
    tr, te = split_within_groups(y, 0.3, 0)
    want = linear_probe(pooled[tr], y[tr], pooled[te], y[te], num_classes=len(names), seed=0)
    assert report["speaker (linear)"]["cpc"]["accuracy"] == pytest.approx(want.accuracy)
    assert (out / "probe.md").is_file() and list(out.glob("*.png"))


def test_probe_frame_labels_split_by_speaker(extracted, capsys):
    corpus, feats, tmp = extracted
    out = tmp / "probe_frames"
    args = ["probe", str(feats["context"]), "--manifest", str(corpus / "manifest.csv")]
    args += ["--frame-labels", str(corpus / "phones"), "--label-offset", "1"]
    args += ["--label-names", str(corpus / "phones.json"), "--split-by", "speaker"]
    args += ["--probes", "linear", "knn", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "probe.json").read_text())["results"]
    linear = report["frames (linear)"]["context"]
    assert len(linear["per_class_accuracy"]) == len(
        json.loads((corpus / "phones.json").read_text())["phones"]
    )
    assert 0.0 < linear["accuracy"] <= 1.0
    assert "whole 'speaker' groups held out" in (out / "probe.md").read_text()


def test_probe_input_errors_are_one_line(extracted, capsys):
    corpus, feats, tmp = extracted
    base = ["probe", str(feats["context"]), "--manifest", str(corpus / "manifest.csv")]
    assert main([*base, "--label", "accent"]) == 2
    err = capsys.readouterr().err
    assert "no column 'accent'" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "--frame-labels", str(tmp / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert (
        main(
            [
                "probe",
                str(tmp / "nofeats"),
                "--manifest",
                str(corpus / "manifest.csv"),
                "--label",
                "speaker",
            ]
        )
        == 2
    )
    assert "nofeats" in capsys.readouterr().err


def test_abx_on_extracted_features(extracted, capsys):
    corpus, feats, tmp = extracted
    item = tmp / "corpus.item"
    assert main(["data", "item", str(corpus), str(item)]) == 0
    capsys.readouterr()
    out = tmp / "abx.json"
    assert main(["abx", str(feats["context"]), str(item), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ABX error within speakers" in printed and "ABX error across speakers" in printed
    result = json.loads(out.read_text())
    # extract.json gives 100 frames/s and the receptive-field centre: (465 - 160) / 320 steps
    assert result["rate"] == pytest.approx(100.0)
    assert result["shift"] == pytest.approx(0.01 * 305 / 320)
    assert result["across"] is not None and 0.0 <= result["across"] <= 1.0
    assert main(["abx", str(feats["context"]), str(tmp / "none.item")]) == 2
    assert "none.item" in capsys.readouterr().err


def _index(folder):
    with open(folder / "index.csv", newline="") as f:
        return list(csv.DictReader(f))
