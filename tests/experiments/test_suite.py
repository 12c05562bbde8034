"""``cpc suite`` at its ``--quick`` size, one family per test, and its pieces.

The numbers are not checked (2 pretraining steps); the tests check that every row,
baseline and the untrained network get a cell on every task of their family, that the
report is written, and that the row selection and series geometry behave.
"""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from cpc.cli import main
from cpc.data.recipes.signal import fit_series
from cpc.errors import ConfigError
from cpc.experiments.suite import DEFAULT_ROWS, QUICK, SuiteSettings, run_suite, select_rows
from cpc.experiments.suite_common import DEFAULT_ROW, UNTRAINED, few_labels
from cpc.experiments.suite_images import available as images_available
from cpc.experiments.suite_speech import TASKS, WORDS
from cpc.models.builders import cpc_signal

TWO_ROWS = select_rows(list(DEFAULT_ROWS), [DEFAULT_ROW, "encoder+context features"])


def _run(tmp_path: Path, family: str, **sizes: object) -> dict:
    torch.set_num_threads(1)
    settings = SuiteSettings(
        sizes=dataclasses.replace(QUICK, **sizes), families=(family,), rows=TWO_ROWS
    )
    run_suite(tmp_path / "out", settings, "test")
    assert (tmp_path / "out" / "suite.md").is_file()
    return json.loads((tmp_path / "out" / "suite.json").read_text())


def test_speech_family_fills_every_task_for_every_row_and_baseline(tmp_path):
    record = _run(tmp_path, "speech")
    table = record["results"]["speech"]
    assert list(table) == list(TASKS)
    methods = {r.name for r in TWO_ROWS} | {UNTRAINED, "MFCC (13)", "log-mel (40)"}
    for task in TASKS:
        assert set(table[task]) == methods, task
    words = table["words, leave one voice out"][DEFAULT_ROW]
    assert len(words["folds"]) == QUICK.word_voices  # one fold per held-out voice
    assert record["timings"]["speech"]["total_s"] > 0 and record["load_average"]["speech"]


def test_signals_family_reports_cpc_against_dtw_minirocket_and_statistics(tmp_path):
    pytest.importorskip("aeon")
    record = _run(tmp_path, "signals")
    ucr = record["results"]["signals (UCR/UEA, accuracy)"]["ItalyPowerDemand"]
    expected = {r.name for r in TWO_ROWS} | {UNTRAINED, "statistics", "MiniRocket", "DTW-1NN"}
    assert set(ucr) == expected
    assert all(0.0 <= ucr[m]["accuracy"] <= 1.0 for m in expected)
    notes = " ".join(record["notes"])
    assert "ItalyPowerDemand: shortest series 24 samples" in notes  # the geometry is logged
    sig = record["results"]["signatures (EER, lower is better)"]["skilled forgeries (EER)"]
    assert {f"{DEFAULT_ROW}, pooled", "DTW, local features", f"{UNTRAINED}, DTW"} <= set(sig)


@pytest.mark.skipif(not images_available(), reason="dataset-fashion-mnist not installed")
def test_images_family_probes_rows_pixels_and_the_untrained_network(tmp_path):
    record = _run(tmp_path, "images")
    table = record["results"]["images"]
    for task in table.values():
        assert set(task) == {r.name for r in TWO_ROWS} | {UNTRAINED, "pixels"}


@pytest.mark.parametrize("length", [4, 7, 11, 12, 24, 29, 63, 64, 100, 251, 1460])
def test_series_geometry_fits_the_shortest_series(length):
    geometry = fit_series(length)
    assert geometry.window <= length and geometry.receptive_field <= geometry.window
    assert 1 <= geometry.num_offsets < geometry.steps  # every offset has a target
    model = cpc_signal(
        2, kernels=geometry.kernels, strides=geometry.strides, num_offsets=geometry.num_offsets
    )
    assert model.receptive_field == geometry.receptive_field
    assert model.downsampling == geometry.downsampling
    out = model(torch.randn(3, geometry.window, 2), lengths=torch.full((3,), geometry.window))
    assert torch.isfinite(out.loss)
    assert re.match(rf"shortest series {length} samples -> kernels", geometry.describe())


def test_series_shorter_than_four_samples_are_refused():
    with pytest.raises(ValueError, match="too short"):
        fit_series(3)


def test_row_selection_keeps_the_checkpoint_a_feature_row_reads():
    rows = select_rows(list(DEFAULT_ROWS), ["encoder+context features"])
    assert [r.name for r in rows] == [DEFAULT_ROW, "encoder+context features"]
    with pytest.raises(ConfigError, match="unknown suite row"):
        select_rows(list(DEFAULT_ROWS), ["no such row"])


def test_an_unknown_row_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["suite", "--quick", "--out", str(tmp_path), "--rows", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpc suite: error: unknown suite row") and "\n" not in err


def test_few_labels_is_stratified_with_at_least_one_per_class():
    labels = torch.tensor([0] * 100 + [1] * 10 + [2] * 3).numpy()
    kept = labels[few_labels(labels, 0.02, seed=0)]
    assert (kept == 0).sum() == 2 and (kept == 1).sum() == 1 and (kept == 2).sum() == 1


def test_spoken_words_are_not_in_the_pretraining_grammar():
    grammar = (Path(__file__).parents[2] / "cpc/data/corpora/texts.py").read_text().lower()
    assert not [w for w in WORDS if re.search(rf"\b{w}\b", grammar)]
