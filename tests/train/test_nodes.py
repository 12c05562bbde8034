"""Two nodes simulated on one machine: two torchrun agents on 127.0.0.1, one rank each.

The agents meet through a c10d rendezvous on a free local port (Gloo, CPU), as two
machines of a cluster would; each runs the real ``cpc pretrain`` (through
:data:`WORKER`, which can make one rank fail on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from cpc.train import train

from .conftest import checkpoint_of, subprocess_env, tiny_config, write_wavs

#: ``python WORKER FAULT CONFIG``: ``cpc pretrain CONFIG`` in which rank R, in its first
#: attempt only (an elastic restart runs clean), fails at step S as FAULT says:
#: ``kill:R:S`` (SIGKILL, as the OOM killer does) or ``raise:R:S`` (an exception); ``-``
#: for none.
WORKER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import cpc.train.trainer as trainer
from cpc.cli import main

fault, config = sys.argv[1], sys.argv[2]
if fault != "-" and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
    kind, who, at = fault.split(":")
    real = trainer.micro_step
    def micro(*args, **kwargs):
        if int(os.environ["RANK"]) == int(who) and kwargs["step"] == int(at):
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("a bug in rank " + who)
        return real(*args, **kwargs)
    trainer.micro_step = micro
sys.exit(main(["pretrain", config]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process (Linux's ``/proc``), children first."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        children = [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []
    return [p for child in children for p in (child, *descendants(child))]


def launch_nodes(
    tmp_path: Path,
    configs: list[Path],
    fault: str = "-",
    restarts: int = 0,
    timeout: float = 120,
) -> list[subprocess.CompletedProcess[str]]:
    """Start one torchrun agent per config (node), wait for both, return their outputs."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    port, run_id = free_port(), f"cpc-{os.getpid()}-{time.monotonic_ns()}"
    env = subprocess_env()
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"  # see docs/training.md (restarts)
    agents = []
    for config in configs:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
            "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_id,
            "--max-restarts", str(restarts), "--monitor-interval", "0.5",
            str(worker), fault, str(config),
        ]  # fmt: skip
        agents.append(
            subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + timeout
    try:
        for agent in agents:
            agent.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for agent in agents:  # torchrun puts its workers in sessions of their own
            for pid in [*descendants(agent.pid), agent.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        errors = "\n".join(
            f"--- node {i}:\n{a.communicate()[1][-3000:]}" for i, a in enumerate(agents)
        )
        raise AssertionError(f"the nodes hung past {timeout}s\n{errors}") from None
    results = []
    for agent in agents:
        out, err = agent.communicate()
        results.append(subprocess.CompletedProcess(agent.args, agent.returncode, out, err))
    return results


def config_for(data, out, *extra):
    return tiny_config(
        data, out, "data.batch_size=2", "optim.max_steps=4", "model.negatives=sequence",
        "run.ckpt_every=2", *extra,
    )  # fmt: skip


def write_config(path: Path, config) -> Path:
    path.write_text(json.dumps(config.to_dict()))
    return path


def final_weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    name = out / "checkpoints" / f"step_{step:08d}" / "model.safetensors"
    return safetensors.torch.load_file(str(name))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def shards_of(folder: Path, root: Path) -> str:
    """Local WebDataset shards (indexed: the distributed sampler splits them)."""
    wds = pytest.importorskip("webdataset")
    files = sorted(folder.rglob("*.wav"))
    root.mkdir()
    for s in range(2):
        with wds.TarWriter(str(root / f"shard-{s}.tar")) as sink:
            for f in files[s::2]:
                sink.write({"__key__": f.stem, "wav": f.read_bytes()})
    return f"{root}/shard-{{0..1}}.tar"


@pytest.mark.parametrize("source", ["folder", "shards"])
def test_two_nodes_give_the_weights_of_one_process_accumulating(tmp_path, source):
    wavs = write_wavs(tmp_path / "wavs", count=8)
    data = str(wavs) if source == "folder" else shards_of(wavs, tmp_path / "shards")
    config = write_config(tmp_path / "two.json", config_for(data, tmp_path / "two"))
    for node in launch_nodes(tmp_path, [config, config]):
        assert node.returncode == 0, node.stderr[-3000:]
    reference = train(config_for(data, tmp_path / "one", "optim.accumulate=2"))
    assert checkpoint_of(reference).name == "step_00000004"
    two, one = final_weights(tmp_path / "two", 4), final_weights(tmp_path / "one", 4)
    gap = max_difference(two, one)
    print(f"{source}: max |two nodes - one process accumulating| = {gap:.3g}")
    assert gap < 1e-5
    initial = train(config_for(data, tmp_path / "init", "optim.max_steps=1", "optim.lr=0.0"))
    assert max_difference(two, final_weights(initial.checkpoint.parents[1], 1)) > 1e-3


def test_a_rank_killed_stops_the_other_node_with_one_line(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=8)
    config = write_config(tmp_path / "c.json", config_for(data, tmp_path / "run"))
    started = time.monotonic()
    nodes = launch_nodes(tmp_path, [config, config], fault="kill:1:3")
    assert time.monotonic() - started < 90  # not the 30-minute collective timeout
    assert all(node.returncode != 0 for node in nodes)
    said = [line for n in nodes for line in n.stderr.splitlines() if "error:" in line]
    print("\n".join(said))
    assert len(said) == 1, said  # the survivor, once; the killed rank says nothing
    assert said[0].startswith("cpc pretrain: error: rank 0 of 2 on ")
    assert "died or became unreachable" in said[0]
    assert str(tmp_path / "run" / "checkpoints" / "step_00000002") in said[0]
    assert not any("Traceback" in line for n in nodes for line in n.stderr.splitlines()
                   if line.startswith("[rank"))  # fmt: skip


def test_an_elastic_restart_resumes_from_the_last_checkpoint(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=8)
    out = tmp_path / "run"
    config = write_config(tmp_path / "c.json", config_for(data, out, "optim.max_steps=5"))
    nodes = launch_nodes(tmp_path, [config, config], fault="kill:1:3", restarts=1)
    for node in nodes:
        assert node.returncode == 0, node.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == str(out / "checkpoints" / "step_00000002")
    rows = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4, 5]  # step 3 (cut by the kill) logged once, after the restart
    assert not any("resuming with changed" in n.stderr for n in nodes)
    reference = train(config_for(data, tmp_path / "one", "optim.max_steps=5", "optim.accumulate=2"))
    gap = max_difference(final_weights(out, 5), final_weights(tmp_path / "one", 5))
    print(f"restarted: max |two nodes - one process accumulating| = {gap:.3g}")
    assert reference.step == 5 and gap < 1e-5


def test_an_out_dir_that_the_nodes_do_not_share_is_refused_at_the_start(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=8)
    configs = [
        write_config(tmp_path / f"c{n}.json", config_for(data, tmp_path / f"node{n}"))
        for n in (0, 1)
    ]  # the same path on two machines with local disks: two different folders
    nodes = launch_nodes(tmp_path, configs)
    for node in nodes:
        assert node.returncode == 1, node.stderr[-3000:]  # torchrun's, for a worker's 2
        said = [line for line in node.stderr.splitlines() if "error:" in line]
        assert len(said) == 1 and "is not one folder shared by every node" in said[0], said
    assert not any((tmp_path / f"node{n}" / "checkpoints").exists() for n in (0, 1))


@pytest.mark.parametrize("count", [3, 1])
def test_streamed_shards_split_unequally_across_nodes_do_not_hang(tmp_path, count):
    """3 shards: rank 0 streams 2, rank 1 one (fewer batches an epoch), and both train
    on through their epochs; 1 shard: rank 1 has none, says so, and both stop.
    """
    wds = pytest.importorskip("webdataset")
    files = sorted(write_wavs(tmp_path / "wavs", count=9).rglob("*.wav"))
    for s in range(count):
        with wds.TarWriter(str(tmp_path / f"shard-{s}.tar")) as sink:
            for f in files[s::count]:
                sink.write({"__key__": f.stem, "wav": f.read_bytes()})
    pattern = f"file://{tmp_path}/shard-{{0..{count - 1}}}.tar"
    out = tmp_path / "run"
    config = write_config(tmp_path / "c.json", config_for(pattern, out, "optim.max_steps=6"))
    nodes = launch_nodes(tmp_path, [config, config])
    if count == 3:
        for node in nodes:
            assert node.returncode == 0, node.stderr[-3000:]
        assert json.loads((out / "summary.json").read_text())["step"] == 6
        return
    said = [line for n in nodes for line in n.stderr.splitlines() if "error:" in line]
    print("\n".join(said))
    assert len(said) == 2, said  # the empty rank says why, the other that it stopped
    assert any("rank 1: a whole epoch of its data gave fewer than" in line for line in said)
