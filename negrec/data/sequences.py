"""Per-partition sequence building: sort, clean and cut one partition of events into users.

Why vectorised: on 10^7 events a Python call per user is orders of magnitude slower than
one sort of the whole partition (see the brief's measured Ray Data ``map_groups``
disaster). Every function here works on whole numpy/pyarrow arrays, knows nothing about
Ray or storage, and can be unit-tested on a hand-made table.

Input table columns (one partition holds *all* events of its users):
``user_id`` and ``item_id`` (int64 or string), ``timestamp`` (int64 ms), ``action``
(int8, 0 positive / 1 negative), ``file_index`` (int32) and ``row`` (int64, 1-based row
in its file). Ties in time keep file order: (file_index, row) breaks them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from negrec.action_codes import POSITIVE

# Rows dropped while cleaning, by reason (the manifest's "dropped" keys).
DUPLICATE = "duplicate"
CONSECUTIVE_REPEAT = "consecutive_repeat"
SHORT_SEQUENCE = "short_sequence"
NO_POSITIVE_TARGET = "no_positive_target"


@dataclass(frozen=True)
class Sequences:
    """Cleaned interactions of one partition, grouped by user and sorted by time.

    Interaction arrays have one entry per kept event; sequence ``s`` is the slice
    ``offsets[s]:offsets[s + 1]``. ``item_codes`` are int64 equality keys for the items
    (the ids themselves, or dictionary codes for string ids).
    """

    user_ids: pa.Array
    offsets: np.ndarray
    item_ids: pa.Array
    item_codes: np.ndarray
    actions: np.ndarray
    timestamps: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return self.offsets[:-1]

    @property
    def ends(self) -> np.ndarray:
        return self.offsets[1:]

    @property
    def num_sequences(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return int(self.offsets[-1])


@dataclass
class CleaningStats:
    """What cleaning removed: rows by reason, and whole sequences by reason."""

    rows_in: int = 0
    rows_dropped: Counter[str] = field(default_factory=Counter)
    sequences_in: int = 0
    sequences_dropped: Counter[str] = field(default_factory=Counter)


def codes(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int64 equality/sort keys of an id column: integer ids as they are, strings coded."""
    if pa.types.is_integer(column.type):
        return column.to_numpy().astype(np.int64, copy=False)
    values, _ = pd.factorize(column.to_numpy(zero_copy_only=False))
    return values.astype(np.int64, copy=False)


def _in_file_order(file_index: np.ndarray, row: np.ndarray) -> bool:
    later_file = file_index[1:] > file_index[:-1]
    same_file_later_row = (file_index[1:] == file_index[:-1]) & (row[1:] > row[:-1])
    return bool(np.all(later_file | same_file_later_row))


def sort_order(
    user: np.ndarray, timestamp: np.ndarray, file_index: np.ndarray, row: np.ndarray
) -> np.ndarray:
    """Permutation sorting events by (user, timestamp, file_index, row).

    Fast path: when the rows already come in file order (as partitions are written),
    one stable sort of a packed (user code, timestamp offset) int64 key gives the same
    order as the four-key lexsort at about half the cost.
    """
    if len(user) == 0:
        return np.zeros(0, dtype=np.int64)
    user_code, _ = pd.factorize(user, sort=True)
    span = int(timestamp.max()) - int(timestamp.min())
    time_bits = max(span.bit_length(), 1)
    user_bits = max(int(user_code.max()).bit_length(), 1)
    if user_bits + time_bits <= 62 and _in_file_order(file_index, row):
        key = (user_code.astype(np.int64) << time_bits) | (timestamp - timestamp.min())
        return np.argsort(key, kind="stable")
    return np.lexsort((row, file_index, timestamp, user))


def duplicate_mask(
    user: np.ndarray, timestamp: np.ndarray, item: np.ndarray, action: np.ndarray
) -> np.ndarray:
    """Rows (of a sorted partition) repeating an earlier row's (user, item, timestamp, action).

    Duplicates can only sit inside a run of equal (user, timestamp), so only those runs
    (usually a small share of rows) are re-sorted; the first row in file order is kept.
    """
    n = len(user)
    same_time = (user[1:] == user[:-1]) & (timestamp[1:] == timestamp[:-1])
    in_tie = np.zeros(n, dtype=bool)
    in_tie[1:] |= same_time
    in_tie[:-1] |= same_time
    tied = np.flatnonzero(in_tie)
    duplicate = np.zeros(n, dtype=bool)
    if len(tied) == 0:
        return duplicate
    order = tied[np.lexsort((tied, action[tied], item[tied], timestamp[tied], user[tied]))]
    repeat = (
        (user[order[1:]] == user[order[:-1]])
        & (timestamp[order[1:]] == timestamp[order[:-1]])
        & (item[order[1:]] == item[order[:-1]])
        & (action[order[1:]] == action[order[:-1]])
    )
    duplicate[order[1:][repeat]] = True
    return duplicate


