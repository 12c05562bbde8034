"""Two CPU processes under torchrun: identical weights, equal to one process."""

import json

import safetensors.torch
import torch

from cpc.train import train

from .conftest import checkpoint_of, run_python, tiny_config, write_wavs

SCRIPT = """
import json, os, sys
import torch
torch.set_num_threads(1)
import safetensors.torch
import torch.distributed as dist
from cpc.config import Config
from cpc.train import train
from cpc.checkpoints.store import state_dict_cpu

config = Config.from_dict(json.load(open(sys.argv[1])))
held = {}
train(config, on_step=lambda step, model: held.update(model=model))
assert not dist.is_initialized()  # train() joined torchrun's group and left it
out, rank = config.run.out_dir, int(os.environ["RANK"])
safetensors.torch.save_file(state_dict_cpu(held["model"]), f"{out}/rank{rank}.safetensors")
"""


def config_for(data, out, *extra):
    return tiny_config(
        data, out, "data.batch_size=2", "optim.max_steps=4", "model.negatives=sequence",
        "run.ckpt_every=2", *extra,
    )  # fmt: skip


def test_two_processes_match_each_other_and_one_process(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=8)  # every clip longer than the window
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    # Sequence negatives (the same draws whatever the other rank holds), and batch
    # negatives gathered across processes (weights must still agree on both ranks).
    # One launch per run: re-creating a process group inside a process is unreliable.
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    gathered = ["model.negatives=batch", "model.gather_distributed=true"]
    for name, extra in [("ddp", []), ("ddp_batch", gathered)]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config_for(data, tmp_path / name, *extra).to_dict()))
        proc = run_python([*launcher, str(script), str(path)], timeout=180)
        assert proc.returncode == 0, proc.stderr[-4000:]

    # One process accumulating the same two micro-batches per step: the same global
    # batch, the same per-micro-batch negatives, the same mean of micro-batch losses.
    reference = train(config_for(data, tmp_path / "one", "optim.accumulate=2"))
    assert reference.step == 4
    expected = safetensors.torch.load_file(str(checkpoint_of(reference) / "model.safetensors"))

    for name in ("ddp", "ddp_batch"):
        out = tmp_path / name
        ranks = [safetensors.torch.load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
        for key, value in ranks[0].items():
            assert torch.equal(value, ranks[1][key]), (name, key)
        last = out / "checkpoints" / "step_00000004"
        saved = safetensors.torch.load_file(str(last / "model.safetensors"))
        assert all(torch.equal(saved[k], v) for k, v in ranks[0].items())
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2, 3, 4]  # rank 0 alone logs
        meta = json.loads((out / "checkpoints/step_00000004/meta.json").read_text())
        assert meta["config"]["data"]["batch_size"] == 2
    ddp = safetensors.torch.load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    for key, value in expected.items():
        torch.testing.assert_close(ddp[key], value, atol=1e-5, rtol=1e-5)
    initial = train(config_for(data, tmp_path / "init", "optim.max_steps=1", "optim.lr=0.0"))
    start = safetensors.torch.load_file(str(checkpoint_of(initial) / "model.safetensors"))
    assert any(not torch.equal(start[k], v) for k, v in ddp.items())  # it did train


STOP_SCRIPT = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
import cpc.train.trainer as trainer
from cpc.config import Config
from cpc.train import train

config = Config.from_dict(json.load(open(sys.argv[1])))
rank, at = int(os.environ["RANK"]), int(sys.argv[2])
real = trainer.micro_step
def micro(*args, **kwargs):
    if rank == 1 and kwargs["step"] == at:  # SIGTERM reaches one process only
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
trainer.micro_step = micro
result = train(config, stop_signals=True)
with open(f"{config.run.out_dir}/rank{rank}.json", "w") as f:
    json.dump({"step": result.step, "stopped_by": result.stopped_by,
               "checkpoint": str(result.checkpoint)}, f)
"""


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step_and_resumes_bitwise(
    tmp_path,
):
    data = write_wavs(tmp_path / "wavs", count=8)
    script = tmp_path / "stop.py"
    script.write_text(STOP_SCRIPT)
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]

    def launch(out, at):
        path = out.with_suffix(".json")
        config = config_for(data, out, "optim.max_steps=5", "run.ckpt_every=4")
        path.write_text(json.dumps(config.to_dict()))
        proc = run_python([*launcher, str(script), str(path), str(at)], timeout=180)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]

    out = tmp_path / "stopped"
    ranks = launch(out, 2)
    assert [r["step"] for r in ranks] == [2, 2]  # rank 0 never saw the signal
    assert [r["stopped_by"] for r in ranks] == [15, 15]
    assert [r["checkpoint"] for r in ranks] == [str(out / "checkpoints" / "step_00000002")] * 2
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000002"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]

    assert [r["stopped_by"] for r in launch(out, 0)] == [None, None]  # resumed to the end
    assert [r["step"] for r in launch(tmp_path / "whole", 0)] == [5, 5]  # never stopped
    got, want = (
        safetensors.torch.load_file(str(run / "checkpoints/step_00000005/model.safetensors"))
        for run in (out, tmp_path / "whole")
    )
    for key, value in want.items():
        assert torch.equal(got[key], value), key
