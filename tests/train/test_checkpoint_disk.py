"""What a checkpoint promises on disk, beyond the round trip: checksums, older formats,
leftovers of dead and live processes, pruning that cannot delete, falling back past a
damaged newest checkpoint, and files flushed before the rename."""

import errno
import json
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import safetensors.torch
import torch

from cpc.checkpoints.store import (
    CheckpointError,
    TrainState,
    checkpoint_dir,
    list_checkpoints,
    load_checkpoint,
    load_model,
    load_newest_valid,
    load_train_state,
    read_meta,
    rng_state,
    set_aside,
    set_rng_state,
)
from cpc.config import RunConfig
from cpc.data.registry import build_model
from cpc.train.schedule import build_optimizer

from .conftest import save_step, tiny_config


def names(config):
    return [p.name for p in list_checkpoints(config.run.out_dir)]


def flip_a_weight(path: Path) -> None:
    """Still a valid safetensors file with the right names and shapes: only its sum differs."""
    tensors = safetensors.torch.load_file(str(path / "model.safetensors"))
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1
    safetensors.torch.save_file(tensors, str(path / "model.safetensors"))


def test_layout_and_a_timestamp_with_its_zone(fresh_run):
    config, model, optimizer = fresh_run
    before = datetime.now(UTC)
    path = save_step(config, model, optimizer, 12)
    # The layout older runs were written with: resuming and `cpc.load(run)` look there.
    assert path == Path(config.run.out_dir) / "checkpoints" / "step_00000012"
    assert checkpoint_dir(config.run.out_dir) == path.parent
    stamp = datetime.fromisoformat(read_meta(path)["time"])
    assert stamp.tzinfo is not None and abs(stamp - before) < timedelta(minutes=1)


