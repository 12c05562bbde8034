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

:func:`run_bench` runs seeds (``cpc signatures --out results/signatures --seeds 0 1 2``,
under ``nice``, one thread; ``--quick`` runs toy sizes). Each seed writes
``seed<s>.json``; the table over seeds goes to ``table.md`` and ``results.json``.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cpc.checkpoints.loading import load_model
from cpc.checkpoints.store import read_meta
from cpc.config import load_config
from cpc.data.corpora.pen import SAMPLE_RATE
from cpc.data.corpora.pen_sessions import (
    SessionSamples,
    generate_session_forgeries,
    generate_session_samples,
)
from cpc.data.registry import build_model
from cpc.data.signals import ChannelStats
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
from cpc.features.extract import extract_sequence
from cpc.train.trainer import train

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


@dataclass
class _Writers:
    """One seed's generated signatures and their local features.

    Pretraining writers come from generator seed ``100 + seed``, evaluation writers
    (genuine and skilled forgeries) from ``200 + seed``.
    """

    pre: SessionSamples
    gen: SessionSamples
    forg: SessionSamples
    pre_feats: list[np.ndarray]
    eval_feats: Items

    @classmethod
    def generate(cls, seed: int, size: BenchSize) -> _Writers:
        pre = generate_session_samples(
            size.pre_writers, size.sessions, size.per_session, 100 + seed
        )
        gen = generate_session_samples(
            size.eval_writers, size.sessions, size.per_session, 200 + seed
        )
        forg = generate_session_forgeries(size.eval_writers, size.forgeries, 200 + seed)
        pre_feats = [local_features(s, SAMPLE_RATE) for s in pre.samples]
        eval_feats = [
            [local_features(s, SAMPLE_RATE) for s in g] for g in (gen.samples, forg.samples)
        ]
        return cls(pre, gen, forg, pre_feats, eval_feats)

    @property
    def eval_samples(self) -> Items:
        """The raw evaluation streams: ``[genuine, forgeries]``."""
        return [self.gen.samples, self.forg.samples]


def _pretraining_set(
    writers: _Writers, inputs: str, out: Path, overrides: list[str]
) -> tuple[Path, list[str]]:
    """Write the pretraining streams under ``out``; the manifest and the overrides to use.

    ``inputs="raw"`` writes the six raw channels and asks the recipe to z-score them.
    """
    if inputs == "local":
        return write_arrays(writers.pre_feats, writers.pre.writers, out), overrides
    raw = ["model.in_channels=6", "data.normalize=dataset", *overrides]
    return write_arrays(writers.pre.samples, writers.pre.writers, out), raw


