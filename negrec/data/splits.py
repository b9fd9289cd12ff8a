"""Train/validation/test split plans over cleaned sequences, as index arrays.

Why plans: a split is described per sequence by a few absolute indices into the
partition's interaction arrays (where training ends, where each held-out target sits,
where its held-out window ends). Building the output rows, counting training items for
the vocabulary and checking eligibility all read the same plan, so they cannot
disagree. Everything is vectorised over the partition.

Two splits:

* ``leave_one_out`` (default): the test target is the user's last positive
  interaction; the test input is every interaction (both actions) before it; the test
  held-out rejected items are the negatives after it. Validation users (a seeded
  sample, see :func:`validation_keys`) get as target the last positive before the test
  target, as input everything before that, and as held-out rejected the negatives
  between the two targets. The training sequence is everything before the validation
  target (validation users) or before the test target (everyone else).
* ``temporal``: two global cut-off times ``t_val < t_test``. Training sequence: the
  interactions with ``timestamp < t_val``. Validation target: the first positive with
  ``t_val <= timestamp < t_test``; test target: the first positive with
  ``timestamp >= t_test``; each with every earlier interaction of the user as input
  (earlier periods included), and as held-out rejected the negatives after the target
  within its period (before ``t_test`` for validation, to the end for test). A target
  needs at least one interaction before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from negrec.action_codes import NEGATIVE, POSITIVE
from negrec.data.sequences import Sequences

NONE = -1


@dataclass(frozen=True)
class SplitPlan:
    """Absolute interaction indices per sequence; ``-1`` means "no such example".

    The training sequence is ``[start, train_end)``; an evaluation example with target
    ``t`` has input ``[start, t)`` and held-out rejected = negatives in ``(t, end)``.
    """

    train_end: np.ndarray
    val_target: np.ndarray
    val_end: np.ndarray
    test_target: np.ndarray
    test_end: np.ndarray


def _last_positive_before(sequences: Sequences, limit: np.ndarray) -> np.ndarray:
    """Per sequence, the index of the last positive in ``[start, limit)``, else -1."""
    index = np.arange(sequences.num_interactions)
    last_seen = np.maximum.accumulate(np.where(sequences.actions == POSITIVE, index, NONE))
    found = last_seen[np.maximum(limit - 1, 0)]
    return np.where((limit > sequences.starts) & (found >= sequences.starts), found, NONE)


def _first_positive_from(sequences: Sequences, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per sequence, the index of the first positive in ``[lower, upper)``, else -1."""
    n = sequences.num_interactions
    index = np.arange(n)
    next_seen = np.minimum.accumulate(np.where(sequences.actions == POSITIVE, index, n)[::-1])[::-1]
    found = np.append(next_seen, n)[np.minimum(lower, n)]
    return np.where(found < upper, found, NONE)


def _first_at_or_after(sequences: Sequences, cutoff: int) -> np.ndarray:
    """Per sequence, the index of the first interaction with ``timestamp >= cutoff``
    (the sequence end when there is none); sequences are sorted by time."""
    before = (sequences.timestamps < cutoff).astype(np.int64)
    if sequences.num_interactions == 0:
        return sequences.starts.copy()
    return sequences.starts + np.add.reduceat(before, sequences.starts)


def validation_keys(user_ids: pa.Array, seed: int) -> np.ndarray:
    """A seeded pseudo-random uint64 per user, the same in every process and partition.

    Validation users are the ones with the smallest keys among the eligible users, so
    the sample is reproducible for a seed and independent of how users are partitioned.
    (pandas' hash of integers ignores its key, so the seed is mixed in explicitly.)
    """
    salt = pd.util.hash_array(np.array([seed], dtype=np.int64))[0]
    hashed = pd.util.hash_array(user_ids.to_numpy(zero_copy_only=False))
    return pd.util.hash_array(hashed ^ salt)


