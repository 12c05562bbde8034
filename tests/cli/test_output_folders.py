"""One rule for every output folder: one writer at a time, nothing left of a failed run,
a full disk in one line naming the path and the space (see docs/reliability.md)."""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cpc.features.extract as extract
from cpc.cli import build_parser, main
from cpc.train import train
from tests.train.conftest import subprocess_env, tiny_config, write_wavs

#: Verbs whose output is one file, written under a temporary name and renamed.
SINGLE_FILES = {("abx",), ("data", "item"), ("export",)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    wavs = write_wavs(root / "wavs", count=6)
    train(tiny_config(wavs, root / "run", "optim.max_steps=1"))
    return wavs, root / "run"


def one_line(capsys, code_expected=2):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _leaves(parser, path=()):
    """(verb path, sub-parser) of every leaf command."""
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, (*path, name))


def test_every_verb_that_writes_a_folder_holds_it():
    folders = []
    for path, parser in _leaves(build_parser()):
        flags = {s for a in parser._actions for s in a.option_strings} | {
            a.dest for a in parser._actions if not a.option_strings
        }
        if path == ("pretrain",) or not flags & {"--out", "--output", "out"}:
            continue
        func = parser.get_default("func")
        if path in SINGLE_FILES:
            assert not hasattr(func, "__wrapped__"), path
            continue
        assert hasattr(func, "__wrapped__"), f"cpc {' '.join(path)} does not hold its output"
        folders.append(" ".join(path))
    assert sorted(folders) == [
        "convert cpc_audio",
        "data espeak",
        "data librispeech",
        "data pen",
        "data shard",
        "data ucr",
        "demo",
        "extract",
        "pretrained",
        "probe",
        "quickstart",
        "signatures",
        "suite",
        "table1",
        "units apply",
        "units fit",
        "units quality",
    ]


SLOW_EXTRACT = """
import os, sys, time
import cpc.features.extract as extract
from cpc.cli import main
real, go = extract.write_features, sys.argv[1]
def slow(*args, **kwargs):
    result = real(*args, **kwargs)
    while not os.path.exists(go):  # one file written: hold on until the other one tried
        time.sleep(0.05)
    return result
extract.write_features = slow
sys.exit(main(sys.argv[2:]))
"""


def test_two_extract_processes_into_one_output_one_is_refused(trained, tmp_path, capsys):
    wavs, run = trained
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(run), "--input", str(wavs), "--output", str(out)]
    (tmp_path / "slow.py").write_text(SLOW_EXTRACT)
    first = subprocess.Popen(
        [sys.executable, str(tmp_path / "slow.py"), str(tmp_path / "go"), *argv],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # a loaded machine starts processes slowly
        while not list(out.glob("*.npy")) and first.poll() is None:
            assert time.monotonic() < deadline, "the first extraction never wrote a file"
            time.sleep(0.05)  # the first one is writing
        code = main(argv)  # this test's process is the second writer
        (tmp_path / "go").touch()
        _, first_err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert code == 2
    assert f"--output {out} is in use by pid {first.pid}" in one_line(capsys)
    rows = (out / "index.csv").read_text().splitlines()
    assert len(rows) == 7 and len(list(out.glob("*.npy"))) == 6  # the first run's, whole
    assert not (out / ".lock").exists()


def test_extract_onto_a_full_disk_is_one_line_and_leaves_nothing(
    trained, tmp_path, capsys, monkeypatch
):
    wavs, run = trained
    real, written = extract.write_features, []

    def filling(model, blocks, length, path, *args):
        if len(written) == 3:  # the disk is full after three files: a part of the fourth
            Path(path).write_bytes(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(path)
        return real(model, blocks, length, path, *args)

    monkeypatch.setattr(extract, "write_features", filling)
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(run), "--input", str(wavs), "--output", str(out)]
    assert main(argv) == 2
    line = one_line(capsys)
    assert line.startswith(f"cpc extract: error: {out}: not written (No space left on device); ")
    assert " free there, more than " in line and "this run had written " in line
    assert not out.exists()  # it made the folder: nothing of it stays
    monkeypatch.undo()
    assert main(argv) == 0  # space is back
    assert len((out / "index.csv").read_text().splitlines()) == 7


def test_data_pen_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import cpc.data.corpora.pen_sessions as pen

    real, count = np.save, []

    def filling(path, array, *args, **kwargs):
        count.append(path)
        if len(count) > 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, array, *args, **kwargs)

    monkeypatch.setattr(pen.np, "save", filling)
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["data", "pen", "--out", str(out), "--writers", "2", "--samples", "4"]) == 2
    line = one_line(capsys)
    assert f"--out {out}" in line and "No space left on device" in line and "free there" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # what was there stays
