"""The causal Transformer prediction head: causality by gradients, shapes, selection."""

import pytest
import torch

from cpc.config import ModelConfig
from cpc.data.recipes.audio import AudioModel
from cpc.data.registry import build_model
from cpc.models.builders import make_predictor
from cpc.models.transformer_head import TransformerHead


@pytest.mark.parametrize("step", [0, 4, 7])
def test_head_is_causal_by_gradients(step):
    torch.manual_seed(0)
    b, s, p, h, d, k = 2, 9, 2, 8, 6, 3
    head = TransformerHead(h, d, k, heads=2).double()
    torch.nn.init.normal_(head.predictor.first.weight)  # the maps start at zero
    c = torch.randn(b, s, p, h, dtype=torch.float64, requires_grad=True)
    guesses = head(c)
    assert guesses.shape == (b, s, p, k, d)
    guesses[:, step].sum().backward()
    assert c.grad[:, step + 1 :].abs().max() == 0, f"guess at {step} sees the future"
    assert c.grad[:, step].abs().max() > 0
    if step > 0:  # attention reaches back: every earlier step contributes
        assert (c.grad[:, :step].abs().sum((0, 2, 3)) > 0).all()


def test_head_positions_do_not_mix():
    torch.manual_seed(0)
    head = TransformerHead(8, 6, 2, heads=2).double()
    torch.nn.init.normal_(head.predictor.first.weight)
    c = torch.randn(1, 5, 3, 8, dtype=torch.float64, requires_grad=True)
    head(c)[:, :, 1].sum().backward()
    assert c.grad[:, :, 0].abs().max() == 0 and c.grad[:, :, 2].abs().max() == 0


def test_selected_by_config_and_builder():
    encoder = AudioModel(channels=16)
    config = ModelConfig(
        modality_fields=encoder, context_dim=16, num_offsets=3, predictor="transformer"
    )
    model = build_model(config)
    assert isinstance(model.predictor, TransformerHead)
    assert model.predictor.num_offsets == 3
    with pytest.raises(ValueError, match="'rnn'"):
        make_predictor("rnn", 8, 8, 2)
