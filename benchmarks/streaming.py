"""Streaming extraction (``cpc extract --stream MS``): real-time factor and per-piece latency.

Audio is pushed through :class:`cpc.features.streaming.Streamer` in pieces of 10 ms and 100 ms,
as a live source would deliver it, one thread. Per piece we time ``push`` (the compute
latency a caller waits for); the real-time factor is seconds of audio per second of
compute over the whole recording. The algorithmic latency (samples a feature must wait
for) is the receptive field less the encoder's left padding, independent of the piece
size; a piece adds up to its own duration on top. The streamed features are checked
against offline ``model.features`` of the whole recording.

Run: ``python -m benchmarks.streaming [--seconds 20] [--out benchmarks/results]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import ROOT, machine_info
from cpc.features.streaming import Streamer
from cpc.models.builders import cpc_audio
from cpc.models.cpc import CPCModel

RATE = 16000


def models() -> dict[str, CPCModel]:
    """The paper's model and CPC_audio's layout (padded, unbiased layer norm, LSTM)."""
    torch.manual_seed(0)
    return {
        "paper (512 ch, GRU 256)": cpc_audio(),
        "CPC_audio (256 ch padded, LSTM 256)": cpc_audio(
            channels=256, padding=(3, 2, 1, 1, 1), norm="layer_unbiased", context="lstm"
        ),
    }


def time_stream(model: CPCModel, x: torch.Tensor, piece: int, layer: str) -> dict[str, Any]:
    """Push ``x`` in pieces of ``piece`` samples; per-push times and the features."""
    stream = Streamer(model, layer)
    times, parts = [], []
    cpu0 = time.process_time()
    for start in range(0, x.shape[0], piece):
        t0 = time.perf_counter()
        parts.append(stream.push(x[start : start + piece]))
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    t0 = time.perf_counter()
    parts.append(stream.flush())
    total = sum(times) + time.perf_counter() - t0
    feats = torch.cat(parts)
    offline, _ = model.features(x[None], layer=layer)
    ms = sorted(1000 * t for t in times)
    return {
        "piece_ms": 1000 * piece / RATE,
        "layer": layer,
        "realtime_factor": x.shape[0] / RATE / total,
        "push_ms_median": statistics.median(ms),
        "push_ms_p95": ms[int(0.95 * (len(ms) - 1))],
        "push_ms_max": ms[-1],
        "push_cpu_ms_mean": 1000 * cpu / len(times),
        "algorithmic_latency_ms": 1000 * stream.latency_samples / RATE,
        "max_abs_diff_vs_offline": float((feats - offline[0, :, 0]).abs().max()),
        "steps": feats.shape[0],
    }


def main() -> None:
    """Measure and write ``streaming.json`` and ``streaming.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = 0.1 * torch.randn(int(args.seconds * RATE), generator=torch.Generator().manual_seed(0))
    rows = []
    with torch.no_grad():
        for name, model in models().items():
            model.eval()
            for piece_ms in (10, 100):
                row = time_stream(model, x, piece_ms * RATE // 1000, "context")
                rows.append({"model": name, **row})
                print(json.dumps(rows[-1]))
    info = machine_info(torch.device("cpu"))
    info["command"] = "python -m benchmarks.streaming " + " ".join(sys.argv[1:])
    result = {"machine": info, "seconds": args.seconds, "threads": 1, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "streaming.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Streaming extraction",
        "",
        f"`python -m benchmarks.streaming --seconds {args.seconds:g}` (one thread; "
        "random 16 kHz audio; layer `context`). Machine: see `streaming.json`.",
        "",
        "| model | piece | real-time factor | push wall median / p95 / max (ms) "
        "| push CPU mean (ms) | algorithmic latency | max diff vs offline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['piece_ms']:g} ms | {r['realtime_factor']:.1f}x "
            f"| {r['push_ms_median']:.2f} / {r['push_ms_p95']:.2f} / {r['push_ms_max']:.2f} "
            f"| {r['push_cpu_ms_mean']:.2f} "
            f"| {r['algorithmic_latency_ms']:.1f} ms | {r['max_abs_diff_vs_offline']:.1e} |"
        )
    (args.out / "streaming.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