def leave_one_out_targets(sequences: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """(test target, validation target) per sequence before choosing validation users.

    The validation target is -1 where the user is not eligible for validation (no
    positive before the test target that itself has an interaction before it).
    """
    test_target = _last_positive_before(sequences, sequences.ends)
    val_target = _last_positive_before(sequences, test_target)
    val_target = np.where(val_target > sequences.starts, val_target, NONE)
    return test_target, val_target


def leave_one_out(sequences: Sequences, is_validation: np.ndarray) -> SplitPlan:
    """The leave-one-out plan; ``is_validation`` marks the sampled validation users
    (each must be eligible, i.e. have a validation target)."""
    test_target, val_target = leave_one_out_targets(sequences)
    if np.any(is_validation & (val_target == NONE)):
        raise ValueError("a validation user has no validation target")
    val_target = np.where(is_validation, val_target, NONE)
    return SplitPlan(
        train_end=np.where(is_validation, val_target, test_target),
        val_target=val_target,
        val_end=test_target,
        test_target=test_target,
        test_end=sequences.ends.copy(),
    )


def temporal(sequences: Sequences, val_cutoff: int, test_cutoff: int) -> SplitPlan:
    """The global temporal plan with cut-offs ``val_cutoff < test_cutoff`` (ms)."""
    val_start = _first_at_or_after(sequences, val_cutoff)
    test_start = _first_at_or_after(sequences, test_cutoff)
    has_history = sequences.starts + 1
    val_target = _first_positive_from(sequences, np.maximum(val_start, has_history), test_start)
    test_target = _first_positive_from(
        sequences, np.maximum(test_start, has_history), sequences.ends
    )
    return SplitPlan(
        train_end=val_start,
        val_target=val_target,
        val_end=test_start,
        test_target=test_target,
        test_end=sequences.ends.copy(),
    )


def ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the index ranges ``[starts[i], ends[i])``: (owner of each index, index)."""
    lengths = np.maximum(ends - starts, 0)
    owner = np.repeat(np.arange(len(starts)), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    index = np.arange(int(lengths.sum()), dtype=np.int64) - first[owner] + starts[owner]
    return owner, index


def training_rows(sequences: Sequences, plan: SplitPlan, min_length: int = 2) -> np.ndarray:
    """Sequences that get a training row: at least ``min_length`` training interactions
    (one input and one next interaction; anything shorter carries no training signal)."""
    return np.flatnonzero(plan.train_end - sequences.starts >= min_length)


def training_indices(sequences: Sequences, plan: SplitPlan) -> np.ndarray:
    """Interaction indices of every training row, concatenated (for vocabulary counts)."""
    rows = training_rows(sequences, plan)
    return ranges(sequences.starts[rows], plan.train_end[rows])[1]


def _list_array(owner: np.ndarray, values: np.ndarray, rows: int, value_type: pa.DataType):
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=rows))])
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(values, value_type, from_pandas=False)
    )


def train_table(sequences: Sequences, plan: SplitPlan, vocab_index: np.ndarray) -> pa.Table:
    """Training rows: user_id, items (vocabulary indices), actions."""
    rows = training_rows(sequences, plan)
    owner, index = ranges(sequences.starts[rows], plan.train_end[rows])
    items = vocab_index[index]
    if np.any(items == 0):
        raise AssertionError("a training item is missing from the vocabulary built from training")
    return pa.table(
        {
            "user_id": sequences.user_ids.take(pa.array(rows)),
            "items": _list_array(owner, items, len(rows), pa.int32()),
            "actions": _list_array(owner, sequences.actions[index], len(rows), pa.int8()),
        }
    )


def eval_table(
    sequences: Sequences, targets: np.ndarray, ends: np.ndarray, vocab_index: np.ndarray
) -> tuple[pa.Table, dict[str, int]]:
    """Evaluation rows (user_id, items, actions, target, heldout_rejected) and the counts
    of items unknown to the vocabulary, by where they were (``target``, ``input``,
    ``heldout_rejected``).

    Unknown input and held-out items are left out of their lists; an unknown target
    removes the example (it cannot be ranked). All of it is counted.
    """
    has_target = targets != NONE
    known_target = has_target & (vocab_index[np.maximum(targets, 0)] > 0)
    unknown = {"target": int((has_target & ~known_target).sum())}
    rows = np.flatnonzero(known_target)
    row_targets = targets[rows]

    owner, index = ranges(sequences.starts[rows], row_targets)
    items = vocab_index[index]
    unknown["input"] = int((items == 0).sum())
    keep = items > 0
    input_items = _list_array(owner[keep], items[keep], len(rows), pa.int32())
    input_actions = _list_array(owner[keep], sequences.actions[index][keep], len(rows), pa.int8())

    owner, index = ranges(row_targets + 1, ends[rows])
    negative = sequences.actions[index] == NEGATIVE
    rejected = vocab_index[index]
    unknown["heldout_rejected"] = int((negative & (rejected == 0)).sum())
    keep = negative & (rejected > 0)
    table = pa.table(
        {
            "user_id": sequences.user_ids.take(pa.array(rows)),
            "items": input_items,
            "actions": input_actions,
            "target": pa.array(vocab_index[row_targets], pa.int32()),
            "heldout_rejected": _list_array(owner[keep], rejected[keep], len(rows), pa.int32()),
        }
    )
    return table, unknown


def timestamp_histogram(timestamps: np.ndarray, low: int, width: int, bins: int) -> np.ndarray:
    """Event counts in ``bins`` bins of ``width`` ms starting at ``low`` (int64)."""
    index = np.clip((timestamps - low) // width, 0, bins - 1)
    return np.bincount(index, minlength=bins).astype(np.int64)


def quantile_cutoff(histogram: np.ndarray, low: int, width: int, quantile: float) -> int:
    """The first bin edge ``e`` with at least ``quantile`` of all events before it
    (``timestamp < e``): the time quantile, exact to within one bin width."""
    cumulative = np.cumsum(histogram)
    bin_index = int(np.searchsorted(cumulative, quantile * cumulative[-1], side="left"))
    return low + (bin_index + 1) * width
