"""A tiny learnable sequence pattern for unit tests of the model and the loop.

Not a data generator of the product (that is ``negrec generate``): it exists so the
loop tests need neither Ray nor files. Each user walks the catalogue along one fixed
random successor map (next positive = successor[last positive]), so the next item is
predictable from the last positive one; random rejected items are mixed in as negative
interactions, which the model has to learn to look past.
"""

from __future__ import annotations

import numpy as np
import torch

from negrec.batching import (
    NEGATIVE,
    POSITIVE,
    EvalBatch,
    TrainBatch,
    eval_arrays,
    eval_batch_from_arrays,
    train_batch_from_arrays,
    training_arrays,
)


def pattern_sequences(
    users: int, items: int, length: int, seed: int, negative_rate: float = 0.2
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    successor = rng.permutation(items)
    all_items, all_actions = [], []
    for _ in range(users):
        current = int(rng.integers(0, items))
        seq, act = [], []
        while len(seq) < length:
            if rng.random() < negative_rate:
                seq.append(int(rng.integers(0, items)) + 1)
                act.append(NEGATIVE)
            else:
                seq.append(current + 1)
                act.append(POSITIVE)
                current = int(successor[current])
        all_items.append(np.array(seq))
        all_actions.append(np.array(act))
    return all_items, all_actions


def split_last_positive(
    items: list[np.ndarray], actions: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray], EvalBatch]:
    """Training prefixes and an eval batch whose target is each user's last positive."""
    train_items, train_actions, hist_items, hist_actions, targets = [], [], [], [], []
    for seq, act in zip(items, actions, strict=True):
        last = int(np.flatnonzero(act == POSITIVE)[-1])
        train_items.append(seq[:last])
        train_actions.append(act[:last])
        hist_items.append(seq[:last])
        hist_actions.append(act[:last])
        targets.append(int(seq[last]))
    rejected = [np.zeros(0, dtype=np.int64)] * len(items)
    max_len = max(len(s) for s in hist_items)
    batch = eval_batch_from_arrays(
        eval_arrays(hist_items, hist_actions, targets, rejected, max_len)
    )
    return train_items, train_actions, batch


def train_batches(
    items: list[np.ndarray], actions: list[np.ndarray], max_len: int, batch_size: int, seed: int
) -> list[TrainBatch]:
    order = np.random.default_rng(seed).permutation(len(items))
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        arrays = training_arrays([items[i] for i in chosen], [actions[i] for i in chosen], max_len)
        batches.append(train_batch_from_arrays(arrays))
    return batches


def item_counts(items: list[np.ndarray], actions: list[np.ndarray], num_items: int) -> torch.Tensor:
    counts = torch.zeros(num_items + 1)
    for seq, act in zip(items, actions, strict=True):
        counts.index_add_(
            0, torch.as_tensor(seq[act == POSITIVE]), torch.ones(int((act == POSITIVE).sum()))
        )
    return counts