def _networks(run_dir: Path, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The pretrained model and the same network before training (seeded), in eval mode."""
    model = load_model(str(run_dir)).eval()
    config = load_config(run_dir / "config.yaml")
    torch.manual_seed(seed)
    return model, build_model(config.model).eval()


def _model_streams(writers: _Writers, inputs: str, run_dir: Path) -> tuple[list[np.ndarray], Items]:
    """What the networks read: local features, or raw channels z-scored as in pretraining."""
    if inputs != "raw":
        return writers.pre_feats, writers.eval_feats
    channel = ChannelStats.from_dict(read_meta(run_dir)["data"]["stats"])
    mean, std = np.asarray(channel.mean), np.asarray(channel.std)
    model_pre = [((s - mean) / std).astype(np.float32) for s in writers.pre.samples]
    model_eval = [[((s - mean) / std).astype(np.float32) for s in g] for g in writers.eval_samples]
    return model_pre, model_eval


def _statistics(writers: _Writers) -> tuple[Items, list[np.ndarray]]:
    """Signal statistics of the evaluation streams and of the pretraining streams."""
    stats = [
        [signal_statistics(s, sample_rate=SAMPLE_RATE).numpy() for s in g]
        for g in writers.eval_samples
    ]
    pre_stats = [signal_statistics(s, sample_rate=SAMPLE_RATE).numpy() for s in writers.pre.samples]
    return stats, pre_stats


def _cpc_scores(
    protocol: SignatureProtocol,
    networks: dict[str, torch.nn.Module],
    model_eval: Items,
    model_pre: list[np.ndarray],
) -> dict[str, VerificationScores]:
    """Every network's verifiers (:func:`_cpc_verifiers`) scored with ``protocol``."""
    sub = model_pre[:: max(1, len(model_pre) // 200)]  # frames for the standardisation
    verifiers: dict[str, PairDistance] = {}
    for name, network in networks.items():
        verifiers |= _cpc_verifiers(name, network, model_eval, sub)
    return {name: score_protocol(protocol, distances) for name, distances in verifiers.items()}


def _add_fused(scores: dict[str, VerificationScores]) -> None:
    """Add every frame-DTW verifier fused with DTW on local features."""
    local = scores["DTW, local features"]
    for name in (f"{net} {layer}, DTW" for net in ("CPC", "random-init CPC") for layer in LAYERS):
        scores[f"{name} + DTW local (fused)"] = fuse(scores[name], local)


def _error_rates(seed: int, scores: dict[str, VerificationScores]) -> dict[str, dict[str, float]]:
    """Both EERs of every verifier, printed as they are tabulated."""
    results: dict[str, dict[str, float]] = {}
    for name, score in scores.items():
        results[name] = {"eer": score.eer, "skilled_eer": score.skilled_eer}
        print(
            f"seed {seed} {name:>52}: random {score.eer:6.1%}  skilled {score.skilled_eer:6.1%}",
            flush=True,
        )
    return results


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
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    writers = _Writers.generate(seed, size)
    folder = work / f"{tag}_features{seed}" if inputs == "local" else work / f"{tag}_raw{seed}"
    manifest, overrides = _pretraining_set(writers, inputs, folder, overrides)
    timings = {"generate_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    run_dir = pretrain(manifest, work / f"{tag}_run{seed}", seed, size.steps, overrides)
    timings["pretrain_s"] = time.perf_counter() - t0
    model, random_model = _networks(run_dir, seed)
    model_pre, model_eval = _model_streams(writers, inputs, run_dir)
    protocol = signature_protocol(
        writers.gen.writers, writers.forg.writers, references=size.references
    )
    stats, pre_stats = _statistics(writers)
    t1 = time.perf_counter()
    scores = _baselines(seed, protocol, writers.eval_feats, stats, pre_stats, work)
    timings["baselines_s"] = time.perf_counter() - t1
    networks = {"CPC": model, "random-init CPC": random_model}
    scores |= _cpc_scores(protocol, networks, model_eval, model_pre)
    _add_fused(scores)
    timings["total_s"] = time.perf_counter() - t0
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
        "results": _error_rates(seed, scores),
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


def run_bench(
    out: Path,
    seeds: list[int],
    size: BenchSize,
    *,
    work: Path,
    overrides: list[str],
    inputs: str = "local",
    command: str = "",
    summarise_only: bool = False,
) -> str:
    """Run every seed; write ``seed<s>.json``, ``table.md`` and ``results.json`` to ``out``.

    Each seed's JSON records ``command`` and the machine. With ``summarise_only``, no seed
    runs: the table is made from the seeds' JSON files already in ``out``. The runs go to
    ``work`` under the tag ``out.name``. Returns the table (markdown).
    """
    out.mkdir(parents=True, exist_ok=True)
    for seed in [] if summarise_only else seeds:
        run = run_seed(seed, size, work, overrides, inputs, out.name)
        run["command"] = command
        run["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, torch threads 1"
        (out / f"seed{seed}.json").write_text(json.dumps(run, indent=1))
    runs = [json.loads((out / f"seed{s}.json").read_text()) for s in seeds]
    table = summarise(runs)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"runs": runs}, indent=1))
    return table
