"""Scoring: dot products of hidden states with output item embeddings.

Why separate from the model: training scores a few sampled candidates per position
(one batched matrix product), evaluation scores the whole catalogue at the last
position, and serving needs top-k with the history excluded. All are tensor ops: no
Python loop over items or users.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from negrec.model.gsasrec import ActionAwareGSASRec


def _check_candidates(model: ActionAwareGSASRec, candidates: torch.Tensor) -> None:
    if candidates.dtype != torch.int64:
        raise TypeError(f"candidate ids must be int64, got {candidates.dtype}")
    if candidates.numel() and (
        int(candidates.min()) < 0 or int(candidates.max()) > model.num_items
    ):
        raise ValueError(f"candidate ids must lie in 0..{model.num_items}")


def score_items(
    model: ActionAwareGSASRec, hidden: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """Score of one item per position: ``items`` (batch, length) -> (batch, length).

    ``F.embedding`` rather than indexing: its backward is several times faster on CPU
    than the accumulating index_put of an indexing gather.
    """
    _check_candidates(model, items)
    return (hidden * F.embedding(items, model.output_weights)).sum(-1)


DENSE_CATALOGUE_FACTOR = 16
"""Per-position scoring goes through full-catalogue logits when the catalogue has at
most this many items per candidate (ML-1M: 3,417 <= 16 x 256 negatives)."""


def score_per_position(
    model: ActionAwareGSASRec, hidden: torch.Tensor, candidates: torch.Tensor
) -> torch.Tensor:
    """Scores of (batch, length, c) candidates, each position its own: (batch, length, c).

    Gathers a (batch, length, c, dim) tensor, so it is only for small c (positives,
    rejected items) or for the reference per-position sampling.
    """
    _check_candidates(model, candidates)
    if model.num_items + 1 <= DENSE_CATALOGUE_FACTOR * candidates.shape[-1]:
        # Small catalogue: scoring every item with one matrix product and picking the
        # candidates is exact and moves far less memory than the (b, l, c, d) gather.
        return (hidden @ model.output_weights.T).gather(-1, candidates)
    embeddings = F.embedding(candidates, model.output_weights)
    return torch.einsum("bld,blcd->blc", hidden, embeddings)


def score_shared(
    model: ActionAwareGSASRec, hidden: torch.Tensor, candidates: torch.Tensor
) -> torch.Tensor:
    """Scores of candidates shared by every position of a sequence.

    ``candidates`` is (batch, c) -> (batch, length, c) from one batched matrix product,
    never materialising per-position embeddings.
    """
    _check_candidates(model, candidates)
    embeddings = F.embedding(candidates, model.output_weights)
    return torch.bmm(hidden, embeddings.transpose(1, 2))


def last_position_scores(
    model: ActionAwareGSASRec, items: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """Full-catalogue scores (batch, num_items + 1) for the next item; column 0 is padding
    and set to -inf so it can never be ranked or recommended."""
    hidden = model(items, actions)[:, -1, :]
    scores = hidden @ model.output_weights.T
    scores[:, 0] = float("-inf")
    return scores


def exclude_items(
    scores: torch.Tensor, items: torch.Tensor, keep: torch.Tensor | None = None
) -> None:
    """Set the scores of ``items`` (batch, n; 0 = padding) to -inf in place.

    ``keep`` (batch,) names one item per row that must keep its score (the evaluation
    target, when the user happens to re-consume it).
    """
    if keep is None:
        scores.scatter_(1, items, float("-inf"))
        return
    kept = scores.gather(1, keep.unsqueeze(1))
    scores.scatter_(1, items, float("-inf"))
    scores.scatter_(1, keep.unsqueeze(1), kept)
    scores[:, 0] = float("-inf")


def top_k(
    model: ActionAwareGSASRec,
    items: torch.Tensor,
    actions: torch.Tensor,
    k: int,
    exclude_seen: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (ids, scores) over the catalogue for the next item after each history.

    Items already in the history (positive or rejected) and padding are excluded by
    default. Returns item ids in 1..num_items, shape (batch, k).
    """
    if k < 1 or k > model.num_items:
        raise ValueError(f"k must lie in 1..{model.num_items}, got {k}")
    scores = last_position_scores(model, items, actions)
    if exclude_seen:
        exclude_items(scores, items)
    best_scores, best_ids = scores.topk(k, dim=1)
    return best_ids, best_scores
