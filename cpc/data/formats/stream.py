"""Stream WebDataset shards named by URL, resumable at any batch.

Local shard paths are indexed and read like files (:mod:`cpc.data.formats.webdataset`).
Shards named by URL (``file://``, ``https://``, ``pipe:`` ... any scheme webdataset's
``gopen`` opens) cannot be listed and probed up front, so they are streamed:
:class:`ShardStream` is an iterable data set whose epoch is a pure function of
``(seed, epoch, rank, worker)``:

1. the shard order is a permutation seeded by ``(seed, epoch)``, the same on every
   process; shard ``i`` of that order goes to slot ``i mod (world_size * workers)``,
   slot ``rank * workers + worker``, so every sample of the epoch is read by exactly one
   DataLoader worker of one process;
2. a slot's samples go through a shuffle buffer of ``buffer`` samples seeded by
   ``(seed, epoch, rank, worker)``;
3. each sample taken gives one window at an offset seeded by the same and the take's
   position (streamed samples are utterances: one window each).

Its state (:meth:`ShardStream.state_dict`) is the epoch and the number of samples taken;
:meth:`ShardStream.load_state_dict` makes the next iteration replay that many takes
without decoding audio and go on from there. torchdata's ``StatefulDataLoader`` keeps
one such state per worker plus its own round-robin position, so a run killed mid-epoch
resumes with exactly the batches it would have seen (:mod:`cpc.train.loaders`).

A sample without audio, that fails to decode or is too short is reported once by key
and skipped (bad samples are bad on every pass, so replay stays exact).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import IterableDataset, get_worker_info

from cpc.data.errors import SkipReport
from cpc.data.formats.webdataset import AUDIO_EXTENSIONS, shard_urls, speaker_of
from cpc.data.resample import resample
from cpc.data.windows import AUGMENT_STREAM, Augment
from cpc.errors import DataError

#: Samples held by the shuffle buffer (webdataset's examples use 1000-5000).
SHUFFLE_BUFFER = 1000


def is_streamed(spec: str) -> bool:
    """Whether a ``data.train`` value is a shard pattern named by URL (streamed)."""
    return "://" in spec or spec.startswith("pipe:")


def slot_shards(shards: list[str], seed: int, epoch: int, slot: int, slots: int) -> list[str]:
    """The shards one (rank, worker) slot reads in an epoch, in order."""
    order = np.random.default_rng([seed, epoch, 4241]).permutation(len(shards))
    return [shards[i] for i in order[slot::slots]]


def shard_samples(shards: list[str]) -> Iterator[dict[str, Any]]:
    """The samples of shards in order, as webdataset groups tar members by key."""
    from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

    yield from group_by_keys(tar_file_expander(url_opener({"url": s} for s in shards)))


def shuffled(samples: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """A seeded shuffle buffer: fill up to ``size``, then emit a random held sample and
    put the next one in its place; drain in random order at the end.
    """
    buffer: list[Any] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        j = int(rng.integers(len(buffer)))
        yield buffer[j]
        buffer[j] = sample
    while buffer:
        yield buffer.pop(int(rng.integers(len(buffer))))


class ShardStream(IterableDataset[dict[str, Any]]):
    """Random training windows streamed from WebDataset shards (module docstring).

    Args:
        pattern: Shard URLs (a brace pattern; ``::`` joins several).
        sample_rate: Rate of the windows.
        window: Window length in samples; shorter samples are zero-padded (their true
            ``length`` reported).
        min_length: Samples shorter than this are skipped and reported.
        seed, rank, world_size: Seed of the order; this process and their number.
        buffer: Shuffle buffer size.
        augment: Applied to the valid part of each window with a generator seeded like
            its offset, on a stream of its own (:mod:`cpc.data.augment`).

    Shape:
        item ``"x"``: ``(window,)`` float32; ``"length"``, ``"group"``, ``"index"``: ints.

    """

    def __init__(
        self,
        pattern: str,
        sample_rate: int,
        window: int,
        *,
        min_length: int = 1,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        buffer: int = SHUFFLE_BUFFER,
        augment: Augment | None = None,
    ) -> None:
        self.shards = shard_urls(pattern)
        if not self.shards:
            raise DataError(pattern, "no shards: the pattern names none")
        self.rate, self.window, self.min_length = sample_rate, window, min_length
        self.seed, self.rank, self.world_size, self.buffer = seed, rank, world_size, buffer
        self.augment = augment
        self.epoch, self._skip = 0, 0
        self._taken = 0
        self.report = SkipReport()
        self.group_names: list[str] = []

    def shard_for(self, rank: int, world_size: int) -> None:
        """Read only the slots of process ``rank`` of ``world_size``."""
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shard order, buffer and offsets iteration draws."""
        self.epoch, self._skip = epoch, 0

    def state_dict(self) -> dict[str, int]:
        """The epoch and how many samples this worker's stream has taken."""
        return {"epoch": self.epoch, "taken": self._taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after ``state["taken"]`` samples of epoch ``state["epoch"]``."""
        self.epoch, self._skip = int(state["epoch"]), int(state["taken"])

    def _slot(self) -> tuple[int, int]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world_size * workers

    def keys(self) -> Iterator[str]:
        """Keys in this slot's order for the current epoch (reads no audio)."""
        for sample in self._order():
            yield sample["__key__"]

    def _order(self) -> Iterator[dict[str, Any]]:
        slot, slots = self._slot()
        shards = slot_shards(self.shards, self.seed, self.epoch, slot, slots)
        rng = np.random.default_rng([self.seed, self.epoch, slot, 17])
        return shuffled(shard_samples(shards), self.buffer, rng)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, _ = self._slot()
        self._taken = 0
        for sample in self._order():
            self._taken += 1
            if self._taken <= self._skip:
                continue  # taken before the checkpoint: replayed, not decoded
            try:
                yield self._item(sample, slot)
            except DataError as err:
                self.report.skip(err.path, err.reason)
        self._skip = 0

    def _item(self, sample: dict[str, Any], slot: int) -> dict[str, Any]:
        key = str(sample["__key__"])
        data = next((sample[e] for e in AUDIO_EXTENSIONS if e in sample), None)
        if data is None:
            raise DataError(key, "no audio: the sample has no " + "/".join(AUDIO_EXTENSIONS))
        try:
            wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, TypeError) as err:
            raise DataError(key, f"unreadable: {err}") from None
        mono = resample(np.ascontiguousarray(wave.mean(axis=1)), int(rate), self.rate)
        if not np.isfinite(mono).all():
            raise DataError(key, "non-finite: NaN or infinite samples")
        if mono.shape[0] < self.min_length:
            raise DataError(key, f"too short: {mono.shape[0]} samples < {self.min_length}")
        offset = 0
        if mono.shape[0] > self.window:
            rng = np.random.default_rng([self.seed, self.epoch, slot, self._taken])
            offset = int(rng.integers(0, mono.shape[0] - self.window + 1))
        part = torch.from_numpy(np.ascontiguousarray(mono[offset : offset + self.window]))
        if self.augment is not None:
            seeds = [self.seed, self.epoch, slot, self._taken, AUGMENT_STREAM]
            part = self.augment(part, np.random.default_rng(seeds))
        x = torch.zeros(self.window, dtype=torch.float32)
        x[: part.shape[0]] = part
        speaker = speaker_of(sample.get("json"))
        return {"x": x, "length": int(part.shape[0]), "group": 0, "index": self._taken,
                "key": key, "speaker": speaker}  # fmt: skip
