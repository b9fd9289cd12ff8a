"""In-batch sampled softmax with the log-Q correction, for catalogues too large for ``ce``.

Why: full-catalogue cross-entropy builds positions x items logits every step (10^6
items at 128 x 200 positions: 95 GiB of them, chunked or not). Here every position of
a batch ranks its target against one shared candidate set: the batch's own targets
(in-batch negatives: free to pick, and distributed like the targets, so they are the
popular items a model confuses most) plus ``k`` draws from the catalogue (uniform or by
popularity; they reach the tail that in-batch negatives almost never hold). The set is
deduplicated and scored with one matrix product, chunked like ``ce``.

In-batch candidates are a popularity-biased sample, and a softmax over a biased sample
ranks popular items too low. The log-Q correction (Yi et al., RecSys'19,
"Sampling-bias-corrected neural modeling") subtracts ``log pi_j`` from candidate ``j``'s
logit, ``pi_j`` the probability that ``j`` is in the sample:

    pi_j = 1 - (1 - q_j)^(P - 1) (1 - u_j)^k

with ``q_j`` item j's share of the training targets, ``P`` the batch's target
positions (the other ``P - 1`` are the in-batch draws a position sees) and ``u_j`` the
draw distribution (``1/N`` uniform, ``q_j`` popularity). Then ``sum_{j in sample}
e^(s_j - log pi_j)`` is the Horvitz-Thompson estimate of ``sum_j e^(s_j)`` over the
catalogue, so the corrected sampled softmax approaches the full one. With uniform
draws alone ``pi_j`` is one constant (``~ k/N``). The positions are treated as
independent draws from ``q`` (two positions of one sequence are not quite). Yi et al.
subtract the log of an item's per-draw sampling probability, estimated from the
stream; here ``q`` is counted exactly once a run, and for a rare item ``pi_j ~ (P - 1)
q_j + k u_j``, theirs up to a constant.

A position's own target and (with ``rejected_as_negatives``) its own rejected item are
in its candidate set with certainty (``pi = 1``): they keep their raw logits, and a
sampled copy of either is the same column, so it adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

from negrec.batching import TrainBatch
from negrec.objectives.catalogue_softmax import CatalogueLoss, candidate_softmax_loss
from negrec.objectives.sampling import proportional_negatives, uniform_negatives


def count_targets(batches: Iterable[TrainBatch], num_items: int) -> torch.Tensor:
    """How often each item is a training target, (num_items + 1,) int64, index 0 = 0:
    the ``q`` of the correction and the popularity distribution, counted once a run."""
    counts = torch.zeros(num_items + 1, dtype=torch.int64)
    for batch in batches:
        counts += torch.bincount(batch.targets.flatten().cpu(), minlength=num_items + 1)
    counts[0] = 0
    return counts


@dataclass(frozen=True)
class TargetFrequencies:
    """Each item's share ``q_j`` of the training targets, in the forms the sampler needs.

    Every item counts at least once, so no candidate has inclusion probability 0 (its
    correction would be infinite): an item that is never a target yet appears as a
    candidate is rare by definition and is corrected as the rarest.
    """

    cumulative: torch.Tensor
    """(num_items + 1,) int64 running sum of the counts, index 0 (padding) 0."""
    log1m_share: torch.Tensor
    """(num_items + 1,) float64 ``log(1 - q_j)``."""

    @classmethod
    def from_counts(cls, counts: torch.Tensor) -> TargetFrequencies:
        """From target counts per item id (``count_targets``; index 0 ignored)."""
        if counts.dim() != 1 or len(counts) < 2:
            raise ValueError("counts must hold one count per item id, 0 (padding) included")
        counts = counts.to(torch.int64).clamp(min=1)
        counts[0] = 0
        cumulative = counts.cumsum(0)
        share = counts.double() / float(cumulative[-1])
        return cls(cumulative=cumulative, log1m_share=torch.log1p(-share))

    @property
    def num_items(self) -> int:
        return len(self.cumulative) - 1

    def to(self, device: torch.device | str) -> TargetFrequencies:
        return TargetFrequencies(self.cumulative.to(device), self.log1m_share.to(device))


Distribution = Literal["uniform", "popularity"]


def draw_negatives(
    distribution: Distribution,
    frequencies: TargetFrequencies,
    draws: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``draws`` candidate ids (with replacement) from ``distribution`` over the catalogue."""
    if distribution == "popularity":
        return proportional_negatives(frequencies.cumulative, draws, generator)
    device = frequencies.cumulative.device
    return uniform_negatives(frequencies.num_items, (draws,), "cpu", generator).to(device)


