"""Evaluation: full-catalogue ranking metrics and negative-feedback metrics."""

from negrec.evaluation.batch_metrics import (
    EvaluationSums,
    evaluate,
    model_scorer,
    popularity_scorer,
)
from negrec.evaluation.negative_feedback import (
    data_responsiveness,
    rejected_in_top_k,
    responsiveness,
)
from negrec.evaluation.ranking import RankingSums, target_ranks

__all__ = [
    "EvaluationSums",
    "RankingSums",
    "data_responsiveness",
    "evaluate",
    "model_scorer",
    "popularity_scorer",
    "rejected_in_top_k",
    "responsiveness",
    "target_ranks",
]