def test_state_elapsed_time_rng_of_every_rank_path_and_meta_round_trip(fresh_run):
    config, model, optimizer = fresh_run
    torch.manual_seed(1)
    first = rng_state()
    torch.rand(3)
    second = rng_state()  # another rank's state: different torch state
    state = TrainState(step=7, epoch=3, batch_in_epoch=5, elapsed=12.5)
    path = save_step(config, model, optimizer, 7, state=state, rng=[first, second])
    ckpt = load_checkpoint(path)
    assert ckpt.state == state
    assert ckpt.path == path and ckpt.meta == read_meta(path)
    assert len(ckpt.rng) == 2
    for got, want in zip(ckpt.rng, (first, second), strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            same = torch.equal(got[key], value) if torch.is_tensor(value) else got[key] == value
            assert same, key
    assert not torch.equal(ckpt.rng[0]["torch"], ckpt.rng[1]["torch"])


def test_a_file_changed_after_saving_is_refused_by_its_checksum(fresh_run):
    config, model, optimizer = fresh_run
    path = save_step(config, model, optimizer, 2)
    flip_a_weight(path)
    fresh = build_model(config.model)
    for where in (path, path / "model.safetensors"):
        with pytest.raises(CheckpointError, match=r"model\.safetensors: contents differ"):
            load_model(where)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: contents differ"):
        load_checkpoint(path, model=fresh)
    path = save_step(config, model, optimizer, 3)
    data = load_train_state(path / "train_state.pt")
    data["state"]["step"] = 300  # a readable training state, not the one saved
    torch.save(data, path / "train_state.pt")
    with pytest.raises(CheckpointError, match=r"train_state\.pt: contents differ"):
        load_checkpoint(path)


def test_a_checkpoint_from_before_checksums_rng_and_elapsed_time_still_loads(fresh_run):
    config, model, optimizer = fresh_run
    path = save_step(config, model, optimizer, 4, state=TrainState(4, 2, 1, elapsed=9.0))
    meta = json.loads((path / "meta.json").read_text())
    del meta["sha256"]
    (path / "meta.json").write_text(json.dumps(meta))
    data = load_train_state(path / "train_state.pt")
    raw = {k: v for k, v in data["state"].items() if k != "elapsed"}
    torch.save({"optimizer": data["optimizer"], "state": raw}, path / "train_state.pt")
    fresh = build_model(config.model)
    ckpt = load_checkpoint(path, model=fresh, optimizer=build_optimizer(fresh, config.optim))
    assert ckpt.state == TrainState(4, 2, 1, 0.0) and ckpt.rng == []
    assert load_model(path) is not None


def test_the_default_keep_last_is_the_configs_and_one_keeps_only_the_newest(fresh_run):
    config, model, optimizer = fresh_run
    for step in range(1, 6):
        save_step(config, model, optimizer, step)
    keep = RunConfig().keep_last
    assert names(config) == [f"step_{s:08d}" for s in range(6 - keep, 6)]
    save_step(config, model, optimizer, 6, keep_last=1)
    assert names(config) == ["step_00000006"]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_leftovers_of_dead_processes_on_this_host_go_others_stay(fresh_run, monkeypatch):
    config, model, optimizer = fresh_run
    root = checkpoint_dir(config.run.out_dir)
    root.mkdir(parents=True)
    host, dead = socket.gethostname(), _dead_pid()
    live = subprocess.Popen(["sleep", "60"])
    foreign = dead + 1_000_000  # "owned by another user": os.kill says PermissionError
    real_kill = os.kill

    def kill(pid, sig):
        if pid == foreign:
            raise PermissionError(errno.EPERM, "not yours")
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    gone = [
        f".tmp-step_00000009-{dead}@{host}",
        f".tmp-step_00000007-{os.getpid()}@{host}",  # this process, failed earlier
        f".tmp-step_00000005-{dead}",  # written before hosts were recorded
        f".trash-step_00000003-123-{dead}@{host}",
    ]
    kept = [
        f".tmp-step_00000008-{live.pid}@{host}",  # still being written
        f".tmp-step_00000006-{foreign}@{host}",
        f".tmp-step_00000004-{dead}@another-host.example",  # cannot check from here
        ".tmp-no-owner",
    ]
    try:
        for name in gone + kept:
            (root / name).mkdir()
            (root / name / "model.safetensors").write_bytes(b"half a file")
        save_step(config, model, optimizer, 10)
        with pytest.raises(subprocess.TimeoutExpired):  # asked whether it lives, not signalled
            live.wait(timeout=0.3)
    finally:
        live.kill()
        live.wait()
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted([*kept, "step_00000010"])


def test_a_prune_killed_half_way_leaves_no_checkpoint_and_its_trash_goes_next_time(
    fresh_run, monkeypatch
):
    config, model, optimizer = fresh_run
    import cpc.checkpoints.store as checkpoint

    save_step(config, model, optimizer, 1, keep_last=1)
    real_rmtree = checkpoint.shutil.rmtree

    def killed(path, *args, **kwargs):
        if Path(path).name.startswith(".trash-"):
            raise KeyboardInterrupt  # the kill arrives while the old one is deleted
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        save_step(config, model, optimizer, 2, keep_last=1)
    monkeypatch.undo()
    root = checkpoint_dir(config.run.out_dir)
    assert names(config) == ["step_00000002"]
    assert any(p.name.startswith(".trash-") for p in root.iterdir())
    save_step(config, model, optimizer, 3, keep_last=1)
    assert sorted(p.name for p in root.iterdir()) == ["step_00000003"]


def test_a_save_succeeds_when_old_files_cannot_be_deleted_yet(fresh_run, monkeypatch):
    # NFS keeps a file that another process holds open (".nfsXXXX", EBUSY): pruning and
    # the removal of leftovers must not fail the save; a later save finishes the job.
    config, model, optimizer = fresh_run
    save_step(config, model, optimizer, 1, keep_last=1)

    def busy(*args, **kwargs):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "unlink", busy)
    save_step(config, model, optimizer, 2, keep_last=1)  # step 1's trash stays
    save_step(config, model, optimizer, 3, keep_last=1)  # and cannot be removed now either
    monkeypatch.undo()
    root = checkpoint_dir(config.run.out_dir)
    assert names(config) == ["step_00000003"]
    assert sum(p.name.startswith(".trash-") for p in root.iterdir()) == 2
    save_step(config, model, optimizer, 4, keep_last=1)
    assert sorted(p.name for p in root.iterdir()) == ["step_00000004"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_every_file_and_the_folder_are_flushed_to_disk(fresh_run, monkeypatch):
    config, model, optimizer = fresh_run
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = save_step(config, model, optimizer, 1)
    assert {Path(p).name for p in synced} >= {"model.safetensors", "train_state.pt", "meta.json"}
    assert str(path.parent) in synced  # the rename itself


def test_the_newest_checkpoint_that_verifies_is_loaded_and_damaged_ones_set_aside(
    fresh_run, tmp_path
):
    config, model, optimizer = fresh_run
    scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    save_step(config, model, optimizer, 1, keep_last=0, scaler=scaler)
    model(torch.randn(2, 1024)).loss.backward()
    optimizer.step()  # step 2 differs from step 1 in weights and optimiser state
    good = save_step(config, model, optimizer, 2, keep_last=0, scaler=scaler)
    damaged = save_step(config, model, optimizer, 3, keep_last=0, scaler=scaler)
    flip_a_weight(damaged)

    fresh = build_model(config.model)
    fresh_opt = build_optimizer(fresh, config.optim)
    fresh_scaler = torch.amp.GradScaler("cpu")
    ckpt, skipped = load_newest_valid(
        config.run.out_dir, model=fresh, optimizer=fresh_opt, scaler=fresh_scaler
    )
    assert ckpt is not None and ckpt.path == good and ckpt.state.step == 2
    assert [p for p, _ in skipped] == [damaged] and "contents differ" in skipped[0][1]
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(optimizer.state[p]["exp_avg"], fresh_opt.state[q]["exp_avg"])
    assert fresh_scaler.get_scale() == 512.0

    aside = set_aside(damaged)
    assert aside == damaged.with_name("step_00000003.corrupt") and not damaged.exists()
    assert (aside / "meta.json").is_file() and names(config) == ["step_00000001", "step_00000002"]
    again = save_step(config, model, optimizer, 3, keep_last=0, data_info={"kind": "second"})
    assert set_aside(again) == aside and read_meta(aside / "model.safetensors")["data"] == {
        "kind": "second"
    }  # the newer damaged copy replaces the older one

    flip_a_weight(good)
    flip_a_weight(good.with_name("step_00000001"))
    with pytest.raises(CheckpointError, match="verifies") as err:
        load_newest_valid(config.run.out_dir)
    assert "step_00000002: " in str(err.value) and "; step_00000001: " in str(err.value)
    assert load_newest_valid(tmp_path / "no run here") == (None, [])


def test_a_checkpoint_for_another_model_size_is_refused_naming_the_file(fresh_run):
    config, model, optimizer = fresh_run
    path = save_step(config, model, optimizer, 1)
    other = build_model(tiny_config(config.data.train, path, "model.channels=8").model)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: "):
        load_checkpoint(path, model=other)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_generator_round_trips_and_a_cpu_state_restores_on_a_gpu():
    torch.cuda.manual_seed(3)
    torch.rand(1, device="cuda")
    state = rng_state()
    first = torch.rand(4, device="cuda")
    torch.cuda.manual_seed(4)
    set_rng_state(state)
    assert torch.equal(first, torch.rand(4, device="cuda"))
    set_rng_state({k: v for k, v in state.items() if k != "cuda"})  # saved without CUDA
