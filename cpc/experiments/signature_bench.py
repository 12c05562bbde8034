"""The signature benchmark of results/signatures/: CPC against DTW and signal statistics.

For each seed ``s``: pretraining writers are drawn with generator seed ``100 + s`` and
evaluation writers with ``200 + s`` (so no evaluation writer is seen in pretraining),
both from the hard setting (:mod:`cpc.data.corpora.pen_sessions`). CPC is pretrained
(``configs/signature_pen_dynamic.yaml``, run seed ``s``) on the pretraining writers'
local features; every verifier is then scored with the protocol of
:mod:`cpc.eval.signatures` on the evaluation writers. Verifiers:

- ``DTW, local features``: DTW over :func:`~cpc.eval.signatures.local_features`.
- ``signal statistics``: Euclidean distance between the 31 statistics of
  :func:`~cpc.eval.baselines.signal_statistics`, standardised with the pretraining set.
- ``CPC <layer>, pooled`` / ``CPC <layer>, DTW``: the pretrained model's frame
  features (context or encoder), standardised per dimension with pretraining-set
  frames, averaged over time (Euclidean distance) or aligned by DTW.
- ``random-init CPC ...``: the same network before training.

Run ``python -m cpc.experiments.signature_bench --out results/signatures --seeds 0 1 2`` (under
``nice``, one thread); ``--quick`` runs toy sizes. Each seed writes ``seed<s>.json``;
the table over seeds goes to ``table.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cpc.data.corpora.pen import SAMPLE_RATE
from cpc.data.corpora.pen_sessions import generate_session_forgeries, generate_session_samples
from cpc.eval.baselines import signal_statistics
from cpc.eval.dtw import dtw_pairs
from cpc.eval.signatures import (
    PairDistance,
    SignatureProtocol,
    VerificationScores,
    local_features,
    score_protocol,
    signature_protocol,
)

PRESET = "signature_pen_dynamic"  # configs/signature_pen_dynamic.yaml, shipped in the package


@dataclass(frozen=True)
class BenchSize:
    """Sizes of one run of the benchmark."""

    pre_writers: int = 60
    eval_writers: int = 25
    sessions: int = 3
    per_session: int = 4
    forgeries: int = 6
    references: int = 4
    steps: int = 800


QUICK = BenchSize(
    pre_writers=6, eval_writers=4, sessions=2, per_session=3, forgeries=2, references=2, steps=10
)

LAYERS = ("context", "encoder")
Items = list[list[np.ndarray]]  # [genuine items, forgery items]


def sequence_distances(items: Items) -> PairDistance:
    """Length-normalised DTW distances between frame sequences (``items[kind][index]``)."""

    def distances(left: list[tuple[int, int]], right: list[tuple[int, int]]) -> np.ndarray:
        return dtw_pairs([items[k][i] for k, i in left], [items[k][i] for k, i in right])

    return distances


def vector_distances(items: Items) -> PairDistance:
    """Euclidean distances between vectors (``items[kind][index]``)."""

    def distances(left: list[tuple[int, int]], right: list[tuple[int, int]]) -> np.ndarray:
        a = np.stack([items[k][i] for k, i in left])
        b = np.stack([items[k][i] for k, i in right])
        return np.linalg.norm(a - b, axis=1)

    return distances


def write_arrays(arrays: list[np.ndarray], writers: np.ndarray, out: Path) -> Path:
    """Every array as a ``.npy`` file, and their manifest (absolute paths)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (array, w) in enumerate(zip(arrays, writers, strict=True)):
        rel = f"w{int(w):03d}_{i:05d}.npy"
        np.save(out / rel, array)
        rows.append({"path": str(out / rel), "writer": f"w{int(w):03d}"})
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        table = csv.DictWriter(f, fieldnames=["path", "writer"])
        table.writeheader()
        table.writerows(rows)
    return manifest


def pretrain(manifest: Path, run_dir: Path, seed: int, steps: int, overrides: list[str]) -> Path:
    """Pretrain the preset on ``manifest``; return the run directory."""
    from cpc.config import load_config
    from cpc.train.trainer import train

    config = load_config(
        PRESET,
        [
            f"data.train={manifest}",
            f"optim.max_steps={steps}",
            f"optim.warmup_steps={max(1, steps // 16)}",
            f"run.out_dir={run_dir}",
            f"run.seed={seed}",
            f"run.val_every={max(1, steps // 4)}",
            f"run.ckpt_every={steps}",
            "run.progress=false",
            *overrides,
        ],
    )
    train(config)
    return run_dir


