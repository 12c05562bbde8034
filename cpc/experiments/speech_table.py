"""The CPC paper's Table 1 in miniature, on the built-in espeak corpus.

Pipeline (:func:`run_speech_table`): build the corpora, pretrain CPC on the training
utterances, extract frozen features for CPC, for the same architecture with random
weights and for MFCCs, then train the same linear probes on each:

- *phones*: frame-level (10 ms) linear classification, trained on the training
  utterances and tested on held-out utterances of the same speakers ("seen") and on
  speakers never used in pretraining or probe training ("unseen");
- *speakers*: utterance-level linear classification of mean-pooled features on a second
  corpus of speakers that pretraining never heard, each speaker's utterances split
  between probe training and test (identifying 12 espeak voices is trivial for every
  feature set, so the task uses more, previously unheard ones);
- *ABX*: phone ABX error within and across speakers (the Libri-light / ZeroSpeech
  protocol, :mod:`cpc.eval.abx`) on the held-out utterances of the phone corpus (seen
  and unseen speakers together), tokens cut from the corpus's frame labels;
- optionally, phone accuracy against the number of prediction steps (the paper's
  ablation), each model pretrained with the same budget;
- optionally, extra rows: CPC pretrained with config overrides (another prediction head,
  augmentation, ...), with the same budget and the same probes.

Alignment of features with label frames (label frame ``j`` covers samples
``[160 j, 160 j + 160)``, centre ``160 j + 80``): a CPC latent ``j`` sees samples
``[160 j, 160 j + 465)``, centre ``160 j + 232``; an MFCC frame ``j`` covers
``[160 j, 160 j + 400)``, centre ``160 j + 200``. Both are paired with label frame
``j + 1`` (centre ``160 j + 240``), the nearest, by one fixed rule for every feature set.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from cpc.checkpoints.store import load_model
from cpc.config import Config, load_config
from cpc.data.corpora.budget import MAX_MINUTES, MAX_SPEAKERS, check_amount, check_count
from cpc.data.corpora.espeak import build_espeak_corpus, load_phone_labels, read_phone_inventory
from cpc.data.registry import build_model
from cpc.data.seeds import check_seed
from cpc.data.validate import check_runnable
from cpc.errors import ConfigError
from cpc.eval.abx import abx_from_items, items_from_espeak_corpus
from cpc.eval.baselines import mfcc_features
from cpc.eval.plots import (
    plot_accuracy_vs_offset,
    plot_confusion,
    plot_projection,
    plot_training_curves,
)
from cpc.eval.probes import frames_from_sequences, linear_probe
from cpc.eval.report import collect_provenance, write_report
from cpc.features.extract import extract_sequence
from cpc.models.cpc import CPCModel
from cpc.train.trainer import train

log = logging.getLogger(__name__)

#: Label frame ``j + LABEL_OFFSET`` is paired with feature frame ``j`` (see module doc).
LABEL_OFFSET = 1


@dataclass
class TableSettings:
    """Sizes and budgets of one Table-1 run (defaults: the committed results)."""

    corpus_minutes: float = 30.0
    corpus_speakers: int = 12
    unseen_speakers: int = 2
    """Speakers of the phone corpus held out from pretraining and probe training."""
    speaker_corpus_minutes: float = 24.0
    speaker_corpus_speakers: int = 48
    test_fraction: float = 0.3
    max_steps: int = 1500
    max_time: float = 0.0
    """Seconds of pretraining per model (0: no limit; ``max_steps`` still applies)."""
    ablation_offsets: list[int] = field(default_factory=list)
    """Numbers of prediction steps to compare (e.g. [2, 4, 8, 12]); empty: none."""
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    """Config overrides applied on top of the speech preset."""
    rows: dict[str, list[str]] = field(default_factory=dict)
    """Extra CPC rows: name -> config overrides added to ``overrides`` for that model."""
    abx_max_group_size: int | None = 10
    """ABX: tokens kept per (context, speaker, phone), as Libri-light's default; None: all."""

    def __post_init__(self) -> None:
        """Refuse settings that cannot make a table, before any corpus or run folder exists.

        Raises:
            ConfigError: Naming the setting (as its ``cpc table1`` flag where it has one).

        """
        check_amount(self.corpus_minutes, "corpus_minutes (--corpus-minutes)", MAX_MINUTES)
        check_amount(self.speaker_corpus_minutes, "speaker_corpus_minutes", MAX_MINUTES)
        check_count(self.unseen_speakers, "unseen_speakers", 0, MAX_SPEAKERS)
        # The probes need two training speakers left after the unseen ones are held out.
        least = self.unseen_speakers + 2
        check_count(self.corpus_speakers, "corpus_speakers (--speakers)", least, MAX_SPEAKERS)
        check_count(self.speaker_corpus_speakers, "speaker_corpus_speakers", 2, MAX_SPEAKERS)
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        check_count(self.max_steps, "max_steps (--steps)", 1, 10**9)
        if not (math.isfinite(self.max_time) and self.max_time >= 0):
            raise ConfigError(f"max_time must be a finite number >= 0, got {self.max_time}")
        # ablation_offsets are checked with each row's model (model.num_offsets' range).
        check_seed(self.seed, "seed (--seed)")
        if self.abx_max_group_size is not None:
            check_count(self.abx_max_group_size, "abx_max_group_size", 1, 10**9)


