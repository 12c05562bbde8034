"""The Table-1 pipeline end to end at a tiny size (the numbers are not checked here)."""

import json

import torch

from cpc.experiments.speech_table import TableSettings, run_speech_table


def test_pipeline_writes_tables_and_plots(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # a relative output folder, as `cpc quickstart` uses
    settings = TableSettings(
        corpus_minutes=2.0,
        corpus_speakers=3,
        unseen_speakers=1,
        speaker_corpus_minutes=0.5,
        speaker_corpus_speakers=4,
        max_steps=3,
        ablation_offsets=[2, 12],
        overrides=[
            "model.channels=16",
            "model.context_dim=16",
            "data.window=8000",
            "data.batch_size=4",
            "run.val_every=2",
            "optim.warmup_steps=1",
        ],
        rows={"4 offsets": ["model.num_offsets=4"]},
    )
    out = run_speech_table("table", settings, "test")
    tmp_path = tmp_path / "table"
    table = json.loads((tmp_path / "table1.json").read_text())["results"]
    rows = {"CPC", "random init", "MFCC", "4 offsets"}
    assert set(table["phone, seen speakers"]) == rows
    for mode in ("within", "across"):
        abx = table[f"ABX error, {mode} speakers"]
        assert set(abx) == rows, abx
    across = table["ABX error, across speakers"]
    assert all(0.0 <= v <= 1.0 for v in across.values()), across
    assert (tmp_path / "run_4_offsets" / "config.yaml").is_file() or any(
        (tmp_path / "run_4_offsets").iterdir()
    )
    assert set(out["steps"]) == {"2 steps", "12 steps"}
    assert not (tmp_path / "run_k12").exists(), "the main model covers its own offsets"
    for png in ["training_curves.png", "phone_confusion.png", "phone_vs_steps.png"]:
        assert (tmp_path / png).stat().st_size > 1000
    md = (tmp_path / "table1.md").read_text()
    assert "| CPC |" in md and "alignment" in md
