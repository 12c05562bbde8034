"""A multi-speaker speech corpus with frame-level phone labels, synthesised by eSpeak NG.

No download is needed: the speech comes from libespeak-ng as bundled by the PyPI package
``espeakng-loader``, the sentences from the seeded grammars in
:mod:`cpc.data.corpora.texts`. Every speaker is a distinct eSpeak voice variant
(``"en-us+f2"``, ``"en+m3"``, ...) with its own dialect, speaking rate (words per
minute), pitch and pitch range, drawn deterministically from the seed; within a
language, speakers alternate female and male variants. The phone labels come from
eSpeak's own phoneme events, so the alignment is exact up to the synthesiser's notion
of a phoneme boundary.

Layout written under ``out_dir``::

    wav/<speaker>/<utt>.wav        16-bit PCM, mono, ``sample_rate`` Hz
    phones/<speaker>/<utt>.npy     int16 phone id per 10 ms frame
    manifest.csv                   path (relative), speaker, duration (s), language, text
    phones.json                    inventory, silence label, hop, frame convention
    speakers.json                  voice, language, gender, rate, pitch, range per speaker

Frame convention: with ``hop = sample_rate // 100`` (160 at 16 kHz), an utterance of ``L``
samples has ``floor(L / hop)`` frames (a trailing partial frame gets no label); frame
``j`` covers samples ``[j * hop, (j + 1) * hop)`` and carries the phone active at its
centre sample ``j * hop + hop // 2``. Id 0 is ``"sil"``: the leading and trailing pads and
every eSpeak pause (``_``, ``_:``, ...). Stress marks are removed from phone names. The
ids of :data:`ENGLISH_PHONES` are fixed; phones of other languages are appended in
sorted order per corpus, so read ``phones.json`` for the mapping.

The same arguments give a byte-identical corpus: each speaker is synthesised in its own
fresh process (see :mod:`cpc.data.corpora._espeak_worker`), because libespeak-ng keeps
state between utterances that no API call resets.
"""

from __future__ import annotations

import csv
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from cpc.data.corpora.budget import check_speech
from cpc.data.corpora.texts import LANGUAGES, sample_sentences
from cpc.errors import ConfigError

__all__ = [
    "ENGLISH_PHONES",
    "CorpusInfo",
    "SpeakerSpec",
    "build_espeak_corpus",
    "load_phone_labels",
    "read_phone_inventory",
]

ESPEAK_RATE = 22050
"""Sample rate of libespeak-ng's output; events and audio are rescaled from it."""
SILENCE = "sil"
ENGLISH_PHONES: tuple[str, ...] = (
    SILENCE,
    *"""
0 3 3: ; @ @2 @5 @L A: A@ D E I I# I2 IR N O2 O: O@ OI S T U U@ V VR Z a a# aI aI2 aI3 aI@ aU
aa b d dZ e@ eI f g h i i: i@ i@3 j k l m n o@ oU p r r- s t t# t2 tS t[ u: v w z
""".split(),
)
"""Fixed phone inventory (eSpeak mnemonics without stress) of the English dialects used."""

_FEMALE = ("f1", "f2", "f3", "f4", "f5", "linda", "belinda", "steph", "anika")
_MALE = ("m1", "m2", "m3", "m4", "m6", "m7", "m8", "john", "ian", "victor", "Andy", "grandpa")
_DIALECTS = {
    "en": ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc"),
    "de": ("de",),
    "fr": ("fr",),
    "es": ("es",),
}
_PAD_SECONDS = (0.1, 0.25)  # range of the silent pad added before and after each utterance
_DITHER_STD = 3.0  # std of the Gaussian dither, in int16 steps (about -80 dBFS)
_WORKER = Path(__file__).with_name("_espeak_worker.py")


@dataclass(frozen=True)
class SpeakerSpec:
    """One synthetic speaker: an eSpeak voice with fixed prosody settings."""

    name: str
    language: str
    voice: str  # "<dialect>+<variant>", as given to espeak_SetVoiceByName
    gender: str  # gender of the eSpeak variant: "female" or "male"
    rate: int  # words per minute
    pitch: int  # base pitch, 0-100 within the variant's range
    range: int  # pitch range, 0-100


