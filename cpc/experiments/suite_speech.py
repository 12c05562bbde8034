"""Speech tasks of the suite, all on the built-in espeak generator.

Four corpora, each from its own generator seed (so their voices differ in dialect, rate
and pitch; eSpeak has 21 voice variants, so a variant name can recur with other
settings):

- *phones* (seed ``s``, English): pretraining corpus and the Table-1 tasks, reused from
  :mod:`cpc.experiments.speech_table`: frame phone probes on held-out utterances of the
  pretraining speakers ("seen") and of speakers held out of pretraining ("unseen"), ABX
  within and across speakers on those utterances;
- *speakers* (seed ``s + 1``, English, voices never heard in pretraining): speaker
  identity from pooled features, each voice's utterances split between probe training
  and test; once with every training label, once with ``label_fraction`` of them per
  voice (at least one);
- *languages* (seed ``s + 2``; en/de/fr/es): language identity from pooled features,
  probe trained on some voices of each language and tested on the others (so it cannot
  lean on the voice); pretraining heard English only;
- *words* (seed ``s + 3``): every voice says each of :data:`WORDS` (none of them in the
  pretraining grammar) once; pooled features, leave one voice out: the probe is trained
  on the other voices and tested on the held-out one, averaged over voices.

Pooled features are the mean and standard deviation over time of each feature set's
frames (for MFCC: MFCC statistics). Every feature set goes through the same probes.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cpc.config import load_config
from cpc.data.corpora.espeak import build_espeak_corpus, read_phone_inventory
from cpc.data.registry import build_model
from cpc.eval.abx import items_from_espeak_corpus
from cpc.eval.baselines import logmel_features, mfcc_features
from cpc.eval.probes import ProbeResult, linear_probe
from cpc.experiments.speech_table import (
    TableSettings,
    Utterance,
    _abx,
    _calibrate_batch_norm,
    _corpus,
    _phone_data,
    _split,
    _wave,
    _write_manifest,
)
from cpc.experiments.suite_common import (
    DEFAULT_ROW,
    UNTRAINED,
    Context,
    few_labels,
    log,
    pooled,
    pretrain,
    sequence_features,
    timing,
)
from cpc.models.cpc import CPCModel

PRESET = "speech_small_cpu"
LANGUAGES = ("en", "de", "fr", "es")
#: Spoken-word vocabulary: English words that the corpus grammar never uses.
WORDS = (
    "apple", "purple", "orange", "pencil", "mountain", "coffee", "thunder", "butter",
    "rocket", "candle", "jacket", "ladder", "monkey", "tomato", "banana", "zebra",
    "violin", "walrus", "cactus", "puzzle",
)  # fmt: skip
FeatureFn = Callable[[Tensor], Tensor]  # waveform (t,) -> frames (s, d)
TASKS = (
    "phone, seen speakers",
    "phone, unseen speakers",
    "ABX within (error)",
    "ABX across (error)",
    "speaker",
    "speaker, 2% labels",
    "language (en/de/fr/es)",
    "words, leave one voice out",
)


@dataclass(frozen=True)
class Item:
    """One utterance of a pooled task: its file, voice and label."""

    path: Path
    voice: str
    label: str


@dataclass
class SpeechData:
    """The four corpora, split for their tasks."""

    split: dict[str, list[Utterance]]
    num_phones: int
    abx_items: list
    speakers: dict[str, list[Utterance]]
    languages: tuple[list[Item], list[Item]]
    words: list[Item]
    manifest: Path


def _items(root: Path, label: str) -> list[Item]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        return [Item(root / r["path"], r["speaker"], r[label]) for r in csv.DictReader(f)]


def _build(root: Path, **kwargs: object) -> Path:
    if not (root / "manifest.csv").is_file():
        build_espeak_corpus(root, **kwargs)  # type: ignore[arg-type]
    return root


def _language_split(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """Per language, the first two thirds of its voices train the probe, the rest test."""
    train: list[Item] = []
    test: list[Item] = []
    for lang in LANGUAGES:
        voices = sorted({i.voice for i in items if i.label == lang})
        held = set(voices[max(1, (2 * len(voices)) // 3) :])
        for item in (i for i in items if i.label == lang):
            (test if item.voice in held else train).append(item)
    return train, test


def build_data(ctx: Context) -> SpeechData:
    """Synthesise (or reuse) the corpora under ``ctx.work`` and split them."""
    s, work = ctx.sizes, ctx.work
    phones = _corpus(work / "corpus_phones", s.phone_minutes, s.phone_speakers, ctx.seed)
    split = _split(phones, s.unseen_speakers, 0.3, ctx.seed)
    speakers = _corpus(
        work / "corpus_speakers", s.speaker_minutes, s.speaker_speakers, ctx.seed + 1
    )
    lang_root = _build(
        work / "corpus_languages",
        minutes=s.language_minutes,
        num_speakers=s.language_speakers,
        seed=ctx.seed + 2,
        languages=LANGUAGES,
    )
    word_root = _build(
        work / "corpus_words", num_speakers=s.word_voices, seed=ctx.seed + 3, texts=WORDS
    )
    abx_utts = split["test_seen"] + split["test_unseen"]
    rel = [str(u.path.relative_to(work / "corpus_phones")) for u in abx_utts]
    return SpeechData(
        split=split,
        num_phones=len(read_phone_inventory(work / "corpus_phones")["phones"]),
        abx_items=items_from_espeak_corpus(work / "corpus_phones", rel),
        speakers=_split(speakers, 0, 0.3, ctx.seed),
        languages=_language_split(_items(lang_root, "language")),
        words=_items(word_root, "text"),
        manifest=_write_manifest(split["train"], work / "pretrain_manifest.csv"),
    )


def _overrides(ctx: Context, data: SpeechData) -> list[str]:
    steps = ctx.sizes.speech_steps
    return [
        f"data.train={data.manifest}",
        f"data.batch_size={ctx.sizes.speech_batch}",
        f"optim.max_steps={steps}",
        f"optim.warmup_steps={min(100, max(1, steps // 4))}",
        f"run.val_every={max(1, steps // 2)}",
        "run.val_batches=4",
        f"run.ckpt_every={steps}",
        f"run.seed={ctx.seed}",
    ]


def feature_sets(ctx: Context, data: SpeechData) -> dict[str, FeatureFn]:
    """Pretrain every speech row; return each row's, the baselines' and the untrained
    network's feature function.
    """
    models: dict[str, CPCModel] = {}
    for row in ctx.trained():
        run = ctx.work / f"run_{row.slug}"
        with timing(ctx, f"pretrain {row.name}"):
            models[row.name] = pretrain(PRESET, [*_overrides(ctx, data), *row.overrides], run)[0]
    sets: dict[str, FeatureFn] = {}
    for row in ctx.rows:
        model = models[row.reuse or row.name]
        sets[row.name] = partial(sequence_features, model, layer=row.layer)
    config = load_config(PRESET, _overrides(ctx, data))
    torch.manual_seed(ctx.seed)
    untrained = build_model(config.model).eval()
    _calibrate_batch_norm(untrained, data.split["train"], config.data.window)
    sets[UNTRAINED] = lambda w: sequence_features(untrained, w, "context")
    sets["MFCC (13)"] = lambda w: mfcc_features(w, 16000, n_mfcc=13)
    sets["log-mel (40)"] = lambda w: logmel_features(w, 16000, n_mels=40)
    return sets


def _probe(xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor, seed: int) -> ProbeResult:
    classes = int(max(ytr.max(), yte.max())) + 1
    return linear_probe(xtr, ytr, xte, yte, num_classes=classes, seed=seed)


def _codes(labels: list[str]) -> Tensor:
    ids = {name: i for i, name in enumerate(sorted(set(labels)))}
    return torch.tensor([ids[n] for n in labels])


def _frame_tasks(fn: FeatureFn, data: SpeechData, ctx: Context) -> dict[str, object]:
    """Phone probes (seen, unseen speakers) and ABX of one feature set."""
    split = data.split
    utts = split["train"] + split["test_seen"] + split["test_unseen"]
    cache = {u.path: fn(_wave(u.path)) for u in utts}
    xtr, ytr = _phone_data(fn, split["train"], cache)
    if len(xtr) > ctx.sizes.max_phone_frames:  # a fixed random subset, the same for all
        keep = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(ctx.seed))
        keep = keep[: ctx.sizes.max_phone_frames]
        xtr, ytr = xtr[keep], ytr[keep]
    out: dict[str, object] = {}
    for task, part in (
        ("phone, seen speakers", "test_seen"),
        ("phone, unseen speakers", "test_unseen"),
    ):
        if split[part]:
            xte, yte = _phone_data(fn, split[part], cache)
            out[task] = linear_probe(xtr, ytr, xte, yte, num_classes=data.num_phones, seed=ctx.seed)
    abx_cache = {u.path: cache[u.path] for u in split["test_seen"] + split["test_unseen"]}
    abx = _abx(abx_cache, data.abx_items, TableSettings(seed=ctx.seed))
    out["ABX within (error)"], out["ABX across (error)"] = abx["within"], abx["across"]
    return out


def _pooled_of(fn: FeatureFn, paths: list[Path]) -> Tensor:
    return torch.stack([pooled(fn(_wave(p))) for p in paths])


def _speaker_tasks(fn: FeatureFn, data: SpeechData, ctx: Context) -> dict[str, object]:
    train, test = data.speakers["train"], data.speakers["test_seen"]
    codes = _codes([u.speaker for u in train + test])
    ytr, yte = codes[: len(train)], codes[len(train) :]
    xtr, xte = _pooled_of(fn, [u.path for u in train]), _pooled_of(fn, [u.path for u in test])
    few = torch.from_numpy(few_labels(ytr.numpy(), ctx.sizes.label_fraction, ctx.seed))
    return {
        "speaker": _probe(xtr, ytr, xte, yte, ctx.seed),
        "speaker, 2% labels": _probe(xtr[few], ytr[few], xte, yte, ctx.seed),
    }


def _language_task(fn: FeatureFn, data: SpeechData, ctx: Context) -> ProbeResult:
    train, test = data.languages
    codes = _codes([i.label for i in train + test])
    xtr, xte = _pooled_of(fn, [i.path for i in train]), _pooled_of(fn, [i.path for i in test])
    return _probe(xtr, codes[: len(train)], xte, codes[len(train) :], ctx.seed)


def _word_task(fn: FeatureFn, data: SpeechData, ctx: Context) -> dict[str, object]:
    """Leave one voice out: mean accuracy over the held-out voices, and its spread."""
    words = data.words
    x = _pooled_of(fn, [i.path for i in words])
    y, voices = _codes([i.label for i in words]), np.array([i.voice for i in words])
    accs = []
    for voice in sorted(set(voices)):
        test = torch.from_numpy(voices == voice)
        res = _probe(x[~test], y[~test], x[test], y[test], ctx.seed)
        accs.append(res.accuracy)
    return {"accuracy": float(np.mean(accs)), "std": float(np.std(accs)), "folds": accs}


def run_speech(ctx: Context) -> dict[str, dict[str, object]]:
    """Every speech task for every row, baseline and the untrained network."""
    with timing(ctx, "speech corpora"):
        data = build_data(ctx)
    sets = feature_sets(ctx, data)
    results: dict[str, dict[str, object]] = {task: {} for task in TASKS}
    for name, fn in sets.items():
        log.info("speech: probing %s", name)
        with timing(ctx, f"speech probes {name}"):
            cells = _all_tasks(fn, data, ctx)
        for task, value in cells.items():
            results[task][name] = value
    ctx.notes.append(_describe(data, ctx))
    return results


def _describe(data: SpeechData, ctx: Context) -> str:
    spk = np.array([u.speaker for u in data.speakers["train"]])
    few = len(few_labels(spk, ctx.sizes.label_fraction, ctx.seed))
    return (
        f"speech: {len(data.split['train'])} pretraining utterances; phone probe on at most "
        f"{ctx.sizes.max_phone_frames} training frames, {data.num_phones} classes; speaker "
        f"probe {len(spk)} training utterances of {len(set(spk))} voices ({few} in the 2% "
        f"column: 2% per voice, at least one); language {len(data.languages[0])} / "
        f"{len(data.languages[1])} utterances (probe-train and test voices disjoint); words "
        f"{len(WORDS)} words x {len({i.voice for i in data.words})} voices (chance "
        f"{1 / len(WORDS):.0%})"
    )


def _all_tasks(fn: FeatureFn, data: SpeechData, ctx: Context) -> dict[str, object]:
    return {
        **_frame_tasks(fn, data, ctx),
        **_speaker_tasks(fn, data, ctx),
        "language (en/de/fr/es)": _language_task(fn, data, ctx),
        "words, leave one voice out": _word_task(fn, data, ctx),
    }


__all__ = ["DEFAULT_ROW", "TASKS", "WORDS", "build_data", "feature_sets", "run_speech"]
