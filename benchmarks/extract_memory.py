"""Peak memory of feature extraction against recording length (1, 3, 10 hours): flat.

Each length is one WAV file (8 kHz telephone-rate PCM, so extraction also resamples to
the model's 16 kHz) written block by block; each extraction runs in a fresh process
whose resident high-water mark (``ru_maxrss`` of the child, from ``os.wait4``) is the
peak. The model is the small speech preset (``speech_small_cpu``: 128 channels, GRU
context of 128) with random weights: memory and time do not depend on the weights.

``--via cli`` measures ``cpc extract`` itself (the default); ``--via api`` the streaming
path alone (``AudioBlocks`` -> ``write_features``), for comparisons.

Run: ``python -m benchmarks.extract_memory --hours 1 3 10`` (writes
``benchmarks/results/extract_memory_{via}.{json,md}``). With the preset's 128 channels
extraction ran at about 27x real time on one busy core of the development machine (a 60 s
check), so the 14 hours take about half an hour of CPU; the committed results use
``--set model.channels=16 model.context_dim=16`` (75 s of CPU for 10 hours).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks.common import ROOT

RATE = 8000


def write_recording(path: Path, hours: float, seed: int = 0) -> None:
    """A long 8 kHz PCM16 recording, written a minute at a time."""
    rng = np.random.default_rng(seed)
    t = np.arange(60 * RATE) / RATE
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as f:
        for minute in range(round(hours * 60)):
            tone = 0.2 * np.sin(2 * np.pi * (200 + 5 * (minute % 40)) * t)
            f.write((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))


def make_checkpoint(folder: Path, overrides: list[str]) -> Path:
    """A run directory holding the small speech preset (with overrides), random weights."""
    import torch

    from cpc.checkpoints.store import TrainState, save_checkpoint
    from cpc.config import load_config
    from cpc.data.registry import build_model

    preset = ROOT / "configs" / "speech_small_cpu.yaml"
    config = load_config(preset, [*overrides, f"run.out_dir={folder}"])
    torch.manual_seed(0)
    model = build_model(config.model)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(folder, model=model, optimizer=optimizer, state=TrainState(), config=config)
    return folder


CHILD = {
    "cli": (
        "import sys, torch; torch.set_num_threads(1); from cpc.cli import main; "
        "sys.exit(main(['extract', '--checkpoint', sys.argv[1], '--input', sys.argv[2], "
        "'--output', sys.argv[3]]))"
    ),
    "api": (
        "import sys, pathlib, torch; torch.set_num_threads(1); import cpc; "
        "from cpc.data.blocks import AudioBlocks; from cpc.features.folder import write_features; "
        "m = cpc.load(sys.argv[1]); f = next(pathlib.Path(sys.argv[2]).glob('*.wav')); "
        "b = AudioBlocks(f, 16000); pathlib.Path(sys.argv[3]).mkdir(); "
        "print(write_features(m, b, b.length, pathlib.Path(sys.argv[3]) / 'f.npy'))"
    ),
}


def measure(via: str, checkpoint: Path, folder: Path, out: Path) -> dict[str, Any]:
    """Run one extraction in a fresh process; its peak RSS and wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD[via], str(checkpoint), str(folder), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    _, stderr = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"extraction failed: {stderr.decode()[-2000:]}")
    features = sum(p.stat().st_size for p in out.glob("*.npy"))
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(seconds, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "features_mb": round(features / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[1, 3, 10])
    parser.add_argument("--via", choices=sorted(CHILD), default="cli")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cpc-extract-memory"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="model overrides, e.g. model.channels=16 model.context_dim=16 (a cheaper model "
        "for a busy machine: memory is flat either way, time is not)",
    )
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    checkpoint = make_checkpoint(args.work / "run", args.set)
    rows = []
    for hours in args.hours:
        folder = args.work / f"audio_{hours:g}h"
        folder.mkdir()
        write_recording(folder / "long.wav", hours)
        out = args.work / f"feats_{hours:g}h"
        row = {"hours": hours, **measure(args.via, checkpoint, folder, out)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        shutil.rmtree(folder)
        shutil.rmtree(out)
    command = "python -m benchmarks.extract_memory " + " ".join(sys.argv[1:])
    result = {
        "command": command,
        "via": args.via,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "model": "speech_small_cpu preset (random weights)"
        + (f" with {' '.join(args.set)}" if args.set else "")
        + ", GRU context, --chunk-steps 1000",
        "input": f"{RATE} Hz mono PCM16 WAV, resampled to 16 kHz",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"extract_memory_{args.via}.json").write_text(json.dumps(result, indent=2))
    table = "\n".join(
        f"| {r['hours']:g} h | {r['peak_rss_mb']:.0f} MB | {r['wall_s']:.0f} s | "
        f"{r['cpu_s']:.0f} s | {r['features_mb']:.0f} MB |"
        for r in rows
    )
    (args.out / f"extract_memory_{args.via}.md").write_text(
        f"# Peak memory of extraction against recording length\n\n`{command}`\n\n"
        f"{result['model']}; {result['input']}; one thread; path: {args.via}.\n\n"
        "| recording | peak RSS | wall | CPU | features written |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    main()
