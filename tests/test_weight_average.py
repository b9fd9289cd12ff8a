"""The weight average (train.weight_average_decay): its arithmetic, its swap, and that
the loop validates and keeps the average rather than the live weights."""

from __future__ import annotations

import pytest
import torch

from negrec.checkpoint import TrainState
from negrec.config import build_config
from negrec.model import ActionAwareGSASRec
from negrec.training import EpochReport, LoopHooks, train
from negrec.training.weight_average import WeightAverage
from tests.patterns import pattern_sequences, split_last_positive, train_batches


def test_the_average_follows_the_warmed_up_decay_of_a_float64_reference() -> None:
    layer = torch.nn.Linear(3, 2)
    average = WeightAverage(layer, decay=0.8)
    reference = layer.weight.detach().double().clone()
    for n in range(12):
        with torch.no_grad():
            layer.weight.add_(torch.randn_like(layer.weight))
        average.update(layer)
        decay = min(0.8, (1 + n) / (10 + n))
        reference = decay * reference + (1 - decay) * layer.weight.detach().double()
    torch.testing.assert_close(average.state["weight"].double(), reference, rtol=1e-6, atol=1e-6)
    assert average.updates == 12


def test_swapped_in_restores_the_live_weights_even_when_the_block_raises() -> None:
    layer = torch.nn.Linear(3, 2)
    average = WeightAverage(layer, decay=0.5)
    average.state["weight"].zero_()
    live = layer.weight.detach().clone()
    with pytest.raises(RuntimeError), average.swapped_in(layer):
        assert torch.count_nonzero(layer.weight) == 0
        raise RuntimeError("validation failed")
    assert torch.equal(layer.weight, live)


class _Kept(LoopHooks):
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.seen: list[tuple[bool, dict, dict, dict]] = []

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        live = {k: v.clone() for k, v in self.model.state_dict().items()}
        best = {k: v.clone() for k, v in (state.best_model_state or {}).items()}
        averaged = {k: v.clone() for k, v in (state.averaged_state or {}).items()}
        self.seen.append((report.improved, live, best, averaged))


def test_the_loop_keeps_the_average_as_its_best_weights_and_trains_the_live_ones() -> None:
    items, actions = pattern_sequences(users=96, items=30, length=10, seed=0)
    train_items, train_actions, val = split_last_positive(items, actions)
    config = build_config(
        {
            "model": {"max_len": 12, "dim": 16, "blocks": 1, "dropout": 0.0},
            "objective": {"loss": "ce"},
            "train": {
                "batch_size": 32,
                "max_epochs": 3,
                "patience": 5,
                "lr": 3e-3,
                "weight_average_decay": 0.9,
            },
        }
    )
    torch.manual_seed(0)
    model = ActionAwareGSASRec(30, config.model)
    kept = _Kept(model)
    train(
        model,
        lambda epoch: train_batches(train_items, train_actions, 12, 32, seed=epoch),
        lambda: [val],
        config,
        hooks=kept,
    )
    improved = [entry for entry in kept.seen if entry[0]]
    assert improved, "validation never improved"
    for _, live, best, averaged in improved:
        for name, value in averaged.items():
            assert torch.equal(best[name], value), name
        assert not torch.equal(live["item_embedding.weight"], averaged["item_embedding.weight"])
