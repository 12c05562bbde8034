"""The CUDA path, checked on a CPU: every builder, the loss, extraction, a trainer step.

Runs on :class:`tests.fake_cuda.FakeCuda` (CPU tensors that say ``cuda:0``; see that
module for what it catches and what it stubs). Each check compares the "cuda" result
with the same computation on the CPU, fails on a device mismatch or a tensor made on the
CPU inside the step, and holds the host syncs of a training step to the list below:
a new ``.item()`` in the hot loop fails here first.
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
from torch import Tensor

from benchmarks.gpu_check import CASES
from cpc.data.collate import pad_collate
from cpc.features.extract import extract_sequence
from cpc.train import steps
from cpc.train.loaders import make_loader
from cpc.train.metrics import RunLog
from tests.fake_cuda import CUDA, FakeCuda, OnCuda, backward

pytestmark = pytest.mark.usefixtures("one_thread")

BUILDERS = CASES  # the builders benchmarks/gpu_check.py runs on a real GPU

#: Host syncs of one training step (forward, loss, backward, clip, Adam, logging), by
#: where they happen. Each is one wait for the device per step (the redraw loop: one
#: per round that still finds a collision, usually one). Adding one fails the test.
STEP_SYNCS = {
    "cpc/losses/infonce.py": 2,  # the pool and the anchors (nonzero); plus redraw rounds
    "cpc/train/steps.py": 2,  # the finite-loss check (stop before backward), grad norm
}  # RunLog.add: none (it sums on the device; RunLog.step reads once per logged step)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)  # CUDA generators are stubbed by CPU ones


def _grads(model: torch.nn.Module) -> list[Tensor]:
    return [
        (p.grad.elem if isinstance(p.grad, OnCuda) else p.grad)
        for p in model.parameters()
        if p.grad is not None
    ]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builder_forward_and_backward_on_cuda(name):
    build, inputs = BUILDERS[name]
    torch.manual_seed(0)
    model = build()
    x, lengths = inputs()
    reference = copy.deepcopy(model)
    out = reference(x, lengths, generator=_gen())
    out.loss.backward()
    with FakeCuda() as fake:
        model.to("cuda")
        xc = x.to("cuda")
        lc = None if lengths is None else lengths.to("cuda")
        fake.records.clear()
        out_cuda = model(xc, lc, generator=_gen())
        assert out_cuda.loss.device == CUDA and out_cuda.z.device == CUDA
        backward(out_cuda.loss)
    assert fake.records.made_on_cpu == []
    assert all(p.device == CUDA for p in model.parameters())
    torch.testing.assert_close(out_cuda.loss.elem, out.loss.detach())
    grads, expected = _grads(model), _grads(reference)
    assert len(grads) == len(expected) > 0
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_training_step_on_cuda_and_its_host_syncs(monkeypatch, tmp_path):
    """micro_step + optimizer_step + RunLog.add: the trainer's hot loop, on "cuda"."""
    build, inputs = BUILDERS["audio waveform, GRU"]
    torch.manual_seed(0)
    model = build()
    x, lengths = inputs()
    batch = {"x": x, "lengths": lengths}
    reference = copy.deepcopy(model)
    monkeypatch.setattr(steps, "negatives_generator", lambda *args: _gen())
    cpu = torch.device("cpu")
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-3, fused=True)
    ref = steps.micro_step(
        reference, batch, device=cpu, precision="fp32", generator=_gen(), scale=1.0
    )
    steps.optimizer_step(reference, ref_opt, grad_clip=1.0)
    monkeypatch.setattr(Tensor, "backward", lambda self, *a, **k: backward(self))
    log = RunLog(
        tmp_path,
        tensorboard=False,
        enabled=False,
        resume_step=0,
        total_steps=1,
        progress=False,
        seconds_per_sample=None,
        device=CUDA,
    )
    with FakeCuda() as fake:
        model.to("cuda")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        fake.records.clear()
        out = steps.micro_step(
            model, batch, device=CUDA, precision="fp32", generator=_gen(), scale=1.0
        )
        log.add(out.loss, out.accuracy, out.items, out.samples)
        steps.optimizer_step(model, optimizer, grad_clip=1.0)
    torch.testing.assert_close(out.loss.elem, ref.loss)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.elem, q.detach(), rtol=1e-5, atol=1e-6)
    records = fake.records
    where = Counter(e.where.split(":")[0] for e in records.syncs)
    redraws = sum("(sample_candidates)" in e.where for e in records.syncs)
    assert 1 <= redraws <= 11  # one per redraw round (tiny pool here: several rounds)
    where["cpc/losses/infonce.py"] -= redraws
    assert dict(where) == STEP_SYNCS, [str(e) for e in records.syncs]
    assert records.made_on_cpu == []
    assert len(records.uploads) == 2  # the batch's input and lengths
    assert all(e.detail == "non_blocking=True" for e in records.uploads)
    assert [e.op for e in records.stubbed] == ["gru"]


def test_extraction_on_cuda():
    build, _ = BUILDERS["audio waveform, GRU"]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(3000)
    expected = extract_sequence(model, x, chunk_steps=20)
    with FakeCuda() as fake:
        model.to("cuda")
        xc = x.to("cuda")
        fake.records.clear()
        got = extract_sequence(model, xc, chunk_steps=20)
        assert got.device == CUDA
    torch.testing.assert_close(got.elem, expected, rtol=1e-5, atol=1e-6)
    assert fake.records.made_on_cpu == []
    assert fake.records.syncs == []  # nothing waits for the device until the caller reads


def test_device_mismatch_and_cpu_tensors_are_caught():
    """The checks themselves: a CPU tensor in a cuda op raises; CPU factories are recorded."""
    with FakeCuda() as fake:
        a = torch.ones(3, device="cuda")
        with pytest.raises(RuntimeError, match="device mismatch"):
            a + torch.ones(3)
        a + torch.tensor(2.0)  # a 0-dim CPU tensor is a scalar, as on CUDA
        torch.zeros(4)
        float(a.sum())
    assert [e.op for e in fake.records.made_on_cpu] == ["ones", "zeros"]
    assert [e.op for e in fake.records.syncs] == ["_local_scalar_dense"]


def test_loader_pins_memory_for_cuda():
    """The trainer's loader pins batches for a GPU, and to_device copies without waiting."""
    data = [{"x": torch.randn(50), "length": 50} for _ in range(4)]
    loader = make_loader(data, [[0, 1], [2, 3]], pad_collate, seed=0, pin_memory=True)  # type: ignore[arg-type]
    assert loader.pin_memory
    with FakeCuda() as fake:
        x, lengths = steps.to_device(next(iter(loader)), CUDA)
    assert x.device == CUDA and lengths is not None and lengths.device == CUDA
    assert [e.detail for e in fake.records.uploads] == ["non_blocking=True"] * 2
