"""Full-catalogue ranking metrics with one relevant item per row.

Ranks are computed from scores, not from a sort: rank = 1 + #items scoring strictly
higher + #other items scoring *equal* (ties count against the model). A model that
gives every item the same score therefore ranks the target last, never first.
Metrics are kept as sums plus a count so that distributed workers can add them up
before dividing (validation over all ranks, not rank 0's slice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def target_ranks(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's target among the finite-scored columns.

    ``scores`` is (batch, num_items + 1) with excluded items (padding, seen) at -inf;
    ``target`` is (batch,) item ids in 1..num_items.
    """
    if scores.dim() != 2 or target.dim() != 1 or scores.shape[0] != target.shape[0]:
        raise ValueError(
            f"scores must be (batch, items) and target (batch,); got {tuple(scores.shape)} "
            f"and {tuple(target.shape)}"
        )
    if target.dtype != torch.int64:
        raise TypeError(f"target ids must be int64, got {target.dtype}")
    if target.numel() and (int(target.min()) < 1 or int(target.max()) >= scores.shape[1]):
        raise ValueError(f"target ids must lie in 1..{scores.shape[1] - 1} (0 is padding)")
    target_score = scores.gather(1, target.unsqueeze(1))
    if not bool(torch.isfinite(target_score).all()):
        raise ValueError("a target was excluded from ranking (its score is not finite)")
    higher = (scores > target_score).sum(1)
    ties = (scores == target_score).sum(1) - 1
    return 1 + higher + ties


@dataclass
class RankingSums:
    """Additive accumulators for Recall@k, NDCG@k and MRR."""

    ks: tuple[int, ...] = (1, 10)
    count: float = 0.0
    mrr: float = 0.0
    hits: dict[int, float] = field(default_factory=dict)
    ndcg: dict[int, float] = field(default_factory=dict)

    def add(self, ranks: torch.Tensor) -> None:
        ranks = ranks.to(torch.float64)
        self.count += ranks.numel()
        self.mrr += float((1.0 / ranks).sum())
        for k in self.ks:
            inside = ranks <= k
            self.hits[k] = self.hits.get(k, 0.0) + float(inside.sum())
            gain = torch.where(inside, 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
            self.ndcg[k] = self.ndcg.get(k, 0.0) + float(gain.sum())

    def as_vector(self) -> torch.Tensor:
        """Flat float64 vector (for all-reduce); ``from_vector`` inverts it."""
        values = [self.count, self.mrr]
        values += [self.hits.get(k, 0.0) for k in self.ks]
        values += [self.ndcg.get(k, 0.0) for k in self.ks]
        return torch.tensor(values, dtype=torch.float64)

    @classmethod
    def from_vector(cls, ks: tuple[int, ...], vector: torch.Tensor) -> RankingSums:
        values = vector.tolist()
        n = len(ks)
        return cls(
            ks=ks,
            count=values[0],
            mrr=values[1],
            hits=dict(zip(ks, values[2 : 2 + n], strict=True)),
            ndcg=dict(zip(ks, values[2 + n : 2 + 2 * n], strict=True)),
        )

    def metrics(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no evaluation rows: the split is empty")
        out = {"mrr": self.mrr / self.count}
        for k in self.ks:
            out[f"recall@{k}"] = self.hits[k] / self.count
            out[f"ndcg@{k}"] = self.ndcg[k] / self.count
        return out
