"""Pure per-partition functions of prepare: sorting, cleaning, splits, vocabulary.

No Ray: these run on hand-made tables in milliseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from negrec.data import splits, vocab
from negrec.data.manifest import check_row_accounting
from negrec.data.sequences import (
    CONSECUTIVE_REPEAT,
    DUPLICATE,
    NO_POSITIVE_TARGET,
    SHORT_SEQUENCE,
    build_sequences,
    duplicate_mask,
    sort_order,
)

P, N = 0, 1  # positive, negative


def events(rows: list[tuple[int, int, int, int, int, int]]) -> pa.Table:
    """(user, item, timestamp ms, action, file_index, row) -> canonical event table."""
    user, item, ts, action, file_index, row = zip(*rows, strict=True)
    return pa.table(
        {
            "user_id": pa.array(user, pa.int64()),
            "item_id": pa.array(item, pa.int64()),
            "timestamp": pa.array(ts, pa.int64()),
            "action": pa.array(action, pa.int8()),
            "file_index": pa.array(file_index, pa.int32()),
            "row": pa.array(row, pa.int64()),
        }
    )


# User 1, in file order: out-of-order timestamps (12 happened before 11) and a tie at
# t=300 across two files (file 0 row 9 before file 1 row 1, whatever the row numbers).
USER_1 = [
    (1, 10, 100, P, 0, 1),
    (1, 11, 200, N, 0, 2),
    (1, 12, 150, P, 0, 3),
    (1, 13, 300, P, 0, 9),
    (1, 16, 500, N, 0, 10),
    (1, 15, 400, P, 0, 11),
    (1, 17, 600, N, 0, 12),
    (1, 14, 300, N, 1, 1),
]
USER_1_ORDER = [10, 12, 11, 13, 14, 15, 16, 17]


def sequence_items(sequences, s: int) -> list[int]:
    return sequences.item_ids.to_pylist()[sequences.offsets[s] : sequences.offsets[s + 1]]


def test_sorted_by_time_with_ties_in_file_order() -> None:
    sequences, stats = build_sequences(events(USER_1))
    assert sequences.user_ids.to_pylist() == [1]
    assert sequence_items(sequences, 0) == USER_1_ORDER
    assert sequences.actions.tolist() == [P, P, N, P, N, P, N, N]
    assert stats.rows_in == 8 and sum(stats.rows_dropped.values()) == 0


def test_ties_within_one_file_keep_row_order_even_when_rows_arrive_shuffled() -> None:
    rows = [(7, 3, 50, P, 0, 3), (7, 1, 50, P, 0, 1), (7, 2, 50, N, 0, 2), (7, 4, 10, P, 2, 1)]
    sequences, _ = build_sequences(events(rows))
    assert sequence_items(sequences, 0) == [4, 1, 2, 3]


def test_fast_sort_path_equals_four_key_lexsort() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    user = rng.integers(0, 50, n)
    ts = rng.integers(0, 40, n)  # many ties
    file_index = np.sort(rng.integers(0, 3, n))
    row = np.arange(1, n + 1)
    expected = np.lexsort((row, file_index, ts, user))
    assert np.array_equal(sort_order(user, ts, file_index, row), expected)
    shuffled = rng.permutation(n)  # not in file order: the lexsort fallback
    got = sort_order(user[shuffled], ts[shuffled], file_index[shuffled], row[shuffled])
    assert np.array_equal(shuffled[got], expected)


def test_duplicates_are_dropped_keeping_the_first_and_counted() -> None:
    rows = [
        (2, 20, 10, P, 0, 1),
        (2, 21, 20, N, 0, 2),
        (2, 20, 10, P, 0, 3),  # exact duplicate of row 1
        (2, 20, 10, N, 0, 4),  # same item and time, other action: kept
        (2, 22, 20, N, 0, 5),  # same time, other item: kept
        (2, 21, 20, N, 1, 7),  # duplicate of row 2, in another file
        (2, 23, 30, P, 0, 6),
    ]
    sequences, stats = build_sequences(events(rows))
    assert stats.rows_dropped[DUPLICATE] == 2
    assert sequence_items(sequences, 0) == [20, 20, 21, 22, 23]
    assert sequences.actions.tolist() == [P, N, N, N, P]


def test_duplicate_mask_matches_pandas_on_random_rows() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame(
        {
            "user": np.sort(rng.integers(0, 30, n)),
            "ts": rng.integers(0, 5, n),
            "item": rng.integers(0, 4, n),
            "action": rng.integers(0, 2, n),
        }
    ).sort_values(["user", "ts"], kind="stable")
    cols = [frame[c].to_numpy() for c in ("user", "ts", "item", "action")]
    got = duplicate_mask(*cols)
    assert got.sum() > 0
    assert np.array_equal(got, frame.duplicated(["user", "ts", "item", "action"]).to_numpy())


def test_short_sequences_and_sequences_without_a_target_are_dropped_and_counted() -> None:
    rows = [
        *USER_1,
        (2, 20, 10, P, 0, 20),
        (2, 21, 20, P, 0, 21),  # user 2: two interactions -> short
        (3, 30, 10, N, 0, 30),
        (3, 31, 20, N, 0, 31),
        (3, 32, 30, N, 0, 32),  # user 3: no positive at all
        (4, 40, 10, P, 0, 40),
        (4, 41, 20, N, 0, 41),
        (4, 42, 30, N, 0, 42),  # user 4: only the first interaction is positive
    ]
    sequences, stats = build_sequences(events(rows), min_length=3)
    assert sequences.user_ids.to_pylist() == [1]
    assert stats.rows_dropped[SHORT_SEQUENCE] == 2
    assert stats.rows_dropped[NO_POSITIVE_TARGET] == 6
    assert stats.sequences_in == 4
    assert dict(stats.sequences_dropped) == {SHORT_SEQUENCE: 1, NO_POSITIVE_TARGET: 2}
    used = sequences.num_interactions
    check_row_accounting(stats.rows_in, used, dict(stats.rows_dropped))
    with pytest.raises(AssertionError, match="row accounting"):
        check_row_accounting(stats.rows_in, used - 1, dict(stats.rows_dropped))


def test_consecutive_repeats_are_dropped_only_when_asked() -> None:
    rows = [(5, 1, 10, P, 0, 1), (5, 1, 20, P, 0, 2), (5, 1, 30, N, 0, 3), (5, 2, 40, P, 0, 4)]
    kept, stats = build_sequences(events(rows), dedup_consecutive=False)
    assert kept.num_interactions == 4 and stats.rows_dropped[CONSECUTIVE_REPEAT] == 0
    deduped, stats = build_sequences(events(rows), dedup_consecutive=True)
    assert sequence_items(deduped, 0) == [1, 1, 2]  # the negative repeat is not the same action
    assert stats.rows_dropped[CONSECUTIVE_REPEAT] == 1


def test_string_ids_are_sorted_and_kept_as_strings() -> None:
    table = events(USER_1)
    table = table.set_column(0, "user_id", pa.array(["u1"] * 8))
    table = table.set_column(1, "item_id", table["item_id"].cast(pa.string()))
    sequences, _ = build_sequences(table)
    assert sequences.user_ids.to_pylist() == ["u1"]
    assert sequence_items(sequences, 0) == [str(i) for i in USER_1_ORDER]


def identity_vocab(sequences) -> np.ndarray:
    return sequences.item_codes.astype(np.int32)  # item id == vocabulary index


def test_leave_one_out_test_and_training_parts() -> None:
    sequences, _ = build_sequences(events(USER_1))
    plan = splits.leave_one_out(sequences, np.array([False]))
    index = identity_vocab(sequences)
    test, unknown = splits.eval_table(sequences, plan.test_target, plan.test_end, index)
    row = test.to_pylist()[0]
    assert row["target"] == 15  # the last positive
    assert row["items"] == [10, 12, 11, 13, 14]  # everything before it, both actions
    assert row["actions"] == [P, P, N, P, N]
    assert row["heldout_rejected"] == [16, 17]  # negatives after the target
    assert unknown == {"target": 0, "input": 0, "heldout_rejected": 0}
    train = splits.train_table(sequences, plan, index).to_pylist()[0]
    assert train["items"] == [10, 12, 11, 13, 14] and train["actions"] == [P, P, N, P, N]
    val, _ = splits.eval_table(sequences, plan.val_target, plan.val_end, index)
    assert val.num_rows == 0


def test_leave_one_out_validation_user() -> None:
    sequences, _ = build_sequences(events(USER_1))
    plan = splits.leave_one_out(sequences, np.array([True]))
    index = identity_vocab(sequences)
    val = splits.eval_table(sequences, plan.val_target, plan.val_end, index)[0].to_pylist()[0]
    assert val["target"] == 13  # the last positive before the test target
    assert val["items"] == [10, 12, 11]
    assert val["heldout_rejected"] == [14]  # negatives between the two targets
    test = splits.eval_table(sequences, plan.test_target, plan.test_end, index)[0].to_pylist()[0]
    assert test["target"] == 15 and test["items"] == [10, 12, 11, 13, 14]
    train = splits.train_table(sequences, plan, index).to_pylist()[0]
    assert train["items"] == [10, 12, 11]  # stops before the validation target


def test_validation_needs_an_earlier_positive_with_history() -> None:
    rows = [(9, 1, 10, P, 0, 1), (9, 2, 20, N, 0, 2), (9, 3, 30, P, 0, 3)]
    sequences, _ = build_sequences(events(rows))
    _, val_target = splits.leave_one_out_targets(sequences)
    assert val_target.tolist() == [splits.NONE]  # the only earlier positive is the first event
    with pytest.raises(ValueError, match="no validation target"):
        splits.leave_one_out(sequences, np.array([True]))


def test_unknown_items_in_evaluation_are_counted_not_silently_dropped() -> None:
    sequences, _ = build_sequences(events(USER_1))
    plan = splits.leave_one_out(sequences, np.array([False]))
    index = identity_vocab(sequences)
    index[sequence_items(sequences, 0).index(12)] = 0  # an input item unknown
    index[sequence_items(sequences, 0).index(17)] = 0  # a held-out rejected item unknown
    test, unknown = splits.eval_table(sequences, plan.test_target, plan.test_end, index)
    assert unknown == {"target": 0, "input": 1, "heldout_rejected": 1}
    assert test.to_pylist()[0]["items"] == [10, 11, 13, 14]
    assert test.to_pylist()[0]["heldout_rejected"] == [16]
    index[sequence_items(sequences, 0).index(15)] = 0  # the target unknown: no example
    test, unknown = splits.eval_table(sequences, plan.test_target, plan.test_end, index)
    assert test.num_rows == 0 and unknown["target"] == 1


def test_temporal_split_by_cutoffs() -> None:
    sequences, _ = build_sequences(events(USER_1))  # times 100 150 200 300 300 400 500 600
    plan = splits.temporal(sequences, val_cutoff=250, test_cutoff=450)
    index = identity_vocab(sequences)
    train = splits.train_table(sequences, plan, index).to_pylist()[0]
    assert train["items"] == [10, 12, 11]  # before 250
    val = splits.eval_table(sequences, plan.val_target, plan.val_end, index)[0].to_pylist()[0]
    assert val["target"] == 13  # first positive in [250, 450)
    assert val["items"] == [10, 12, 11]
    assert val["heldout_rejected"] == [14]  # negatives after it, before 450
    test = splits.eval_table(sequences, plan.test_target, plan.test_end, index)[0]
    assert test.num_rows == 0  # no positive after 450
    plan = splits.temporal(sequences, val_cutoff=250, test_cutoff=350)
    test = splits.eval_table(sequences, plan.test_target, plan.test_end, index)[0].to_pylist()[0]
    assert test["target"] == 15 and test["heldout_rejected"] == [16, 17]


def test_quantile_cutoff_from_histogram() -> None:
    timestamps = np.arange(1000, 2000)  # uniform: the 0.8 quantile is 1800
    histogram = splits.timestamp_histogram(timestamps, 1000, 10, 100)
    assert histogram.sum() == 1000
    assert splits.quantile_cutoff(histogram, 1000, 10, 0.8) == 1800
    assert (timestamps < 1800).mean() == pytest.approx(0.8)


def test_validation_keys_are_deterministic_and_seeded() -> None:
    users = pa.array([1, 2, 3, 4], pa.int64())
    a = splits.validation_keys(users, seed=1)
    assert np.array_equal(a, splits.validation_keys(users, seed=1))
    assert not np.array_equal(a, splits.validation_keys(users, seed=2))
    assert len(set(a.tolist())) == 4


def test_ranges_concatenates_index_ranges() -> None:
    owner, index = splits.ranges(np.array([0, 5, 9]), np.array([2, 5, 12]))
    assert owner.tolist() == [0, 0, 2, 2, 2] and index.tolist() == [0, 1, 9, 10, 11]


def test_vocabulary_orders_by_training_frequency_and_leaves_out_unseen_items() -> None:
    counts = pa.concat_tables(
        [
            vocab.count_items(pa.array([5, 7, 7, 9, 9], pa.int64())),
            vocab.count_items(pa.array([9, 5, 3], pa.int64())),
            vocab.count_items(pa.array([3], pa.int64()), weights=np.array([-1])),  # removed
        ]
    )
    table = vocab.build_vocab(counts)
    assert table["item_id"].to_pylist() == [9, 5, 7]  # 3x, then 2x ties by id
    assert table["index"].to_pylist() == [1, 2, 3]
    assert vocab.lookup(table, pa.array([7, 3, 9, 100], pa.int64())).tolist() == [3, 0, 1, 0]