def consecutive_repeat_mask(user: np.ndarray, item: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Rows repeating the previous interaction of the same user (same item and action)."""
    repeat = np.zeros(len(user), dtype=bool)
    repeat[1:] = (user[1:] == user[:-1]) & (item[1:] == item[:-1]) & (action[1:] == action[:-1])
    return repeat


def sequence_offsets(user: np.ndarray) -> np.ndarray:
    """Offsets (S + 1) of the runs of equal users in a sorted user array."""
    if len(user) == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    return np.append(starts, len(user)).astype(np.int64)


def has_positive_after_first(actions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per sequence: is there a positive interaction with at least one interaction before it?

    Only such a positive can be a prediction target; a sequence without one teaches and
    tests nothing.
    """
    positive = (actions == POSITIVE).astype(np.int64)
    positive[offsets[:-1]] = 0
    return np.add.reduceat(positive, offsets[:-1]) > 0 if len(actions) else np.zeros(0, bool)


def build_sequences(
    table: pa.Table, min_length: int = 3, dedup_consecutive: bool = False
) -> tuple[Sequences, CleaningStats]:
    """Sort a partition's events into per-user sequences and clean them, counting every drop.

    Order of cleaning (each step counts the rows it removes): exact duplicate rows
    (same user, item, timestamp, action; the first in file order stays) -> optionally
    consecutive repeats of the same item and action -> sequences shorter than
    ``min_length`` -> sequences with no positive after their first interaction.
    """
    stats = CleaningStats(rows_in=table.num_rows)
    user = codes(table["user_id"])
    item = codes(table["item_id"])
    timestamp = table["timestamp"].to_numpy().astype(np.int64, copy=False)
    action = table["action"].to_numpy().astype(np.int8, copy=False)
    order = sort_order(
        user,
        timestamp,
        table["file_index"].to_numpy(),
        table["row"].to_numpy(),
    )
    user, item, timestamp, action = user[order], item[order], timestamp[order], action[order]
    stats.sequences_in = len(sequence_offsets(user)) - 1

    drop = duplicate_mask(user, timestamp, item, action)
    stats.rows_dropped[DUPLICATE] = int(drop.sum())
    if dedup_consecutive:
        kept = np.flatnonzero(~drop)
        repeat = consecutive_repeat_mask(user[kept], item[kept], action[kept])
        drop[kept[repeat]] = True
        stats.rows_dropped[CONSECUTIVE_REPEAT] = int(repeat.sum())
    kept = np.flatnonzero(~drop)
    user = user[kept]
    offsets = sequence_offsets(user)
    lengths = np.diff(offsets)
    short = lengths < min_length
    no_target = ~short & ~has_positive_after_first(action[kept], offsets)
    stats.rows_dropped[SHORT_SEQUENCE] = int(lengths[short].sum())
    stats.rows_dropped[NO_POSITIVE_TARGET] = int(lengths[no_target].sum())
    stats.sequences_dropped[SHORT_SEQUENCE] = int(short.sum())
    stats.sequences_dropped[NO_POSITIVE_TARGET] = int(no_target.sum())

    keep_sequence = ~(short | no_target)
    rows = kept[np.repeat(keep_sequence, lengths)]
    kept_lengths = lengths[keep_sequence]
    offsets = np.concatenate([[0], np.cumsum(kept_lengths)]).astype(np.int64)
    source_rows = pa.array(order[rows])
    sequences = Sequences(
        user_ids=table["user_id"].take(source_rows.take(pa.array(offsets[:-1]))).combine_chunks(),
        offsets=offsets,
        item_ids=table["item_id"].take(source_rows).combine_chunks(),
        item_codes=item[rows],
        actions=action[rows],
        timestamps=timestamp[rows],
    )
    return sequences, stats
