"""The single training loop shared by the in-process path and Ray Train workers."""

from negrec.training.loop import (
    EpochReport,
    LoopHooks,
    TrainResult,
    train,
    validate,
)

__all__ = [
    "EpochReport",
    "LoopHooks",
    "TrainResult",
    "train",
    "validate",
]
