"""Training objectives: BCE, gBCE, sampled softmax, not-to-recommend, negative sampling."""

from negrec.objectives.losses import (
    bce_loss,
    gbce_beta,
    gbce_loss,
    not_to_recommend_loss,
    sampled_softmax_loss,
)
from negrec.objectives.sampling import uniform_negatives
from negrec.objectives.training_loss import LossValue, training_loss

__all__ = [
    "LossValue",
    "bce_loss",
    "gbce_beta",
    "gbce_loss",
    "not_to_recommend_loss",
    "sampled_softmax_loss",
    "training_loss",
    "uniform_negatives",
]
