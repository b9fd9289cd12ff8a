"""Uniform negative sampling over the catalogue.

Shared mode draws k items per *sequence* and scores them for every position with one
matrix product; per-position mode draws k items for every position (the reference
gSASRec way), which gathers a (batch, length, k, dim) tensor. Both are unbiased draws
of the same uniform distribution, so the expected loss is the same.
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
