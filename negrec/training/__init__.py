"""The single training loop shared by the in-process path and Ray Train workers."""

from negrec.training.loop import (
    EpochReport,
    LoopHooks,
    PrintHooks,
    TrainResult,
    TrainState,
    train,
    validate,
)

__all__ = [
    "EpochReport",
    "LoopHooks",
    "PrintHooks",
    "TrainResult",
    "TrainState",
    "train",
    "validate",
]
