"""A hand-made batch and a tiny model, shared by the objective tests: every loss is
checked on the same positions (targets, rejected items, padding)."""

from __future__ import annotations

import torch

from negrec.batching import TrainBatch
from negrec.config import ModelConfig
from negrec.model.gsasrec import ActionAwareGSASRec


def small_model(num_items: int = 40, seed: int = 0) -> ActionAwareGSASRec:
    torch.manual_seed(seed)
    return ActionAwareGSASRec(num_items, ModelConfig(max_len=6, dim=16, blocks=1, dropout=0.0))


def small_batch() -> TrainBatch:
    items = torch.tensor([[0, 3, 7, 9, 4, 2], [5, 6, 8, 1, 11, 12]])
    actions = torch.tensor([[0, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0]])
    targets = torch.tensor([[0, 9, 9, 4, 2, 13], [8, 8, 1, 11, 12, 14]])
    # The interaction after position t was a negative on this item (0 = it was not).
    rejected = torch.tensor([[0, 7, 0, 0, 2, 0], [6, 0, 0, 0, 0, 0]])
    return TrainBatch(items, actions, targets, rejected)
