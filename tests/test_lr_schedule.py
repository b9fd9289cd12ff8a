"""The learning-rate schedule: its shape, its configuration errors, and that the loop
steps with it (the resumed-run equality with a schedule is in tests/test_loop.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from negrec.checkpoint import TrainState
from negrec.config import ConfigError, build_config
from negrec.model import ActionAwareGSASRec
from negrec.training import EpochReport, LoopHooks, train
from negrec.training.lr_schedule import lr_at
from tests.patterns import pattern_sequences, split_last_positive, train_batches

LR = 2e-3


def _train_config(**values):
    return build_config({"train": {"lr": LR, **values}}).train


def test_constant_is_lr_at_every_step_after_warm_up() -> None:
    plain = _train_config()
    assert {lr_at(step, plain) for step in (0, 1, 10**6)} == {LR}
    warm = _train_config(warmup_steps=4)
    assert [lr_at(step, warm) for step in range(6)] == pytest.approx(
        [LR / 4, LR / 2, 3 * LR / 4, LR, LR, LR]
    )


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_decay_runs_from_lr_to_its_floor_and_stays_there(kind: str) -> None:
    config = _train_config(lr_schedule=kind, warmup_steps=10, decay_steps=110, min_lr_ratio=0.1)
    floor = 0.1 * LR
    assert lr_at(9, config) == pytest.approx(LR)  # the warm-up's last step
    assert lr_at(10, config) == pytest.approx(LR)  # the decay's first
    assert lr_at(60, config) == pytest.approx((LR + floor) / 2)  # half-way, both shapes
    quarter = 0.5 * (1 + math.cos(math.pi / 4)) if kind == "cosine" else 0.75
    assert lr_at(35, config) == pytest.approx(floor + (LR - floor) * quarter)
    assert lr_at(110, config) == pytest.approx(floor)
    assert lr_at(10**6, config) == pytest.approx(floor)
    rates = [lr_at(step, config) for step in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(rates))  # never rises


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"lr_schedule": "cosine"}, "needs decay_steps"),
        ({"lr_schedule": "linear", "warmup_steps": 50, "decay_steps": 50}, "above warmup_steps"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
    ],
)
def test_a_schedule_without_an_end_is_refused_with_the_key_named(values, named) -> None:
    with pytest.raises(ConfigError, match=named):
        _train_config(**values)


def test_the_loop_takes_every_step_at_the_scheduled_rate() -> None:
    """The rate the optimiser holds after each epoch is the scheduled rate of that
    epoch's last step, and the run's steps cross the whole decay."""
    config = build_config(
        {
            "model": {"max_len": 16, "dim": 16, "blocks": 1, "heads": 1},
            "objective": {"negatives": 8, "loss": "softmax"},
            "train": {
                "batch_size": 32,
                "lr": LR,
                "max_epochs": 4,
                "patience": 4,
                "lr_schedule": "cosine",
                "warmup_steps": 2,
                "decay_steps": 12,
                "min_lr_ratio": 0.05,
            },
        }
    )
    items, actions = pattern_sequences(users=96, items=30, length=12, seed=0)
    train_items, train_actions, val = split_last_positive(items, actions)
    seen: list[tuple[int, float]] = []

    class Rates(LoopHooks):
        def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
            assert state.optimizer_state is not None
            seen.append((state.step, state.optimizer_state["param_groups"][0]["lr"]))

    torch.manual_seed(0)
    train(
        ActionAwareGSASRec(30, config.model),
        lambda epoch: train_batches(train_items, train_actions, 16, 32, seed=epoch),
        lambda: [val],
        config,
        hooks=Rates(),
    )
    assert [step for step, _ in seen] == [3, 6, 9, 12]  # 96 rows, 32 a batch
    for step, rate in seen:
        assert rate == pytest.approx(lr_at(step - 1, config.train))
    assert seen[-1][1] == pytest.approx(lr_at(11, config.train)) and seen[-1][1] < 0.1 * LR
