"""The training workloads: a shipped preset (``configs/*.yaml``), a batch and one step.

Models are built from the same YAML files as ``cpc pretrain``, so the benchmark follows
the presets. A workload is rebuilt from its name and batch shape alone, so the peak
memory can be measured again in a fresh process (:mod:`benchmarks.memory`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from benchmarks.common import ROOT
from cpc.config import Config, load_config
from cpc.data.registry import build_model
from cpc.models.cpc import CPCModel
from cpc.train.schedule import fused_available
from cpc.train.steps import autocast


@dataclass(frozen=True)
class Workload:
    """One preset at one batch shape.

    Attributes:
        name: key in :func:`workloads`.
        config: the preset's YAML file, relative to the repository.
        description: what it is, for the report.
        batch: examples per step.
        window: samples per example (pixels per side for images).

    """

    name: str
    config: str
    description: str
    batch: int
    window: int

    def load(self) -> Config:
        return load_config(ROOT / self.config)

    def build(self) -> CPCModel:
        return build_model(self.load().model)

    def inputs(self, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """A random batch in the preset's input layout, every example at full length."""
        model = self.load().model
        gen = torch.Generator().manual_seed(0)
        b, n = self.batch, self.window
        if model.modality == "image":
            channels = model.to_dict()["in_channels"]
            return torch.randn(b, channels, n, n, generator=gen).to(device), None
        lengths = torch.full((b,), n, device=device)
        if model.modality == "signal":
            channels = model.to_dict()["in_channels"]
            return torch.randn(b, n, channels, generator=gen).to(device), lengths
        return torch.randn(b, n, generator=gen).to(device), lengths

    def with_shape(self, batch: int | None = None, window: int | None = None) -> Workload:
        return replace(self, batch=batch or self.batch, window=window or self.window)


def _preset(name: str, config: str, description: str, batch: int | None = None) -> Workload:
    loaded = load_config(ROOT / config)
    data = loaded.data.to_dict()  # flat: common keys and the modality's own
    size = data["image_size"] if loaded.model.modality == "image" else data["window"]
    return Workload(name, config, description, batch or data["batch_size"], size)


def workloads(device: torch.device) -> dict[str, Workload]:
    """The benchmarked presets at their configured batch shapes.

    One exception: the CPC v2 image grid runs at batch 2 on a CPU (its preset's 16 would
    take about half a minute per step there); on a GPU it runs at the preset's batch.
    """
    cpu = device.type == "cpu"
    items = [
        _preset(
            "paper",
            "configs/speech_paper.yaml",
            "speech, CPC paper: 512 channels, GRU 256, 12 offsets, 128 negatives",
        ),
        _preset(
            "small",
            "configs/speech_small_cpu.yaml",
            "speech, small CPU preset: 128 channels, batch norm, GRU 128, 64 negatives",
        ),
        _preset(
            "signal",
            "configs/signature_pen.yaml",
            "pen signals: 6 channels, 128 wide, GRU 128, 8 offsets, 64 negatives",
        ),
        _preset(
            "image",
            "configs/image_grid.yaml",
            "image grid, CPC v2: 7x7 grid of 64-px patches on 256 px, full softmax"
            + (" (batch 2 on CPU)" if cpu else ""),
            batch=2 if cpu else None,
        ),
        _preset(
            "image_small",
            "configs/image_fashion_mnist.yaml",
            "image grid, CPU preset: 6x6 grid of 8-px patches on 28 px, full softmax",
        ),
    ]
    return {w.name: w for w in items}


def train_step(
    model: CPCModel,
    inputs: tuple[Tensor, Tensor | None],
    lr: float = 2e-4,
    precision: str = "fp32",
) -> Callable[[], float]:
    """One training step (forward, backward, Adam) as a closure returning the loss.

    Adam is fused where torch has the kernel, as the trainer's AdamW
    (:func:`cpc.train.schedule.build_optimizer`). ``precision`` as ``run.precision``
    (resolved): autocast around the forward only, as the trainer.
    """
    params = list(model.parameters())
    optimiser = torch.optim.Adam(params, lr=lr, fused=fused_available(params) or None)
    x, lengths = inputs

    def step() -> float:
        optimiser.zero_grad(set_to_none=True)
        with autocast(x.device, precision):
            out = model(x, lengths)
        out.loss.float().backward()
        optimiser.step()
        return float(out.loss.detach())

    return step
