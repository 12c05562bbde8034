"""Corpus I/O: startup, batch rate and worker memory for many short files, three ways.

A corpus of ``--files`` short utterances (default 100,000; 0.3 to 3 s at 16 kHz, 16-bit
FLAC, LibriSpeech's ``SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` layout, 400 files a
speaker) is written once into a cache folder and kept across runs (the time writing
took is recorded beside it), then stored three ways:

- ``folder``: the tree itself (``data.train=DIR``: listed and every header probed);
- ``fairseq``: a wav2vec ``.tsv`` manifest (root line, ``path<TAB>num_samples``),
  whose lengths spare the probe of every file;
- ``webdataset``: tar shards written by ``cpc data shard`` (the package's writer),
  ``data.train=shards-{000000..N}.tar`` (local shards are indexed: tar headers only).

Each storage is measured in a fresh process (so its memory is its own) through the
trainer's own code path: the paper preset (``configs/speech_paper.yaml``: batches of 8
windows of 20480 samples, same-speaker batches, 2 loader workers) loaded with
``data.train`` pointing at it, :func:`cpc.train.loaders.build_data` (listing, probing,
the validation split, the grouped sampler) and ``TrainData.epoch_loader``, as
:func:`cpc.train.trainer.train` calls them:

- **startup**: from ``build_data`` to the first batch in hand, with 0 and 2 workers
  (``build_data`` timed apart: it is the listing and probing);
- **steady-state rate**: batches per second after the first ``warmup`` batches, with
  nothing else running in the process: the loader's own speed, not overlapped with a
  step (with workers, a step waits only for what the workers cannot hide). The time per
  batch is set against one paper training step timed on this machine
  (:func:`benchmarks.steps.bench_workload`), target below 5% with 2 workers;
- **memory**: peak resident set (``VmHWM``) of the main process and of each loader
  worker, and the main process's resident set before ``build_data`` (torch and the
  interpreter); with psutil, a worker's unique set (``uss``) too, the memory it does not
  share with the process it was forked from.

The files were just written or read, so they are in the page cache: startup here is a
warm-cache number (a cold disk adds its reads; dropping the cache needs root).

Run: ``python -m benchmarks.corpus_io --files 2000`` (writes ``corpus_io.json``; the full
size through ``python -m benchmarks.run --only corpus_io``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from benchmarks.common import ROOT, MatmulProbe, machine_info, median, pick_device
from benchmarks.report import _table
from benchmarks.steps import bench_workload
from benchmarks.workloads import workloads
from cpc.cli import main as cpc_main
from cpc.config import load_config
from cpc.data.registry import build_model
from cpc.train.loaders import build_data

RATE = 16000
PRESET = "configs/speech_paper.yaml"
FILES_PER_SPEAKER = 400
CHAPTERS_PER_SPEAKER = 4
SECONDS = (0.3, 3.0)
SHARD_SIZE = "100MB"
STORAGES = ("folder", "fairseq", "webdataset")
WORKERS = (0, 2)
TARGET_SHARE = 0.05  # the pipeline's time per batch, with 2 workers, against a paper step
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cpc-benchmarks"


# --- the corpus, written once -------------------------------------------------------


def _relative(i: int, files: int) -> str:
    """``SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` of file ``i`` (LibriSpeech's names)."""
    speaker, n = divmod(i, FILES_PER_SPEAKER)
    chapter = n % CHAPTERS_PER_SPEAKER
    s, c = 100 + speaker, 1000 + chapter
    return f"{s}/{c}/{s}-{c}-{n:04d}.flac"


def _write_some(root: str, first: int, last: int, files: int) -> list[tuple[str, int]]:
    """Files ``first..last-1``: a tone in quiet noise, each its own seeded length."""
    out = []
    for i in range(first, last):
        rng = np.random.default_rng([i, 1201])
        n = int(rng.uniform(*SECONDS) * RATE)
        t = np.arange(n) / RATE
        wave = 0.05 * np.sin(2 * np.pi * (100 + i % 300) * t) + 0.003 * rng.standard_normal(n)
        path = Path(root) / _relative(i, files)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), RATE, subtype="PCM_16")
        out.append((_relative(i, files), n))
    return out


def _write_folder(folder: Path, files: int, processes: int) -> list[tuple[str, int]]:
    step = 2000
    with ProcessPoolExecutor(processes) as pool:
        parts = [
            pool.submit(_write_some, str(folder), a, min(a + step, files), files)
            for a in range(0, files, step)
        ]
        return [row for part in parts for row in part.result()]


def _shard(folder: Path, out: Path) -> str:
    """``cpc data shard FOLDER --out OUT`` in this process; the pattern it wrote."""
    args = ["data", "shard", str(folder), "--out", str(out), "--shard-size", SHARD_SIZE]
    if cpc_main([*args, "--group-from", "grandparent", "--overwrite"]) != 0:
        raise RuntimeError("cpc data shard failed (its message is above)")
    return str(out / json.loads((out / "shards.json").read_text())["pattern"])


def ensure_corpus(cache: Path, files: int, processes: int | None = None) -> dict[str, Any]:
    """The corpus of ``files`` files under ``cache`` in all three storages.

    Written on the first call (its ``corpus.json`` last, so a write cut short is redone)
    and reused afterwards; the returned dict says where each storage is and how long
    writing took when it was written.
    """
    root = cache / f"corpus-io-{files}"
    stamp = root / "corpus.json"
    if stamp.is_file():
        return {**json.loads(stamp.read_text()), "reused": True}
    root.mkdir(parents=True, exist_ok=True)
    processes = processes or os.cpu_count() or 1
    folder = root / "folder"
    start = time.perf_counter()
    lengths = _write_folder(folder, files, processes)
    folder_s = time.perf_counter() - start
    start = time.perf_counter()
    tsv = root / "train.tsv"
    tsv.write_text(f"{folder}\n" + "".join(f"{p}\t{n}\n" for p, n in lengths))
    tsv_s = time.perf_counter() - start
    start = time.perf_counter()
    pattern = _shard(folder, root / "shards")
    shards_s = time.perf_counter() - start
    corpus = {
        "files": files,
        "seconds": sum(n for _, n in lengths) / RATE,
        "bytes": sum((folder / p).stat().st_size for p, _ in lengths),
        "sources": {"folder": str(folder), "fairseq": str(tsv), "webdataset": pattern},
        "write_s": {"folder": folder_s, "fairseq": tsv_s, "webdataset": shards_s},
        "write_processes": processes,
        "write_load_average": list(os.getloadavg()),
    }
    stamp.write_text(json.dumps(corpus, indent=1) + "\n")
    return {**corpus, "reused": False}


# --- one storage, measured in a fresh process ---------------------------------------


def _status_kb(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (None when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _children() -> list[int]:
    """Pids of this process's children (the loader's workers)."""
    me = str(os.getpid())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me:  # the field after the state: ppid
            pids.append(int(entry.name))
    return pids


def _worker_memory() -> list[dict[str, float | None]]:
    """Peak and unique memory (MB) of every live child of this process."""
    try:
        import psutil  # optional: the unique set size
    except ImportError:
        psutil = None
    out = []
    for pid in _children():
        peak = _status_kb(pid, "VmHWM")
        uss = None
        if psutil is not None:
            try:
                uss = psutil.Process(pid).memory_full_info().uss / 2**20
            except (psutil.Error, OSError):
                uss = None
        out.append({"peak_mb": peak / 1024 if peak else None, "uss_mb": uss})
    return out


def _loader_run(data: Any, workers: int, batches: int, warmup: int) -> dict[str, Any]:
    """First-batch time and steady-state rate of one epoch's loader with ``workers``."""
    start = time.perf_counter()
    loader = data.epoch_loader(workers, 0, seed=0, num_workers=workers)  # epoch = workers
    batches_in = iter(loader)
    next(batches_in)
    first_s = time.perf_counter() - start
    available = len(loader) - 1 if hasattr(loader, "__len__") else batches + warmup
    warmup = min(warmup, max(0, available - 2))
    take = max(1, min(batches, available - warmup))
    for _ in range(warmup):
        next(batches_in)
    stamps = [time.perf_counter()]
    for _ in range(take):
        next(batches_in)
        stamps.append(time.perf_counter())
    memory = _worker_memory() if workers else []
    del batches_in, loader  # the workers exit
    per_batch = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "workers": workers,
        "first_batch_s": first_s,
        "batches": take,
        "warmup": warmup,
        "batch_s": (stamps[-1] - stamps[0]) / take,
        "median_batch_s": median(per_batch),
        "batches_per_s": take / (stamps[-1] - stamps[0]),
        "worker_memory": memory,
    }


def measure(source: str, batches: int, warmup: int) -> dict[str, Any]:
    """One storage through the trainer's path: build_data, then a loader per worker count."""
    torch.set_num_threads(1)  # as a loader worker runs; the main process only collates here
    config = load_config(ROOT / PRESET, [f"data.train={source}", "run.device=cpu"])
    model = build_model(config.model)
    base_kb = _status_kb(os.getpid(), "VmRSS") or 0
    load = list(os.getloadavg())
    start = time.perf_counter()
    data = build_data(config, model)
    build_s = time.perf_counter() - start
    runs = [_loader_run(data, w, batches, warmup) for w in WORKERS]
    return {
        "build_data_s": build_s,
        "items": data.summary.get("train_items"),
        "skipped": data.summary.get("skipped"),
        "batch": config.data.batch_size,
        "window": config.data.window,
        "runs": runs,
        "main_rss_before_mb": base_kb / 1024,
        "main_peak_mb": (_status_kb(os.getpid(), "VmHWM") or 0) / 1024,
        "load_average": load,
        "load_average_end": list(os.getloadavg()),
    }


def _measure_in_subprocess(source: str, batches: int, warmup: int) -> dict[str, Any]:
    code = (
        "import json, sys; from benchmarks.corpus_io import measure; "
        "print('RESULT ' + json.dumps(measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path[1:2]])}
    done = subprocess.run(
        [sys.executable, "-c", code, source, str(batches), str(warmup)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"measuring {source} failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(line[len("RESULT ") :]))


def paper_step_s(device_name: str = "cpu", repeats: int = 3) -> float:
    """One paper training step on this machine: the ``steps`` section's own timing."""
    device = pick_device(device_name)
    paper = workloads(device)["paper"]
    return float(bench_workload(paper, MatmulProbe(device), repeats, memory=False)["time_s"])


def corpus_io(
    step_time_s: float,
    files: int = 100_000,
    cache: Path = DEFAULT_CACHE,
    batches: int = 40,
    warmup: int = 5,
    isolate: bool = True,
) -> dict[str, Any]:
    """The section: the corpus (written once), then each storage in its own process
    (``isolate=False``: in this one, whose memory then is not the storage's own).
    """
    corpus = ensure_corpus(cache, files)
    measure_one = _measure_in_subprocess if isolate else measure
    rows = []
    for storage in STORAGES:
        row = measure_one(corpus["sources"][storage], batches, warmup)
        row["storage"] = storage
        for run in row["runs"]:
            run["share_of_step"] = run["batch_s"] / step_time_s
        rows.append(row)
    return {
        "files": files,
        "preset": PRESET,
        "corpus": corpus,
        "step_time_s": step_time_s,
        "target_share": TARGET_SHARE,
        "rows": rows,
    }


# --- the report ---------------------------------------------------------------------


def _run_of(row: dict[str, Any], workers: int) -> dict[str, Any]:
    return next(r for r in row["runs"] if r["workers"] == workers)


def _peak(run: dict[str, Any], key: str) -> float | None:
    values = [m[key] for m in run["worker_memory"] if m.get(key) is not None]
    return max(values) if values else None


def target_row(result: dict[str, Any]) -> dict[str, Any]:
    """The 5% target (worst storage, 2 workers) as a row of the report's target table."""
    worst = max(result["rows"], key=lambda r: _run_of(r, 2)["share_of_step"])
    share = _run_of(worst, 2)["share_of_step"]
    return {
        "what": f"corpus I/O, {result['files']} files: time per batch with 2 workers "
        "/ paper step (worst storage)",
        "target": f"< {result['target_share']:.0%}",
        "measured": f"{share:.1%} ({worst['storage']})",
        "met": share < result["target_share"],
    }


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table_row(r: dict[str, Any]) -> list[str]:
    zero, two = _run_of(r, 0), _run_of(r, 2)
    return [
        r["storage"],
        f"{r['build_data_s']:.2f}",
        f"{r['build_data_s'] + zero['first_batch_s']:.2f} / "
        f"{r['build_data_s'] + two['first_batch_s']:.2f}",
        f"{zero['batches_per_s']:.1f} / {two['batches_per_s']:.1f}",
        f"{zero['share_of_step']:.1%} / {two['share_of_step']:.1%}",
        f"{_mb(_peak(two, 'peak_mb'))} ({_mb(_peak(two, 'uss_mb'))} own)",
        f"{r['main_peak_mb']:.0f} ({r['main_rss_before_mb']:.0f} before)",
        " ".join(f"{x:.1f}" for x in r["load_average"]),
    ]


def markdown(result: dict[str, Any], table: Any) -> list[str]:
    """The section of the machine's report."""
    c = result["corpus"]
    written = ", ".join(f"{k} {v:.0f} s" for k, v in c["write_s"].items())
    out = ["## Corpus I/O: a folder, a manifest and shards", ""]
    out += [
        f"{result['files']} FLAC files of 0.3-3 s at 16 kHz ({c['seconds'] / 3600:.1f} h, "
        f"{c['bytes'] / 1e9:.2f} GB), read through the trainer's path with "
        f"`{result['preset']}` (batch {result['rows'][0]['batch']} x "
        f"{result['rows'][0]['window']}, same-speaker batches); each storage in a fresh "
        f"process, files in the page cache. Paper step {result['step_time_s'] * 1e3:.0f} ms. "
        f"Writing the corpus took {written} ({c['write_processes']} processes)"
        + (" on an earlier run (cached)." if c.get("reused") else "."),
        "",
    ]
    out += table(
        [
            "storage",
            "build_data s",
            "startup to 1st batch s, 0 / 2 workers",
            "batches/s, 0 / 2 workers",
            "batch / paper step, 0 / 2 workers",
            "worker peak MB",
            "main peak MB",
            "load average",
        ],
        [_table_row(r) for r in result["rows"]],
    )
    return out


# --- standalone ---------------------------------------------------------------------


def main() -> None:
    """Measure and write ``corpus_io.json`` and ``corpus_io.md`` into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per loader")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--step-s", type=float, help="paper step seconds (default: time it)")
    args = parser.parse_args()
    step = args.step_s or paper_step_s()
    result = corpus_io(step, args.files, args.cache, args.batches)
    info = machine_info(pick_device("cpu"))
    info["command"] = "python -m benchmarks.corpus_io " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "corpus_io.json").write_text(json.dumps({"machine": info, **result}, indent=1))
    text = "\n".join(markdown(result, _table)) + "\n"
    (args.out / "corpus_io.md").write_text(text)
    print(text)
    print(target_row(result))


if __name__ == "__main__":
    main()
