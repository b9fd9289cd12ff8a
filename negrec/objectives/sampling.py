"""Negative sampling over the catalogue: uniform, or in proportion to item counts.

Shared mode draws k items per *sequence* and scores them for every position with one
matrix product; per-position mode draws k items for every position (the reference
gSASRec way), which gathers a (batch, length, k, dim) tensor. Both are unbiased draws
of the same uniform distribution, so the expected loss is the same. In-batch sampling
(``negrec.objectives.sampled_candidates``) adds k draws of either distribution to the
batch's own targets.
"""

from __future__ import annotations

import torch


def uniform_negatives(
    num_items: int,
    shape: tuple[int, ...],
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Item ids drawn uniformly from 1..num_items (0 is padding), int64 of ``shape``."""
    if num_items < 1:
        raise ValueError(f"cannot sample negatives from {num_items} items")
    return torch.randint(1, num_items + 1, shape, device=device, generator=generator)


def proportional_negatives(
    cumulative_counts: torch.Tensor, draws: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``draws`` item ids, each ``j`` with probability ``count_j / total``, with replacement.

    ``cumulative_counts`` (num_items + 1,) int64 is the running sum of the counts by item
    id (index 0, padding, counts 0, so it is never drawn). Exact integer inversion of
    the running sum: ``O(draws log items)`` a call, where ``torch.multinomial`` would
    rebuild its table over the whole catalogue at every step.
    """
    total = int(cumulative_counts[-1])
    if total < 1:
        raise ValueError("cannot sample negatives in proportion to counts that are all 0")
    ticket = torch.randint(0, total, (draws,), generator=generator).to(cumulative_counts.device)
    return torch.searchsorted(cumulative_counts, ticket, right=True)