@dataclass(frozen=True)
class CorpusInfo:
    """Summary of a built corpus, returned by :func:`build_espeak_corpus`."""

    root: Path
    sample_rate: int
    hop_length: int
    num_utterances: int
    total_seconds: float
    speakers: tuple[SpeakerSpec, ...]
    phones: tuple[str, ...]
    build_seconds: float

    @property
    def speed(self) -> float:
        """Seconds of audio produced per second of wall-clock build time."""
        return self.total_seconds / max(self.build_seconds, 1e-9)


def _choose_speakers(num_speakers: int, seed: int, languages: Sequence[str]) -> list[SpeakerSpec]:
    """Cycle through the languages; within each language alternate female and male."""
    rng = np.random.default_rng([seed, 0])
    pools = {
        "female": [_FEMALE[i] for i in rng.permutation(len(_FEMALE))],
        "male": [_MALE[i] for i in rng.permutation(len(_MALE))],
    }
    used = {"female": 0, "male": 0}
    speakers = []
    for i in range(num_speakers):
        language = languages[i % len(languages)]
        gender = "female" if (i // len(languages)) % 2 == 0 else "male"
        pool = pools[gender]
        variant = pool[used[gender] % len(pool)]  # repeats only past 9 female / 12 male
        used[gender] += 1
        dialects = _DIALECTS[language]
        dialect = dialects[int(rng.integers(len(dialects)))]
        speakers.append(
            SpeakerSpec(
                name=f"spk{i:03d}",
                language=language,
                voice=f"{dialect}+{variant}",
                gender=gender,
                rate=int(rng.integers(140, 211)),
                pitch=int(rng.integers(25, 76)),
                range=int(rng.integers(30, 81)),
            )
        )
    return speakers


def _phone_name(mnemonic: str) -> str | None:
    """Normalise an eSpeak phoneme mnemonic; ``None`` for language-switch markers."""
    if mnemonic.startswith("("):
        return None
    name = mnemonic.lstrip("',%=")
    if not name or name.startswith("_"):
        return SILENCE
    return name


def _run_worker(request: dict[str, object]) -> Iterator[tuple[int, np.ndarray, list]]:
    """Yield ``(sentence index, int16 audio at 22050 Hz, events)`` from a fresh worker."""
    import espeakng_loader  # imported here so that only corpus builds need it

    request = dict(request)
    request["library"] = espeakng_loader.get_library_path()
    request["data_parent"] = str(Path(espeakng_loader.get_data_path()).parent)
    proc = subprocess.Popen(
        [sys.executable, str(_WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(json.dumps(request).encode())
    proc.stdin.close()
    try:
        while header := proc.stdout.read(12):
            index, num_samples, num_json = struct.unpack("<III", header)
            audio = np.frombuffer(proc.stdout.read(2 * num_samples), dtype="<i2")
            events = json.loads(proc.stdout.read(num_json))
            yield index, audio, events
    except GeneratorExit:  # the caller stopped early (its write failed): end the worker quietly
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        error = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0 and proc.returncode != -9:
            raise RuntimeError(f"espeak worker failed for voice {request['voice']}: {error}")


def _frame_names(
    events: list, offset: int, speech: int, num_samples: int, sample_rate: int, hop: int
) -> list[str]:
    """Phone name per frame from events at 22050 Hz, shifted by ``offset`` output samples.

    Frames before the first event and after the ``speech`` samples are silence.
    """
    starts, names = [], []
    for sample, mnemonic in sorted(events, key=lambda e: e[0]):
        name = _phone_name(mnemonic)
        if name is not None:
            starts.append(offset + round(sample * sample_rate / ESPEAK_RATE))
            names.append(name)
    starts.append(offset + speech)
    names.append(SILENCE)
    num_frames = num_samples // hop
    centres = np.arange(num_frames) * hop + hop // 2
    active = np.searchsorted(np.asarray(starts, dtype=np.int64), centres, side="right") - 1
    return [SILENCE if a < 0 else names[a] for a in active]


def _build_speaker(
    speaker: SpeakerSpec,
    index: int,
    out: Path,
    seconds: float,
    seed: int,
    sample_rate: int,
    texts: Sequence[str] | None = None,
) -> list[tuple[dict[str, str], list[str]]]:
    """Synthesise, resample and write the wavs of one speaker; return manifest rows and labels."""
    rng = np.random.default_rng([seed, index + 1])
    num_sentences = math.ceil(seconds) + 4  # sentences last more than a second
    sentences = list(texts) if texts else sample_sentences(speaker.language, num_sentences, rng)
    if texts:
        seconds = math.inf  # every text, whatever its length
    request = {
        "voice": speaker.voice,
        "rate": speaker.rate,
        "pitch": speaker.pitch,
        "range": speaker.range,
        "seed": seed,
        "sentences": sentences,
        "target_samples": 2**62 if texts else math.ceil(seconds * ESPEAK_RATE),
        "extra_samples": round(sum(_PAD_SECONDS) * ESPEAK_RATE),  # mean of the two pads
    }
    hop = sample_rate // 100
    (out / "wav" / speaker.name).mkdir(parents=True, exist_ok=True)
    rows = []
    for utt, audio, events in _run_worker(request):
        noise_rng = np.random.default_rng([seed, index + 1, utt])
        pad_start, pad_end = (
            round(noise_rng.uniform(*_PAD_SECONDS) * sample_rate) for _ in range(2)
        )
        speech = torch.from_numpy(audio.astype(np.float32) / 32768.0)
        speech = AF.resample(speech, ESPEAK_RATE, sample_rate).numpy()
        wave = np.concatenate(
            [np.zeros(pad_start, np.float32), 32768.0 * speech, np.zeros(pad_end, np.float32)]
        )
        wave += noise_rng.normal(0.0, _DITHER_STD, size=wave.shape).astype(np.float32)
        pcm = np.clip(np.round(wave), -32768, 32767).astype(np.int16)
        rel = f"wav/{speaker.name}/{speaker.name}_{utt:04d}.wav"
        sf.write(out / rel, pcm, sample_rate, subtype="PCM_16")
        row = {
            "path": rel,
            "speaker": speaker.name,
            "duration": f"{len(pcm) / sample_rate:.4f}",
            "language": speaker.language,
            "text": sentences[utt],
        }
        names = _frame_names(events, pad_start, len(speech), len(pcm), sample_rate, hop)
        rows.append((row, names))
    return rows


def _labels_path(root: Path, wav_rel: str) -> Path:
    rel = Path(wav_rel)
    return root / "phones" / rel.relative_to("wav").with_suffix(".npy")


def build_espeak_corpus(
    out_dir: str | os.PathLike[str],
    *,
    minutes: float = 1.0,
    num_speakers: int = 8,
    seed: int = 0,
    sample_rate: int = 16000,
    languages: Sequence[str] = ("en",),
    workers: int | None = None,
    overwrite: bool = False,
    texts: Sequence[str] | None = None,
) -> CorpusInfo:
    """Synthesise a multi-speaker corpus with frame-level phone labels.

    Each speaker gets about ``minutes / num_speakers`` of audio in whole sentences.
    Speakers cycle through ``languages``; within a language they alternate female and
    male eSpeak variants (9 female and 12 male variants; past those, variants repeat
    with another dialect, rate and pitch).
    Every utterance gets a silent pad of 0.1-0.25 s at both ends and a Gaussian dither
    of 3 int16 steps (about -80 dBFS), so no frame is digital zero.

    Args:
        out_dir: Directory to write the corpus to (see the module docstring).
        minutes: Total amount of speech, in minutes.
        num_speakers: Number of distinct synthetic speakers.
        seed: Seed of the speaker settings, sentences, pads and dither.
        sample_rate: Output sample rate in Hz; a multiple of 100 so a frame is 10 ms.
        languages: Language codes from :data:`cpc.data.corpora.texts.LANGUAGES`.
        workers: Speakers synthesised in parallel; defaults to the CPU count. The output
            does not depend on it.
        overwrite: Allow writing into a directory that already holds a manifest.
        texts: Instead of sentences from the grammars, every speaker says each of these
            once, in order (spoken-word tasks); ``minutes`` is then ignored.

    Returns:
        A :class:`CorpusInfo` with the totals, speakers, inventory and build time.

    Raises:
        ConfigError: On a size, seed or sample rate out of range (NaN and infinities
            included), an unknown language, or a corpus larger than the disk or memory
            can hold (:func:`cpc.data.corpora.budget.check_speech`); checked before the
            output folder is created.
        FileExistsError: If ``out_dir`` already holds a corpus and ``overwrite`` is False.

    """
    out = Path(out_dir)
    workers = workers or os.cpu_count() or 1
    _check_corpus_args(out, minutes, num_speakers, seed, sample_rate, languages, workers)
    if (out / "manifest.csv").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a corpus; pass overwrite=True to replace it")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    speakers = _choose_speakers(num_speakers, seed, languages)
    seconds = minutes * 60.0 / num_speakers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [
            pool.submit(_build_speaker, spk, i, out, seconds, seed, sample_rate, texts)
            for i, spk in enumerate(speakers)
        ]
        results = [row for job in jobs for row in job.result()]
    phones = _write_labels(out, results)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "speaker", "duration", "language", "text"])
        writer.writeheader()
        writer.writerows(row for row, _ in results)
    _write_inventory(out, phones, sample_rate)
    (out / "speakers.json").write_text(json.dumps([asdict(s) for s in speakers], indent=1) + "\n")
    total = sum(float(row["duration"]) for row, _ in results)
    return CorpusInfo(
        root=out,
        sample_rate=sample_rate,
        hop_length=sample_rate // 100,
        num_utterances=len(results),
        total_seconds=total,
        speakers=tuple(speakers),
        phones=phones,
        build_seconds=time.perf_counter() - start,
    )


def _check_corpus_args(
    out: Path,
    minutes: float,
    num_speakers: int,
    seed: int,
    sample_rate: int,
    languages: Sequence[str],
    workers: int,
) -> None:
    """Refuse sizes, seeds and rates out of range, an unknown language, or a corpus larger
    than the disk or memory can hold (:func:`cpc.data.corpora.budget.check_speech`).
    """
    check_speech(out, minutes, num_speakers, seed, sample_rate, workers)
    if sample_rate % 100:
        raise ConfigError(f"sample_rate must be a positive multiple of 100, got {sample_rate}")
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown or not languages:
        raise ConfigError(
            f"languages (--languages) must be a non-empty subset of {LANGUAGES}, "
            f"got {list(languages)}"
        )


def _write_labels(out: Path, results: list[tuple[dict[str, str], list[str]]]) -> tuple[str, ...]:
    """Write every utterance's phone ids; return the inventory (English phones first)."""
    seen = {name for _, names in results for name in names}
    phones = ENGLISH_PHONES + tuple(sorted(seen - set(ENGLISH_PHONES)))
    ids = {name: i for i, name in enumerate(phones)}
    for row, names in results:
        path = _labels_path(out, row["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray([ids[n] for n in names], dtype=np.int16))
    return phones


def _write_inventory(out: Path, phones: tuple[str, ...], sample_rate: int) -> None:
    """``phones.json``: the inventory, the silence label, the hop and the frame convention."""
    hop = sample_rate // 100
    inventory = {
        "phones": list(phones),
        "silence": SILENCE,
        "silence_id": 0,
        "sample_rate": sample_rate,
        "hop_length": hop,
        "frame_rate": 100,
        "num_frames": "floor(num_samples / hop_length)",
        "frame_convention": "frame j covers samples [j*hop, (j+1)*hop) and carries the "
        "phone active at sample j*hop + hop//2",
    }
    (out / "phones.json").write_text(json.dumps(inventory, indent=1, ensure_ascii=False) + "\n")


def read_phone_inventory(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the content of ``phones.json`` (inventory, silence id, hop, convention)."""
    return json.loads((Path(out_dir) / "phones.json").read_text())


def load_phone_labels(out_dir: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load the frame labels of every utterance in a corpus.

    Args:
        out_dir: Directory written by :func:`build_espeak_corpus`.

    Returns:
        A mapping from each manifest ``path`` (relative wav path) to its int16 phone ids.

    Shape:
        Each value is ``(s,)`` with ``s = floor(num_samples / hop_length)`` frames.

    """
    root = Path(out_dir)
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        paths = [row["path"] for row in csv.DictReader(f)]
    return {path: np.load(_labels_path(root, path)) for path in paths}
