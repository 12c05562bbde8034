"""A fuzzer for the whole command line: argv drawn from the real parser, run in a fork.

Every verb and sub-verb of :func:`cpc.cli.build_parser` is walked; each example draws a
verb, its required arguments and some optional ones, with values at the edges (numbers:
0, -1, nan, inf, 1e9, 10**30; paths: a good fixture, missing, a folder for a file,
binary garbage, non-UTF-8 text, an empty file, a FIFO, a path under a file). Each call
runs in a forked child (the package is imported once) with ``RLIMIT_AS`` set and a
wall-clock limit, in a fresh working folder, and must:

- exit 0, or exit 2 with exactly one line on stderr and no traceback;
- stay within the memory limit (a ``MemoryError`` is a traceback) and the time limit
  (the long-running verbs, pretraining and the tables, may use it all when their
  arguments are valid: that is a run, not a hang, and is counted apart);
- write nothing when it exits 2 (the working folder is compared before and after).

A fixture makes a real checkpoint, feature folder, units folder, manifest and item file
once per module so that drawn commands get past the argument checks. Each verb is its
own test with an equal share of a fixed, derandomised budget (``CPC_FUZZ_EXAMPLES``,
default 60 in all); a nightly run sets it higher. The cases tried are counted by verb
and printed (run with ``-s`` to see them), and written as JSON to ``$CPC_FUZZ_REPORT``
when it is set.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpc.cli import build_parser, main
from tests.train.conftest import TINY_MODEL, run_python, write_wavs

EXAMPLES = int(os.environ.get("CPC_FUZZ_EXAMPLES", "60"))
TIME_LIMIT = float(os.environ.get("CPC_FUZZ_SECONDS", "60"))
#: Seconds after which a long-running verb (below) counts as running, not hanging.
LONG_LIMIT = 4.0
MEMORY_LIMIT = 3 << 30  # bytes of address space a call may add to the parent's
#: Verbs that train or generate corpora: valid arguments may run past the time limit.
LONG_RUNNING = {
    "pretrain", "demo", "table1", "quickstart", "data pen", "data espeak", "signatures", "suite",
    "units quality",
}  # fmt: skip
NUMBERS = ["0", "-1", "1", "2", "nan", "inf", "-inf", "1e9", str(10**30), "0.5", "abc"]
INTS = ["0", "-1", "1", "2", "3", "1000000000", str(10**30), "abc"]
WORDS = ["context", "encoder", "context.9", "speaker", "", "xx", "cuda:7", "cpu", "en"]
OVERRIDES = ["model.channels=0", "optim.max_steps=1", "x", "run.max_time=1", "data.window=1e30"]
INPUTS = {  # the argument's dest -> which fixture path is the good one
    "checkpoint": "run",
    "input": "wavs",
    "features": "feats",
    "config": "config",
    "item_file": "item",
    "manifest": "manifest",
    "units": "units",
    "corpus": "wavs",
    "ts": "garbage",
    "frame_labels": "labels",
    "label_names": "names",
}
BAD_PATHS = ["missing", "folder", "garbage", "nonutf8", "empty", "fifo", "under_file"]
OUTPUTS = {"out", "output"}

COUNTS: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()


# --- the parser, walked ----------------------------------------------------------------


def verbs(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict:
    """``{("data", "pen"): parser, ...}``: every leaf sub-command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {path: parser}
    found = {}
    for name, child in subs[0].choices.items():
        found.update(verbs(child, (*path, name)))
    return found


VERBS = verbs(build_parser())


def _value(action: argparse.Action, paths: dict[str, Path]) -> st.SearchStrategy[str]:
    if action.choices is not None:
        return st.sampled_from([str(c) for c in action.choices] + ["nonsense"])
    if action.dest in OUTPUTS:
        places = ["out", "out", "file", "file/sub", "full"]
        return st.sampled_from([f"{{sandbox}}/{p}" for p in places])
    if action.dest in INPUTS:
        good = str(paths[INPUTS[action.dest]])
        return st.sampled_from([good, good, *(str(paths[b]) for b in BAD_PATHS)])
    if action.type is int:
        return st.sampled_from(INTS)
    if action.type is float:
        return st.sampled_from(NUMBERS)
    if action.dest in ("overrides", "row"):
        return st.sampled_from(OVERRIDES)
    return st.sampled_from(WORDS)


@st.composite
def command(draw: st.DrawFn, path: tuple[str, ...], paths: dict[str, Path]) -> list[str]:
    """An argv for the verb ``path``, drawn from its parser's actions."""
    argv = list(path)
    for action in VERBS[path]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        wanted = action.required or draw(st.booleans())
        if not wanted:
            continue
        if action.nargs == 0:  # a flag
            argv.append(action.option_strings[0])
            continue
        count = draw(st.integers(1, 2)) if action.nargs in ("+", "*") else 1
        if action.dest == "checkpoint" and path == ("convert", "cpc_audio"):
            hub = [str(paths["cpc_audio"]), *(str(paths[b]) for b in BAD_PATHS)]
            values = [draw(st.sampled_from(hub))]
        else:
            values = [draw(_value(action, paths)) for _ in range(count)]
        if action.option_strings:
            argv.append(action.option_strings[0])
        argv.extend(values)
    return argv


