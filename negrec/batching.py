"""Fixed-length tensors for training and evaluation, and their construction from sequences.

Why one module: the Ray Data loaders, the in-process loaders, the tests and the
benchmarks must agree on one layout. Sequences are *left*-padded so that the last
position is always the most recent interaction (the one whose output is scored at
evaluation time). Item ids are vocabulary indices: 0 is padding, real items are
1..num_items. Actions are the codes of ``negrec.action_codes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from negrec.action_codes import NEGATIVE, POSITIVE

PAD = 0


@dataclass(frozen=True)
class TrainBatch:
    """One training batch; every tensor is (batch, max_len) int64.

    ``targets[b, t]`` is the next *positive* item after position t (0 = none), so
    rejected items never become targets; ``rejected[b, t]`` is the item of the
    interaction right after t when that interaction is negative (0 = none), the label
    of the not-to-recommend term.
    """

    items: torch.Tensor
    actions: torch.Tensor
    targets: torch.Tensor
    rejected: torch.Tensor

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(*(t.to(device, non_blocking=True) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.items, self.actions, self.targets, self.rejected)

    @property
    def size(self) -> int:
        return int(self.items.shape[0])

    def trimmed(self) -> TrainBatch:
        """The batch cut to its longest row (at least one column).

        Exact: rows are left-padded and position embeddings right-aligned, so the
        columns dropped are padding in every row, never attended to and never scored.
        """
        filled = (self.items != PAD).any(dim=0).nonzero()
        first = int(filled[0]) if len(filled) else self.items.shape[1] - 1
        if first == 0:
            return self
        return TrainBatch(*(t[:, first:] for t in self.tensors()))

    @staticmethod
    def concat(batches: Sequence[TrainBatch]) -> TrainBatch:
        """Rows of several batches of one width, stacked."""
        return TrainBatch(
            *(torch.cat(parts) for parts in zip(*(b.tensors() for b in batches), strict=True))
        )

    def rows(self, index: torch.Tensor) -> TrainBatch:
        return TrainBatch(*(t[index] for t in self.tensors()))


def length_bucketed(
    batches: Iterable[TrainBatch], window: int, generator: torch.Generator
) -> Iterator[TrainBatch]:
    """Batches of rows of similar length, each trimmed to its longest row.

    Why: inputs of real logs vary widely in length (ML-1M: about half of 200 positions on
    average), so a random batch is nearly always as wide as its longest row. Each run of
    ``window`` incoming (already shuffled) batches is sorted by length, cut again into
    batches of the first batch's size, and yielded in a random order. ``window=1`` keeps
    the incoming batches and only trims them.
    """
    pending: list[TrainBatch] = []

    def flush() -> Iterator[TrainBatch]:
        merged = TrainBatch.concat(pending)
        size = pending[0].size
        lengths = (merged.items != PAD).sum(dim=1)
        order = torch.sort(lengths, stable=True).indices
        parts = list(order.split(size))
        for chosen in torch.randperm(len(parts), generator=generator).tolist():
            yield merged.rows(parts[chosen]).trimmed()

    for batch in batches:
        if window == 1:
            yield batch.trimmed()
            continue
        if pending and batch.items.shape[1] != pending[0].items.shape[1]:
            yield from flush()
            pending = []
        pending.append(batch)
        if len(pending) == window:
            yield from flush()
            pending = []
    if pending:
        yield from flush()


@dataclass(frozen=True)
class EvalBatch:
    """One evaluation batch: input histories, the held-out next positive item, and the
    held-out rejected items (``(batch, R)``, 0-padded) for rejected-in-top-k."""

    items: torch.Tensor
    actions: torch.Tensor
    target: torch.Tensor
    heldout_rejected: torch.Tensor

    def to(self, device: torch.device | str) -> EvalBatch:
        return EvalBatch(
            self.items.to(device),
            self.actions.to(device),
            self.target.to(device),
            self.heldout_rejected.to(device),
        )

    @property
    def size(self) -> int:
        return int(self.items.shape[0])


def left_pad(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        tail = row[-width:]
        if len(tail):
            out[r, width - len(tail) :] = tail
    return out


def training_arrays(
    items: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    max_len: int,
    windows: bool = False,
) -> dict[str, np.ndarray]:
    """Turn whole interaction sequences into left-padded training arrays.

    The input is ``interactions[:-1]``; at each position the target is the next positive
    item (negatives in between are skipped) and ``rejected`` is the next item when it
    was a negative interaction. Only the last ``max_len`` positions are kept, or, with
    ``windows``, a sequence longer than that gives one row per window of ``max_len``
    positions counted back from the most recent, so that every position is trained on
    once. Targets are found on the whole sequence first, so a window's last target may
    lie in the next window, as it does in the sequence.
    """
    inputs, input_actions, targets, rejected = [], [], [], []
    for seq_items, seq_actions in zip(items, actions, strict=True):
        seq_items = np.asarray(seq_items, dtype=np.int64)
        seq_actions = np.asarray(seq_actions, dtype=np.int64)
        if len(seq_items) != len(seq_actions):
            raise ValueError("items and actions of a sequence differ in length")
        nxt_items, nxt_actions = seq_items[1:], seq_actions[1:]
        positive_item = np.where(nxt_actions == POSITIVE, nxt_items, 0)
        # Next positive at or after each following position: reverse cumulative "last seen".
        idx = np.where(positive_item > 0, np.arange(len(positive_item)), len(positive_item))
        next_pos_idx = np.minimum.accumulate(idx[::-1])[::-1]
        padded = np.append(positive_item, 0)
        seq_targets = padded[next_pos_idx]
        seq_rejected = np.where(nxt_actions == NEGATIVE, nxt_items, 0)
        positions = len(nxt_items)
        for end in range(positions, 0, -max_len) if windows and positions else [positions]:
            inputs.append(seq_items[:end])
            input_actions.append(seq_actions[:end])
            targets.append(seq_targets[:end])
            rejected.append(seq_rejected[:end])
    return {
        "items": left_pad(inputs, max_len),
        "actions": left_pad(input_actions, max_len),
        "targets": left_pad(targets, max_len),
        "rejected": left_pad(rejected, max_len),
    }


def eval_arrays(
    items: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    targets: Sequence[int],
    heldout_rejected: Sequence[np.ndarray],
    max_len: int,
    max_rejected: int = 32,
) -> dict[str, np.ndarray]:
    """Left-padded histories plus target and (right-padded) held-out rejected items."""
    rejected = np.zeros((len(heldout_rejected), max_rejected), dtype=np.int64)
    for r, row in enumerate(heldout_rejected):
        row = np.asarray(row, dtype=np.int64)[:max_rejected]
        rejected[r, : len(row)] = row
    return {
        "items": left_pad([np.asarray(s, dtype=np.int64) for s in items], max_len),
        "actions": left_pad([np.asarray(a, dtype=np.int64) for a in actions], max_len),
        "target": np.asarray(targets, dtype=np.int64),
        "heldout_rejected": rejected,
    }


def train_batch_from_arrays(arrays: dict[str, np.ndarray | torch.Tensor]) -> TrainBatch:
    return TrainBatch(
        *(torch.as_tensor(arrays[k], dtype=torch.int64) for k in TrainBatch.__dataclass_fields__)
    )


def eval_batch_from_arrays(arrays: dict[str, np.ndarray | torch.Tensor]) -> EvalBatch:
    return EvalBatch(
        *(torch.as_tensor(arrays[k], dtype=torch.int64) for k in EvalBatch.__dataclass_fields__)
    )