def frame_features(model: torch.nn.Module, feats: list[np.ndarray], layer: str) -> list[np.ndarray]:
    """Frame features (``"context"`` or ``"encoder"``) of whole streams, ``(s, d)`` each."""
    from cpc.features.extract import extract_sequence

    return [
        extract_sequence(model, torch.from_numpy(f), layer=layer).numpy()  # type: ignore[arg-type]
        for f in feats
    ]


def standardise(items: Items, reference: list[np.ndarray]) -> Items:
    """Z-score every dimension with the mean and std of ``reference`` frames or vectors."""
    ref = np.concatenate([np.atleast_2d(r) for r in reference])
    mean, std = ref.mean(0), ref.std(0) + 1e-6
    return [[(x - mean) / std for x in group] for group in items]


def _cpc_verifiers(
    name: str, model: torch.nn.Module, eval_feats: Items, pre_feats: list[np.ndarray]
) -> dict[str, PairDistance]:
    out: dict[str, PairDistance] = {}
    for layer in LAYERS:
        frames = [frame_features(model, group, layer) for group in eval_feats]
        ref_frames = frame_features(model, pre_feats, layer)
        framed = standardise(frames, ref_frames)
        pooled = standardise(
            [[f.mean(0) for f in group] for group in frames], [f.mean(0) for f in ref_frames]
        )
        out[f"{name} {layer}, DTW"] = sequence_distances(framed)
        out[f"{name} {layer}, pooled"] = vector_distances(pooled)
    return out


def _baselines(
    seed: int,
    protocol: SignatureProtocol,
    eval_feats: Items,
    stats: Items,
    pre_stats: list[np.ndarray],
    work: Path,
) -> dict[str, VerificationScores]:
    """DTW on local features and signal statistics; cached in ``work`` per seed and size."""
    cache = work / f"baselines{seed}_{len(protocol.genuine)}_{len(protocol.skilled)}.npz"
    names = ("DTW, local features", "signal statistics")
    if cache.is_file():
        saved = np.load(cache)
        return {
            n: VerificationScores(saved[f"{i}g"], saved[f"{i}i"], saved[f"{i}s"])
            for i, n in enumerate(names)
        }
    out = {
        names[0]: score_protocol(protocol, sequence_distances(eval_feats)),
        names[1]: score_protocol(protocol, vector_distances(standardise(stats, pre_stats))),
    }
    arrays: dict[str, np.ndarray] = {}
    for i, n in enumerate(names):
        arrays |= {f"{i}g": out[n].genuine, f"{i}i": out[n].impostor, f"{i}s": out[n].skilled}
    work.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.npz")  # parallel runs share the cache
    np.savez(partial, **arrays)  # type: ignore[arg-type]  # numpy stub: allow_pickle
    partial.replace(cache)
    return out


def fuse(a: VerificationScores, b: VerificationScores) -> VerificationScores:
    """Score-level fusion: the mean of two verifiers' per-writer normalised scores."""
    return VerificationScores(
        (a.genuine + b.genuine) / 2, (a.impostor + b.impostor) / 2, (a.skilled + b.skilled) / 2
    )


