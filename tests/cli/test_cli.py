"""The command line end to end: data -> pretrain -> info -> extract, and input errors."""

import numpy as np
import pytest

from cpc.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_espeak_pretrain_info_extract(tmp_path, capsys):
    corpus, run = tmp_path / "espeak", tmp_path / "run"
    assert (
        main(["data", "espeak", "--out", str(corpus), "--minutes", "0.3", "--speakers", "2"]) == 0
    )
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
        "run.ckpt_every=2",
        "run.progress=false",
    ]
    assert main(["pretrain", "configs/speech_small_cpu.yaml", *overrides]) == 0
    assert main(["info", str(run)]) == 0
    assert "step: 3" in capsys.readouterr().out
    out = tmp_path / "feats"
    assert (
        main(["extract", "--checkpoint", str(run), "--input", str(corpus), "--output", str(out)])
        == 0
    )
    rows = (out / "index.csv").read_text().splitlines()[1:]
    assert len(rows) > 0
    _, name, steps, _ = rows[0].split(",")
    assert np.load(out / name).shape == (int(steps), 16)


def test_bad_override_is_one_clear_line(capsys):
    assert main(["pretrain", "configs/speech_small_cpu.yaml", "model.chanels=4"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'model.chanels'" in err and "Traceback" not in err


def test_missing_checkpoint_is_named(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "offsets"),
    [([], [2, 4, 8, 12]), (["--ablation"], [2, 4, 8, 12]), (["--ablation", "3", "6"], [3, 6]),
     (["--no-ablation"], [])],
)  # fmt: skip
def test_table1_ablation_flag(monkeypatch, tmp_path, flags, offsets):
    """``--ablation`` alone asks for the default ablation; it used to switch it off."""
    import cpc.cli.tables

    seen = {}
    monkeypatch.setattr(
        cpc.cli.tables, "_table", lambda args, settings: seen.update(s=settings) or 0
    )
    main(["table1", "--out", str(tmp_path), *flags])
    assert seen["s"].ablation_offsets == offsets


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--ablation", "4", "0"], "'ablation 0 steps': model.num_offsets"),
     (["--row", "typo", "model.negativs=batch"], "'typo':"),
     (["--row", "too far", "model.num_offsets=80"], "'too far': data.window=10240")],
)  # fmt: skip
def test_table1_checks_every_model_before_any_work(tmp_path, capsys, flags, named):
    """A bad ablation count or row override stops the table at once, not after the main
    model's pretraining, in one line naming the row, and writes nothing."""
    out = tmp_path / "t1"
    assert main(["table1", "--out", str(out), "--steps", "5", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert not out.exists()
