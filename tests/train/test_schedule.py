import itertools
import math

import pytest
import torch
from torch import nn

from cpc.config import OptimConfig
from cpc.train.schedule import build_optimizer, lr_at, param_groups


def test_warmup_is_linear_up_to_the_peak():
    cfg = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(4, cfg) == pytest.approx(5e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)  # cosine starts at the peak


def test_cosine_decays_monotonically_to_min_lr():
    cfg = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    lrs = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-5) / 2)  # half way
    assert lr_at(110, cfg) == pytest.approx(1e-5)
    assert lr_at(10_000, cfg) == pytest.approx(1e-5)
    expected = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 0.25))
    assert lr_at(35, cfg) == pytest.approx(expected)


def test_no_warmup_starts_at_peak_and_negative_step_is_an_error():
    cfg = OptimConfig(lr=2e-4, min_lr=0.0, warmup_steps=0, max_steps=10)
    assert lr_at(0, cfg) == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="step"):
        lr_at(-1, cfg)


def test_weight_decay_only_on_matrices_and_kernels():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.LayerNorm(4), nn.Linear(4, 2), nn.GRU(2, 3))
    model[1].weight.requires_grad_(False)  # frozen: left out
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    assert all(p.ndim < 2 for p in no_decay["params"])
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(ids) == sorted(trainable)
    assert id(model[1].weight) not in ids
    assert id(model[3].weight_ih_l0) in [id(p) for p in decay["params"]]
    assert id(model[3].bias_ih_l0) in [id(p) for p in no_decay["params"]]

    opt = build_optimizer(model, OptimConfig(weight_decay=0.05, betas=[0.8, 0.9]))
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)