@dataclass
class Utterance:
    """One utterance of a corpus, with its frame labels."""

    path: Path
    speaker: str
    phones: np.ndarray


def _corpus(root: Path, minutes: float, speakers: int, seed: int) -> list[Utterance]:
    if not (root / "manifest.csv").is_file():
        build_espeak_corpus(root, minutes=minutes, num_speakers=speakers, seed=seed)
    labels = load_phone_labels(root)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Utterance(root / r["path"], r["speaker"], labels[r["path"]]) for r in rows]


def _split(
    utts: list[Utterance], unseen: int, test_fraction: float, seed: int
) -> dict[str, list[Utterance]]:
    """``train`` / ``test_seen`` by utterance within speakers; ``test_unseen`` by speaker."""
    speakers = sorted({u.speaker for u in utts})
    held = set(speakers[len(speakers) - unseen :]) if unseen else set()
    rng = np.random.default_rng(seed)
    split: dict[str, list[Utterance]] = {"train": [], "test_seen": [], "test_unseen": []}
    for spk in speakers:
        mine = [u for u in utts if u.speaker == spk]
        if spk in held:
            split["test_unseen"] += mine
            continue
        order = rng.permutation(len(mine))
        n_test = max(1, round(test_fraction * len(mine))) if len(mine) > 1 else 0
        split["test_seen"] += [mine[i] for i in order[:n_test]]
        split["train"] += [mine[i] for i in order[n_test:]]
    return split


def _write_manifest(utts: list[Utterance], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "speaker"])
        writer.writerows([str(u.path), u.speaker] for u in utts)
    return path


def _wave(path: Path) -> Tensor:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(data.mean(1))


FeatureFn = Any  # Callable[[Tensor], Tensor]: waveform (t,) -> features (s, d)