# --- the fixture: real inputs, made once -----------------------------------------------


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    wavs = write_wavs(root / "wavs", count=4)
    run, feats, units = root / "run", root / "feats", root / "units"
    fast = [*TINY_MODEL, "data.window=1024", "data.batch_size=2", "optim.max_steps=1"]
    fast += ["optim.warmup_steps=1", "run.progress=false", "run.device=cpu"]
    steps = [
        ["pretrain", "configs/speech_small_cpu.yaml", *fast, f"data.train={wavs}"],
        ["extract", "--checkpoint", str(run), "--input", str(wavs), "--output", str(feats)],
        ["units", "fit", str(feats), "--k", "2", "--out", str(units)],
    ]
    steps[0].append(f"run.out_dir={run}")
    for argv in steps:  # in a child: the parent never runs torch before forking
        done = run_python(["-m", "cpc.cli", *argv], timeout=300)
        assert done.returncode == 0, done.stderr
    try:  # imported once here, not by each child of `cpc data ucr` (tens of seconds)
        import aeon.datasets  # noqa: F401
    except ImportError:
        pass
    files = sorted(wavs.rglob("*.wav"))
    (root / "manifest.csv").write_text(
        "path,speaker\n" + "".join(f"{p},{p.parent.name}\n" for p in files)
    )
    (root / "labels").mkdir()
    for p in files:
        np.save(root / "labels" / f"{p.stem}.npy", np.zeros(40, np.int64))
    (root / "names.json").write_text('["a", "b"]')
    header = "#file onset offset #phone prev next speaker"
    (root / "x.item").write_text(f"{header}\nf0 0.01 0.05 a b c spk0\nf1 0.01 0.05 b a c spk1\n")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (root / "nonutf8.txt").write_bytes(b"path,speaker\n\xff\xfe\xfa,\x80\n")
    (root / "empty").write_bytes(b"")
    (root / "folder").mkdir()
    os.mkfifo(root / "fifo")
    return {
        "wavs": wavs,
        "run": run,
        "feats": feats,
        "units": units,
        "config": Path("configs/speech_small_cpu.yaml").resolve(),
        "cpc_audio": Path(__file__).parents[1] / "fixtures/cpc_audio/default_hub/checkpoint.pt",
        "manifest": root / "manifest.csv",
        "labels": root / "labels",
        "names": root / "names.json",
        "item": root / "x.item",
        "garbage": root / "garbage.bin",
        "nonutf8": root / "nonutf8.txt",
        "empty": root / "empty",
        "folder": root / "folder",
        "fifo": root / "fifo",
        "missing": root / "missing",
        "under_file": root / "garbage.bin" / "sub",
    }


# --- one call in a forked child --------------------------------------------------------


def _child(argv: list[str], sandbox: Path, logs: Path) -> None:  # pragma: no cover (child)
    code = 70
    try:
        os.chdir(sandbox)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(logs / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_LIMIT, used + MEMORY_LIMIT))
        code = main(argv)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


#: Children are forked from a fresh single-threaded server process, never from pytest's
#: own: after other tests ran torch's OpenMP pool in this process, a plain fork() child
#: can deadlock on the pool's lock as soon as it computes (seen: futex wait in the child).
_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(["cpc.cli", "tests.cli.test_fuzz"])


def run_forked(argv: list[str], sandbox: Path, logs: Path, limit: float) -> tuple[int | None, str]:
    """(exit code or None past ``limit`` seconds, stderr) of ``cpc argv`` in a fork."""
    child = _SERVER.Process(target=_child, args=(argv, sandbox, logs))
    child.start()
    child.join(limit)
    if child.is_alive():
        child.kill()
        child.join()
        return None, (logs / "stderr").read_text(errors="replace")
    return child.exitcode, (logs / "stderr").read_text(errors="replace")


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("verb", [" ".join(path) for path in sorted(VERBS)])
def test_every_verb_exits_cleanly_on_drawn_argv(
    verb: str, paths: dict[str, Path], tmp_path: Path
) -> None:
    counter = iter(range(10**9))

    @settings(
        max_examples=max(1, EXAMPLES // len(VERBS)),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(template=command(tuple(verb.split()), paths))
    def one(template: list[str]) -> None:
        n = next(counter)
        sandbox, logs = tmp_path / f"s{n}", tmp_path / f"l{n}"
        sandbox.mkdir()
        logs.mkdir()
        (sandbox / "file").write_bytes(b"\x00\x01")
        (sandbox / "full").mkdir()
        (sandbox / "full" / "keep.txt").write_text("x")
        argv = [a.replace("{sandbox}", str(sandbox)) for a in template]
        before = _tree(sandbox)
        limit = LONG_LIMIT if verb in LONG_RUNNING else TIME_LIMIT
        code, err = run_forked(argv, sandbox, logs, limit)
        COUNTS[verb] += 1
        shown = f"cpc {' '.join(argv)}\n{err[-3000:]}"
        assert "Traceback" not in err, shown
        if code is None:
            OUTCOMES[f"{verb}: still running at the time limit"] += 1
            assert verb in LONG_RUNNING, f"time limit: {shown}"
            return
        OUTCOMES[f"{verb}: exit {code}"] += 1
        assert code in (0, 2), shown
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1, shown
            assert lines[0].startswith("cpc "), shown
            assert _tree(sandbox) == before, f"wrote on exit 2: {shown}"

    one()
    report = {"examples": sum(COUNTS.values()), "by_verb": dict(sorted(COUNTS.items()))}
    report["outcomes"] = dict(sorted(OUTCOMES.items()))
    print(f"\n{verb}: {COUNTS[verb]} cases")
    if os.environ.get("CPC_FUZZ_REPORT"):
        Path(os.environ["CPC_FUZZ_REPORT"]).write_text(json.dumps(report, indent=1))
    assert COUNTS[verb] >= 1
