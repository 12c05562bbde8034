"""Full disks and read-only places, simulated without root tricks: one line naming the
path and the space, nothing half-written left, what was there before intact.

ENOSPC is raised by a writer after a number of bytes (a small tmpfs is not available to
tests); a real file size limit (RLIMIT_FSIZE, EFBIG) is tried on a real `cpc pretrain` in
tests/train/test_resume.py. Tests run as root, where chmod does not stop writes: the
read-only cases raise EROFS from the writer, and the chmod case is skipped as root.
"""

import errno
import os
from collections import namedtuple
from pathlib import Path

import pytest
import safetensors.torch
import torch

import cpc.checkpoints.outputs as outputs
import cpc.checkpoints.store as store
from cpc.checkpoints.outputs import atomic_file, output_folder
from cpc.checkpoints.store import list_checkpoints, load_checkpoint
from cpc.data.registry import build_model
from cpc.errors import OutputError, RunBusyError
from cpc.train.schedule import build_optimizer
from tests.train.conftest import save_step, tiny_config


def write_until_full(path: Path, data: bytes, room: int) -> None:
    """Write ``data`` to ``path`` until ``room`` bytes are used, then fail as a full disk."""
    with open(path, "wb") as f:
        f.write(data[:room])
    if len(data) > room:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def one_old_checkpoint(tmp_path):
    config = tiny_config(tmp_path / "data", tmp_path / "run")
    torch.manual_seed(0)
    model = build_model(config.model)
    optimizer = build_optimizer(model, config.optim)
    save_step(config, model, optimizer, 1)
    return config, model, optimizer


def assert_only_step_1(config):
    root = Path(config.run.out_dir) / "checkpoints"
    assert [p.name for p in root.iterdir()] == ["step_00000001"]  # no .tmp-, no step 2
    assert load_checkpoint(list_checkpoints(config.run.out_dir)[0]).state.step == 1


def test_a_checkpoint_that_cannot_fit_is_refused_before_writing(one_old_checkpoint, monkeypatch):
    config, model, optimizer = one_old_checkpoint
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 2000))
    with pytest.raises(OutputError) as err:
        save_step(config, model, optimizer, 2)
    message = str(err.value)
    assert message.startswith(f"{Path(config.run.out_dir) / 'checkpoints' / 'step_00000002'}: ")
    assert "No space left on device" in message and "2.0 kB free there" in message
    assert "about " in message and "needed" in message and "intact" in message
    assert "\n" not in message
    assert_only_step_1(config)


@pytest.mark.parametrize("which", ["weights", "train_state"])
def test_a_disk_filling_while_writing_leaves_no_temporary_folder(
    one_old_checkpoint, monkeypatch, which
):
    config, model, optimizer = one_old_checkpoint
    if which == "weights":  # safetensors: ENOSPC after 100 bytes of the file
        real = safetensors.torch.save
        monkeypatch.setattr(
            store.safetensors.torch,
            "save_file",
            lambda tensors, path: write_until_full(Path(path), real(tensors), 100),
        )
    else:  # torch's zip writer words it its own way (the message the issue quotes)
        real_save = torch.save

        def save(obj, path):
            real_save(obj, path)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576")

        monkeypatch.setattr(store.torch, "save", save)
    with pytest.raises(OutputError, match=r"step_00000002: not written \(") as err:
        save_step(config, model, optimizer, 2)
    assert "free there" in str(err.value)
    monkeypatch.undo()
    assert_only_step_1(config)
    save_step(config, model, optimizer, 2)  # space is back
    assert [p.name for p in list_checkpoints(config.run.out_dir)] == [
        "step_00000001",
        "step_00000002",
    ]


def test_a_read_only_checkpoint_folder_is_one_line(one_old_checkpoint, monkeypatch):
    config, model, optimizer = one_old_checkpoint

    def read_only(tensors, path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(store.safetensors.torch, "save_file", read_only)
    with pytest.raises(OutputError, match=r"step_00000002: cannot write there \(Read-only"):
        save_step(config, model, optimizer, 2)
    assert_only_step_1(config)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 500 folder anyway")
def test_a_chmod_read_only_checkpoint_folder_is_one_line(one_old_checkpoint):
    config, model, optimizer = one_old_checkpoint
    root = Path(config.run.out_dir) / "checkpoints"
    root.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            save_step(config, model, optimizer, 2)
    finally:
        root.chmod(0o700)
    assert_only_step_1(config)


# --- output folders ---------------------------------------------------------------


def test_a_failed_write_removes_what_it_created_and_keeps_what_was_there(tmp_path):
    out = tmp_path / "out"
    (out / "old").mkdir(parents=True)
    (out / "old" / "kept.npy").write_bytes(b"earlier run")
    with pytest.raises(OutputError) as err, output_folder(out, f"--out {out}"):
        (out / "new").mkdir()
        (out / "new" / "a.npy").write_bytes(b"x" * 3000)
        (out / "old" / "b.npy").write_bytes(b"x" * 1000)
        write_until_full(out / "c.npy", b"x" * 5000, 2000)
    message = str(err.value)
    assert message.startswith(f"{out}: not written (No space left on device); ")
    assert "free there" in message and "this run had written 6.0 kB when it failed" in message
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["old", "old/kept.npy"]


def test_a_failed_write_into_a_new_folder_leaves_no_folder(tmp_path):
    out = tmp_path / "a" / "new"
    with pytest.raises(KeyboardInterrupt), output_folder(out, f"--out {out}"):
        (out / "part.npy").write_bytes(b"x")
        raise KeyboardInterrupt  # Ctrl-C: the partial output goes too
    assert list(tmp_path.iterdir()) == []  # nor the parent it had to make


def test_a_read_only_output_folder_is_one_line(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"cannot write there \(Read-only file system\)"):
        with output_folder(out, f"--out {out}"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(out / "x.npy"))
    assert not out.exists()


def test_a_second_writer_of_a_folder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, f"--output {out}"):
        with pytest.raises(RunBusyError, match=rf"--output {out} is in use by pid {os.getpid()}"):
            with output_folder(out, f"--output {out}"):
                pass
    with output_folder(out, f"--output {out}"):  # free again
        pass


def test_an_atomic_file_is_whole_or_the_old_one(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    with pytest.raises(OutputError, match=r"result\.json: not written \(No space"):
        with atomic_file(path) as tmp:
            write_until_full(tmp, b"new contents", 3)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    with atomic_file(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