def log_inclusion_probability(
    log1m_target_share: torch.Tensor,
    other_positions: int,
    log1m_draw_probability: torch.Tensor | float,
    draws: int,
) -> torch.Tensor:
    """``log pi_j = log(1 - (1 - q_j)^(P-1) (1 - u_j)^k)`` from ``log(1 - q_j)`` and
    ``log(1 - u_j)``, as ``log(-expm1(.))``: exact for the tiny ``pi`` of rare items,
    where ``1 - (1 - q)^n`` would round to 0."""
    log_absent = other_positions * log1m_target_share + draws * log1m_draw_probability
    return torch.log(-torch.expm1(log_absent))


@dataclass(frozen=True)
class BatchCandidates:
    """One batch's candidate columns and where each position's own items sit."""

    items: torch.Tensor
    """(C,) distinct item ids: the sample (the targets and draws, sorted), then the
    rejected items outside it (sorted), each a candidate of its own positions only."""
    offsets: torch.Tensor
    """(S,) float32 ``-log pi_j`` of the sample's items, added to their logits."""
    target_columns: torch.Tensor
    """(N,) column of each position's target, -1 where it has none."""
    rejected_columns: torch.Tensor
    """(N,) column of each position's rejected item, -1 where it has none."""


def _columns(sample: torch.Tensor, outside: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Column of each id among ``sample`` then ``outside`` (both sorted, every nonzero id
    in one of them); -1 for 0 (none)."""
    in_sample = torch.searchsorted(sample, ids).clamp(max=len(sample) - 1)
    found = sample[in_sample] == ids
    past = len(sample) + torch.searchsorted(outside, ids)
    return torch.where(ids > 0, torch.where(found, in_sample, past), -1)


def in_batch_candidates(
    targets: torch.Tensor,
    rejected: torch.Tensor,
    draws: torch.Tensor,
    frequencies: TargetFrequencies,
    distribution: Distribution,
) -> BatchCandidates:
    """The candidate set of positions with ``targets`` / ``rejected`` (N,) item ids (0 =
    none): their targets and the ``draws``, deduplicated and log-Q corrected, plus the
    rejected items outside that sample as columns of their own positions."""
    positive = targets[targets > 0]
    sample = torch.unique(torch.cat([positive, draws]))
    others = torch.unique(rejected[rejected > 0])
    outside = others[~torch.isin(others, sample)]
    if distribution == "popularity":
        log1m_draw: torch.Tensor | float = frequencies.log1m_share[sample]
    else:
        log1m_draw = math.log1p(-1.0 / frequencies.num_items)
    other_positions = max(len(positive) - 1, 0)
    log_pi = log_inclusion_probability(
        frequencies.log1m_share[sample], other_positions, log1m_draw, len(draws)
    )
    return BatchCandidates(
        items=torch.cat([sample, outside]),
        offsets=(-log_pi).float(),
        target_columns=_columns(sample, outside, targets),
        rejected_columns=_columns(sample, outside, rejected),
    )


def in_batch_softmax_loss(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    draws: torch.Tensor,
    frequencies: TargetFrequencies,
    distribution: Distribution,
    not_to_recommend_weight: float = 0.0,
    budget_mib: float = 256.0,
    rejected_in_ranking: bool = True,
) -> CatalogueLoss:
    """Log-Q corrected sampled softmax of ``hidden`` (N, d) over the batch's targets and
    ``draws``, plus ``weight`` x ``-log(1 - p(rejected))`` under the same softmax.

    ``table`` (num_items + 1, d) output embeddings; ``targets`` / ``rejected`` (N,) item
    ids (0 = none); ``rejected_in_ranking``: each position's rejected item is one of its
    ranking negatives (``objective.rejected_as_negatives``).
    """
    candidates = in_batch_candidates(targets, rejected, draws, frequencies, distribution)
    return candidate_softmax_loss(
        hidden,
        F.embedding(candidates.items, table),
        candidates.target_columns,
        candidates.rejected_columns,
        not_to_recommend_weight,
        budget_mib,
        candidates.offsets,
        rejected_in_ranking,
    )
