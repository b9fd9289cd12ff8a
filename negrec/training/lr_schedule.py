"""The learning rate of each optimiser step: warm-up, then constant or decaying.

Why a function of the step and not a torch scheduler object: the loop already counts
optimiser steps in ``TrainState.step``, which a checkpoint keeps, so a resumed run (a
lost worker, a restarted job) takes exactly the rates of an uninterrupted one without a
scheduler state of its own to save and restore; and the rate is the same on every DDP
rank because every rank counts the same steps.

Why decay at all: with a constant rate, MovieLens-1M's validation NDCG@10 is still rising
at the 5,000-step budget (docs/results.md); decaying the rate to a floor over a stated
number of steps anneals the weights into the minimum the run has reached.
"""

from __future__ import annotations

import math

import torch

from negrec.config import TrainConfig


def lr_at(step: int, config: TrainConfig) -> float:
    """The rate of optimiser step ``step`` (0-based): a linear warm-up over
    ``warmup_steps``, then ``lr`` (constant), or a cosine or linear decay from ``lr`` to
    ``lr * min_lr_ratio`` that ends at step ``decay_steps`` and stays there."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant" or config.decay_steps is None:
        return config.lr
    span = max(1, config.decay_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    if config.lr_schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * shape


def set_lr(optimizer: torch.optim.Optimizer, step: int, config: TrainConfig) -> None:
    """Give every parameter group the rate of step ``step``."""
    rate = lr_at(step, config)
    for group in optimizer.param_groups:
        group["lr"] = rate
