"""Streamed shards: every sample once per epoch across ranks and workers, exact resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.data.collate import pad_collate
from cpc.data.formats.stream import ShardStream, shuffled, slot_shards
from cpc.train.loaders import stream_loader

wds = pytest.importorskip("webdataset")
pytest.importorskip("torchdata")

pytestmark = pytest.mark.usefixtures("one_thread")

#: Samples per shard: uneven on purpose (a slot may get one shard, or none).
SIZES = [3, 5, 2, 4, 1, 6]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    for s, size in enumerate(SIZES):
        with wds.TarWriter(str(root / f"part-{s:03d}.tar")) as sink:
            for i in range(size):
                buf = io.BytesIO()
                n = int(rng.integers(600, 1500))
                sf.write(
                    buf, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, format="WAV"
                )
                sink.write(
                    {"__key__": f"s{s}-{i}", "wav": buf.getvalue(), "json": {"speaker": "a"}}
                )
    return f"file://{root}/part-{{000..{len(SIZES) - 1:03d}}}.tar"


def stream(pattern, rank=0, world=1, seed=3, buffer=4):
    data = ShardStream(pattern, 16000, 1024, seed=seed, buffer=buffer)
    data.shard_for(rank, world)
    return data


def keys(loader):
    return [k for batch in loader for k in batch["key"]]


@pytest.mark.parametrize(("world", "workers"), [(1, 0), (2, 2), (3, 1)])
def test_every_sample_is_read_once_per_epoch_across_ranks_and_workers(shards, world, workers):
    for epoch in (0, 1):
        seen = []
        for rank in range(world):
            data = stream(shards, rank, world)
            data.set_epoch(epoch)
            seen += keys(
                stream_loader(data, pad_collate, batch_size=2, seed=0, num_workers=workers)
            )
        expected = [f"s{s}-{i}" for s, size in enumerate(SIZES) for i in range(size)]
        assert sorted(seen) == sorted(expected)  # no sample twice, none dropped


def test_order_is_a_function_of_seed_and_epoch(shards):
    def order(seed, epoch):
        data = stream(shards, seed=seed)
        data.set_epoch(epoch)
        return list(data.keys())

    assert order(3, 0) == order(3, 0)
    assert order(3, 0) != order(3, 1) and order(3, 0) != order(4, 0)
    assert slot_shards(list("abcdef"), 0, 0, 0, 2) + slot_shards(list("abcdef"), 0, 0, 1, 2)
    rng = np.random.default_rng(0)
    assert sorted(shuffled(iter(range(10)), 3, rng)) == list(range(10))


@pytest.mark.parametrize(("workers", "cut"), [(0, 3), (2, 1), (2, 4)])
def test_a_loader_restored_mid_epoch_gives_the_uninterrupted_batches(shards, workers, cut):
    def loader(state=None):
        data = stream(shards)
        data.set_epoch(1)
        built = stream_loader(data, pad_collate, batch_size=2, seed=5, num_workers=workers)
        if state is not None:
            built.load_state_dict(state)
        return built

    whole = list(loader())
    first = loader()
    it = iter(first)
    head = [next(it) for _ in range(cut)]
    state = first.state_dict()
    del it
    tail = list(loader(state))
    assert len(head) + len(tail) == len(whole)
    for got, want in zip(head + tail, whole, strict=True):
        assert got["key"] == want["key"]
        assert torch.equal(got["x"], want["x"]) and torch.equal(got["lengths"], want["lengths"])