@torch.no_grad()
def _calibrate_batch_norm(model: CPCModel, utts: list[Utterance], window: int) -> None:
    """Set batch-norm statistics of an untrained model from data (train-mode passes).

    Without it, a random-init model with batch norm would normalise nothing in eval mode
    (running statistics 0 and 1), a weaker baseline than the architecture deserves.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    waves = [_wave(u.path) for u in utts[:64]]
    for start in range(0, len(waves), 16):
        batch = [w[:window] for w in waves[start : start + 16] if len(w) >= window]
        if batch:
            model.encoder(torch.stack(batch))
    model.eval()


def _model_features(model: CPCModel) -> FeatureFn:
    model.eval()
    return lambda wave: extract_sequence(model, wave, "context", chunk_steps=None)


def _mfcc(wave: Tensor) -> Tensor:
    return mfcc_features(wave, 16000, n_mfcc=13)


def _features(fn: FeatureFn, utts: list[Utterance]) -> dict[Path, Tensor]:
    return {u.path: fn(_wave(u.path)) for u in utts}


def _phone_data(
    fn: FeatureFn, utts: list[Utterance], cache: dict[Path, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    feats = [cache[u.path] if cache is not None else fn(_wave(u.path)) for u in utts]
    labels = [torch.from_numpy(u.phones.astype(np.int64)) for u in utts]
    names = [u.path.name for u in utts]
    # Latents end before the last label frames (receptive field): allow that much.
    return frames_from_sequences(feats, labels, offset=LABEL_OFFSET, tolerance=5, names=names)


def _pooled(fn: FeatureFn, utts: list[Utterance]) -> Tensor:
    return torch.stack([fn(_wave(u.path)).mean(0) for u in utts])


def _config(settings: TableSettings, manifest: Path, out_dir: Path, extra: list[str]) -> Config:
    return load_config(
        "speech_small_cpu",  # the shipped preset (cpc.config.presets), found when installed too
        [
            f"data.train={manifest}",
            f"run.out_dir={out_dir}",
            f"optim.max_steps={settings.max_steps}",
            f"run.max_time={settings.max_time}",
            f"run.seed={settings.seed}",
            "run.progress=false",
            *settings.overrides,
            *extra,
        ],
    )


def _pretrain(settings: TableSettings, manifest: Path, out_dir: Path, extra: list[str]) -> Config:
    config = _config(settings, manifest, out_dir, extra)
    train(config)
    return config


def _check_models(settings: TableSettings, out: Path) -> None:
    """Check every model the table will pretrain before any work starts.

    A bad ``--row`` override or ablation count would otherwise stop the run only when its
    turn came, after the main model's pretraining.

    Raises:
        ConfigError: Naming the setting at fault (and the row it belongs to).

    """
    planned = {"CPC": [], **settings.rows}
    planned |= {
        f"ablation {k} steps": [f"model.num_offsets={k}"] for k in settings.ablation_offsets
    }
    for name, extra in planned.items():
        try:
            check_runnable(_config(settings, out / "pretrain_manifest.csv", out / "run", extra))
        except ConfigError as err:
            raise ConfigError(f"table row {name!r}: {err}") from None


def _abx(cache: dict[Path, Tensor], items: list, settings: TableSettings) -> dict[str, float]:
    """ABX errors of cached features on the tokens of those utterances.

    Feature frame ``j`` is paired with label frame ``j + LABEL_OFFSET`` (module doc), so
    its centre sits ``LABEL_OFFSET`` frames after Libri-light's ``(j + 0.5)`` rule.
    """
    res = abx_from_items(
        {p.stem: f for p, f in cache.items()},
        items,
        rate=100.0,
        shift=LABEL_OFFSET / 100.0,
        max_group_size=settings.abx_max_group_size,
        seed=settings.seed,
    )
    nan = float("nan")  # no cell: written as null, shown as a dash
    return {
        "within": nan if res.within is None else res.within,
        "across": nan if res.across is None else res.across,
    }


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


@dataclass
class _Run:
    """What the steps of one Table-1 run share: where it writes, its data and its clock."""

    out: Path
    settings: TableSettings
    provenance: dict[str, Any]
    speakers: list[Utterance]
    """The speaker corpus (voices pretraining never heard)."""
    inventory: dict[str, Any]
    split: dict[str, list[Utterance]]
    """The phone corpus: ``train`` / ``test_seen`` / ``test_unseen``."""
    spk_split: dict[str, list[Utterance]]
    manifest: Path
    """The pretraining manifest (the phone corpus's training utterances)."""
    started: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def num_phones(self) -> int:
        return len(self.inventory["phones"])


@dataclass
class _Models:
    """The pretrained main model, its config and every row's feature function."""

    config: Config
    cpc: CPCModel
    feature_sets: dict[str, FeatureFn]


def _prepare(out: Path, settings: TableSettings, command: str) -> _Run:
    """Build (or reuse) both corpora, split them and write the pretraining manifest."""
    started = time.monotonic()
    # Taken now: the commit and tree state of the code that runs, not of whatever the
    # checkout holds by the time a long run ends.
    provenance = collect_provenance(command)
    phones = _corpus(
        out / "corpus", settings.corpus_minutes, settings.corpus_speakers, settings.seed
    )
    speakers = _corpus(
        out / "speaker_corpus",
        settings.speaker_corpus_minutes,
        settings.speaker_corpus_speakers,
        settings.seed + 1,
    )
    inventory = read_phone_inventory(out / "corpus")
    split = _split(phones, settings.unseen_speakers, settings.test_fraction, settings.seed)
    spk_split = _split(speakers, 0, settings.test_fraction, settings.seed)
    manifest = _write_manifest(split["train"], out / "pretrain_manifest.csv")
    return _Run(
        out=out,
        settings=settings,
        provenance=provenance,
        speakers=speakers,
        inventory=inventory,
        split=split,
        spk_split=spk_split,
        manifest=manifest,
        started=started,
    )


def _pretrain_rows(run: _Run) -> _Models:
    """Pretrain CPC and every extra row; build the seeded random-init baseline."""
    settings, out = run.settings, run.out
    t0 = time.monotonic()
    config = _pretrain(settings, run.manifest, out / "run", [])
    run.timings["pretrain_s"] = time.monotonic() - t0
    cpc_model = load_model(out / "run")
    torch.manual_seed(settings.seed)
    random_model = build_model(config.model)
    _calibrate_batch_norm(random_model, run.split["train"], config.data.window)
    feature_sets = {
        "CPC": _model_features(cpc_model),
        "random init": _model_features(random_model),
        "MFCC": _mfcc,
    }
    for row, row_overrides in settings.rows.items():
        if row in feature_sets:
            raise ValueError(f"table row name {row!r} is taken")
        t0 = time.monotonic()
        _pretrain(settings, run.manifest, out / f"run_{_slug(row)}", row_overrides)
        run.timings[f"pretrain {row} s"] = time.monotonic() - t0
        feature_sets[row] = _model_features(load_model(out / f"run_{_slug(row)}"))
    return _Models(config, cpc_model, feature_sets)


def _phone_probes(
    run: _Run, name: str, fn: FeatureFn, cache: dict[Path, Tensor], results: dict[str, Any]
) -> None:
    """Frame-level phone probes, tested on seen and on unseen speakers."""
    xtr, ytr = _phone_data(fn, run.split["train"], cache)
    for task, part in [
        ("phone, seen speakers", "test_seen"),
        ("phone, unseen speakers", "test_unseen"),
    ]:
        if not run.split[part]:
            continue
        xte, yte = _phone_data(fn, run.split[part], cache)
        res = linear_probe(xtr, ytr, xte, yte, num_classes=run.num_phones, seed=run.settings.seed)
        results[task][name] = res
        if name == "CPC" and part == "test_seen":
            plot_confusion(res.confusion, run.inventory["phones"], run.out / "phone_confusion.png")


def _speaker_probe(run: _Run, name: str, fn: FeatureFn, results: dict[str, Any]) -> None:
    """Utterance-level speaker probe on mean-pooled features of unheard voices."""
    spk_split = run.spk_split
    ids = sorted({u.speaker for u in run.speakers})
    to_id = {s: i for i, s in enumerate(ids)}
    ptr, pte = _pooled(fn, spk_split["train"]), _pooled(fn, spk_split["test_seen"])
    ytr_s = torch.tensor([to_id[u.speaker] for u in spk_split["train"]])
    yte_s = torch.tensor([to_id[u.speaker] for u in spk_split["test_seen"]])
    results["speaker (unheard voices)"][name] = linear_probe(
        ptr, ytr_s, pte, yte_s, num_classes=len(ids), seed=run.settings.seed
    )
    if name == "CPC":
        plot_projection(pte, yte_s.numpy(), run.out / "speaker_projection.png", title="CPC, pooled")


def _probe_rows(run: _Run, feature_sets: dict[str, FeatureFn], abx_items: list) -> dict:
    """Every probe and the ABX errors of every row: ``{task: {row: result}}``."""
    abx_utts = run.split["test_seen"] + run.split["test_unseen"]
    results: dict[str, dict[str, Any]] = {
        "phone, seen speakers": {},
        "phone, unseen speakers": {},
        "speaker (unheard voices)": {},
        "ABX error, within speakers": {},
        "ABX error, across speakers": {},
    }
    t0 = time.monotonic()
    for name, fn in feature_sets.items():
        cache = _features(fn, run.split["train"] + abx_utts)
        _phone_probes(run, name, fn, cache, results)
        _speaker_probe(run, name, fn, results)
        t1 = time.monotonic()
        abx = _abx({u.path: cache[u.path] for u in abx_utts}, abx_items, run.settings)
        run.timings[f"abx {name} s"] = time.monotonic() - t1
        results["ABX error, within speakers"][name] = abx["within"]
        results["ABX error, across speakers"][name] = abx["across"]
        del cache
    run.timings["probes_s"] = time.monotonic() - t0
    return results


def _ablation(run: _Run, config: Config) -> dict[str, float]:
    """Phone accuracy against the number of prediction steps: ``{"k steps": accuracy}``."""
    settings, out = run.settings, run.out
    if not settings.ablation_offsets:
        return {}
    t0 = time.monotonic()
    ablation: dict[str, Any] = {}
    for k in settings.ablation_offsets:
        run_dir = out / "run" if k == config.model.num_offsets else out / f"run_k{k}"
        if run_dir != out / "run":  # the main model already covers its own count
            _pretrain(settings, run.manifest, run_dir, [f"model.num_offsets={k}"])
        fn = _model_features(load_model(run_dir))
        xtr, ytr = _phone_data(fn, run.split["train"])
        xte, yte = _phone_data(fn, run.split["test_seen"])
        ablation[f"{k} steps"] = linear_probe(
            xtr, ytr, xte, yte, num_classes=run.num_phones, seed=settings.seed
        )
    write_report(
        {"phone, seen speakers": ablation},
        out,
        "Phone accuracy against the number of prediction steps",
        provenance=run.provenance,
        notes=f"each model pretrained with the same budget: {settings.max_steps} steps"
        f" / {settings.max_time or 'no'} s limit",
        stem="table1_steps",
    )
    plot_accuracy_vs_offset(
        {"phone accuracy": [r.accuracy for r in ablation.values()]},
        settings.ablation_offsets,
        out / "phone_vs_steps.png",
        xlabel="prediction steps",
        ylabel="phone accuracy",
        title="Phone probe against the number of prediction steps",
    )
    run.timings["ablation_s"] = time.monotonic() - t0
    return {k: r.accuracy for k, r in ablation.items()}


def _training_plots(run: _Run, cpc_model: CPCModel) -> None:
    """The main model's training curves and its last validation accuracy by offset."""
    metrics = run.out / "run" / "metrics.jsonl"
    plot_training_curves(metrics, run.out / "training_curves.png")
    val = [json.loads(line) for line in metrics.read_text().splitlines()]
    val = [r for r in val if r.get("split") == "val"]
    if val:
        plot_accuracy_vs_offset(
            {"CPC (validation)": val[-1]["accuracy"]},
            cpc_model.offsets,
            run.out / "prediction_accuracy_by_offset.png",
            xlabel="offset k (10 ms steps)",
            ylabel="InfoNCE accuracy",
            title="Prediction accuracy by offset",
        )


def _write_table(run: _Run, results: dict, num_items: int) -> None:
    """``table1.json`` and ``table1.md``, with the settings, timings and protocol as notes."""
    settings = run.settings
    notes = "\n".join(
        f"- {line}"
        for line in [
            f"settings: {json.dumps(asdict(settings))}",
            f"timings (s): {json.dumps({k: round(v, 1) for k, v in run.timings.items()})}",
            f"phone probe: {run.num_phones} classes; alignment: feature frame j <-> label frame "
            f"j+{LABEL_OFFSET} for every feature set",
            "random init: the same architecture and probe, untrained weights (seeded)",
            "MFCC: 13 coefficients, 25 ms windows, 10 ms hop (torchaudio, center=False)",
            f"ABX: error rates (lower is better) on {num_items} phone tokens of the "
            "held-out utterances (seen and unseen speakers); angular distance + DTW; "
            "averaged over contexts, then speakers, then phone pairs; at most "
            f"{settings.abx_max_group_size} tokens per (context, speaker, phone)",
            *[f"{row}: CPC with {' '.join(o)}" for row, o in settings.rows.items()],
        ]
    )
    write_report(
        results,
        run.out,
        "CPC Table 1 in miniature (built-in espeak corpus)",
        provenance=run.provenance,
        notes=notes,
        stem="table1",
    )


def run_speech_table(out_dir: str | Path, settings: TableSettings, command: str = "") -> dict:
    """Run the whole pipeline; write ``table1.json``, ``table1.md`` and plots to ``out_dir``.

    Returns:
        ``{"results": {task: {row: result}}, "steps": {"k steps": phone accuracy},
        "timings": {step: seconds}}``.

    """
    out = Path(out_dir).resolve()  # manifests hold absolute paths
    _check_models(settings, out)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    run = _prepare(out, settings, command)
    models = _pretrain_rows(run)
    abx_utts = run.split["test_seen"] + run.split["test_unseen"]
    abx_items = items_from_espeak_corpus(
        out / "corpus", [str(u.path.relative_to(out / "corpus")) for u in abx_utts]
    )
    results = _probe_rows(run, models.feature_sets, abx_items)
    steps = _ablation(run, models.config)
    _training_plots(run, models.cpc)
    run.timings["total_s"] = time.monotonic() - run.started
    _write_table(run, results, len(abx_items))
    return {"results": results, "steps": steps, "timings": run.timings}