def run_seed(
    seed: int,
    size: BenchSize,
    work: Path,
    overrides: list[str],
    inputs: str = "local",
    tag: str = "main",
) -> dict[str, object]:
    """Generate, pretrain and score every verifier for one seed.

    ``inputs="local"`` trains on :func:`local_features`; ``"raw"`` on the six raw
    channels z-scored with pretraining-set statistics (the first recipe, for ablation).
    The run goes to ``work/<tag>_run<seed>`` (an existing complete run is reused).
    """
    from cpc import load
    from cpc.checkpoints.store import read_meta
    from cpc.config import load_config
    from cpc.data.registry import build_model
    from cpc.data.signals import ChannelStats

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    pre = generate_session_samples(size.pre_writers, size.sessions, size.per_session, 100 + seed)
    gen = generate_session_samples(size.eval_writers, size.sessions, size.per_session, 200 + seed)
    forg = generate_session_forgeries(size.eval_writers, size.forgeries, 200 + seed)
    pre_feats = [local_features(s, SAMPLE_RATE) for s in pre.samples]
    eval_feats = [[local_features(s, SAMPLE_RATE) for s in g] for g in (gen.samples, forg.samples)]
    if inputs == "local":
        manifest = write_arrays(pre_feats, pre.writers, work / f"{tag}_features{seed}")
    else:
        manifest = write_arrays(pre.samples, pre.writers, work / f"{tag}_raw{seed}")
        overrides = ["model.in_channels=6", "data.normalize=dataset", *overrides]
    timings = {"generate_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    run_dir = pretrain(manifest, work / f"{tag}_run{seed}", seed, size.steps, overrides)
    timings["pretrain_s"] = time.perf_counter() - t0
    model = load(str(run_dir)).eval()
    config = load_config(run_dir / "config.yaml")
    torch.manual_seed(seed)
    random_model = build_model(config.model).eval()
    model_pre, model_eval = pre_feats, eval_feats
    if inputs == "raw":
        channel = ChannelStats.from_dict(read_meta(run_dir)["data"]["stats"])
        mean, std = np.asarray(channel.mean), np.asarray(channel.std)
        model_pre = [((s - mean) / std).astype(np.float32) for s in pre.samples]
        model_eval = [
            [((s - mean) / std).astype(np.float32) for s in g] for g in (gen.samples, forg.samples)
        ]

    protocol = signature_protocol(gen.writers, forg.writers, references=size.references)
    stats = [
        [signal_statistics(s, sample_rate=SAMPLE_RATE).numpy() for s in g]
        for g in (gen.samples, forg.samples)
    ]
    pre_stats = [signal_statistics(s, sample_rate=SAMPLE_RATE).numpy() for s in pre.samples]
    t1 = time.perf_counter()
    scores = _baselines(seed, protocol, eval_feats, stats, pre_stats, work)
    timings["baselines_s"] = time.perf_counter() - t1
    sub = model_pre[:: max(1, len(model_pre) // 200)]  # frames for the standardisation
    verifiers = _cpc_verifiers("CPC", model, model_eval, sub)
    verifiers |= _cpc_verifiers("random-init CPC", random_model, model_eval, sub)
    for name, distances in verifiers.items():
        scores[name] = score_protocol(protocol, distances)
    local = scores["DTW, local features"]
    for name in (f"{net} {layer}, DTW" for net in ("CPC", "random-init CPC") for layer in LAYERS):
        scores[f"{name} + DTW local (fused)"] = fuse(scores[name], local)
    timings["total_s"] = time.perf_counter() - t0
    results: dict[str, dict[str, float]] = {}
    for name, score in scores.items():
        results[name] = {"eer": score.eer, "skilled_eer": score.skilled_eer}
        print(
            f"seed {seed} {name:>52}: random {score.eer:6.1%}  skilled {score.skilled_eer:6.1%}",
            flush=True,
        )
    return {
        "seed": seed,
        "size": asdict(size),
        "inputs": inputs,
        "overrides": overrides,
        "timings": timings,
        "counts": {
            "genuine": len(protocol.genuine),
            "impostor": len(protocol.impostor),
            "skilled": len(protocol.skilled),
        },
        "results": results,
    }


def summarise(runs: list[dict[str, object]]) -> str:
    """A markdown table: mean and sample standard deviation over seeds, in percent."""
    names = list(runs[0]["results"])  # type: ignore[call-overload]
    lines = [
        "| verifier | random impostors EER (%) | skilled forgeries EER (%) |",
        "| --- | ---: | ---: |",
    ]
    for name in names:
        cells = []
        for key in ("eer", "skilled_eer"):
            values = np.array([r["results"][name][key] for r in runs]) * 100  # type: ignore[index]
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.1f} ± {spread:.1f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run seeds, write per-seed JSON, the table and the machine."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("runs/signature_bench"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--inputs", choices=["local", "raw"], default="local")
    parser.add_argument("--override", action="append", default=[], help="config overrides")
    parser.add_argument(
        "--summarise", action="store_true", help="only tabulate the seeds' JSON files in --out"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    size = QUICK if args.quick else BenchSize()
    if args.steps:
        size = BenchSize(**{**asdict(size), "steps": args.steps})
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in [] if args.summarise else args.seeds:
        run = run_seed(seed, size, args.work, args.override, args.inputs, args.out.name)
        command = ["python -m cpc.experiments.signature_bench", *(argv or sys.argv[1:])]
        run["command"] = " ".join(command)
        run["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, torch threads 1"
        (args.out / f"seed{seed}.json").write_text(json.dumps(run, indent=1))
    runs = [json.loads((args.out / f"seed{s}.json").read_text()) for s in args.seeds]
    table = summarise(runs)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps({"runs": runs}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
