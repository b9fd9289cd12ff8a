"""Evaluate any scorer (a model, a popularity baseline) over batches of held-out rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from negrec.batching import EvalBatch
from negrec.evaluation.negative_feedback import rejected_in_top_k
from negrec.evaluation.ranking import RankingSums, target_ranks
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import exclude_items, last_position_scores

Scorer = Callable[[EvalBatch], torch.Tensor]
"""EvalBatch -> (batch, num_items + 1) scores for the next item (column 0 = padding)."""


@dataclass
class EvaluationSums:
    """Additive sums of every metric, reducible across workers before dividing."""

    ranking: RankingSums = field(default_factory=RankingSums)
    rejected_hits: float = 0.0
    rejected_total: float = 0.0
    rejected_k: int = 10

    def as_vector(self) -> torch.Tensor:
        extra = torch.tensor([self.rejected_hits, self.rejected_total], dtype=torch.float64)
        return torch.cat([self.ranking.as_vector(), extra])

    def with_vector(self, vector: torch.Tensor) -> EvaluationSums:
        """The same layout filled from a (reduced) vector."""
        ranking = RankingSums.from_vector(self.ranking.ks, vector[:-2])
        hits, total = vector[-2:].tolist()
        return EvaluationSums(ranking, hits, total, self.rejected_k)

    def metrics(self) -> dict[str, float]:
        out = self.ranking.metrics()
        if self.rejected_total:
            out[f"rejected_in_top{self.rejected_k}"] = self.rejected_hits / self.rejected_total
        return out


def model_scorer(model: ActionAwareGSASRec) -> Scorer:
    """Scores from the model's last position, in eval mode (no dropout)."""

    def score(batch: EvalBatch) -> torch.Tensor:
        model.eval()
        return last_position_scores(model, batch.items, batch.actions)

    return score


def popularity_scorer(item_counts: torch.Tensor) -> Scorer:
    """The most-popular baseline: every user gets the training-frequency ranking.
    ``item_counts`` is (num_items + 1,), index 0 = padding."""
    base = item_counts.to(torch.float64).clone()
    base[0] = float("-inf")

    def score(batch: EvalBatch) -> torch.Tensor:
        return base.unsqueeze(0).expand(batch.size, -1).clone()

    return score


@torch.no_grad()
def evaluate(
    scorer: Scorer,
    batches: Iterable[EvalBatch],
    ks: tuple[int, ...] = (1, 10),
    exclude_seen: bool = True,
    rejected_k: int = 10,
) -> EvaluationSums:
    """Full-catalogue ranking and rejected-in-top-k sums over all batches.

    Items in the input history are excluded (except the target itself, should the user
    re-consume it) unless ``exclude_seen`` is False.
    """
    sums = EvaluationSums(RankingSums(ks=ks), rejected_k=rejected_k)
    for batch in batches:
        if batch.size == 0:
            continue
        scores = scorer(batch)
        if scores.shape[0] != batch.size or scores.dim() != 2:
            raise ValueError(f"scorer returned {tuple(scores.shape)} for {batch.size} rows")
        scores[:, 0] = float("-inf")  # padding is never a recommendation
        if exclude_seen:
            exclude_items(scores, batch.items, keep=batch.target)
        sums.ranking.add(target_ranks(scores, batch.target))
        top_ids = scores.topk(min(rejected_k, scores.shape[1] - 1), dim=1).indices
        hits, total = rejected_in_top_k(top_ids, batch.heldout_rejected)
        sums.rejected_hits += hits
        sums.rejected_total += total
    return sums
