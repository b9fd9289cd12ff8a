"""Stages 2-4 of prepare: the work of one task on one user partition (or on the counts).

* :func:`analyse_partition` (one task per partition): clean the partition into
  sequences, count the items of the training sequences, and list the validation
  candidates (leave-one-out) with how choosing each one would change those counts.
* :func:`build_vocabulary` (one task): sum the counts, pick the validation users, write
  ``vocab.parquet`` (and ``item_clusters.parquet`` when the source has clusters).
* :func:`write_partition` (one task per partition): redo the deterministic cleaning,
  apply the split and the vocabulary, write the partition's train/val/test shards.

Why candidates: the vocabulary must come from training data only, and a validation
user's training sequence is shorter than everyone else's, so the counts depend on a
*global* choice of validation users (the ``K`` smallest seeded keys). Each partition
offers its own ``val_users`` smallest keys (a superset of its share of the global ``K``)
with the count changes they would cause; the vocabulary task picks ``K`` and applies
exactly those changes, so no partition is read twice before the vocabulary exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negrec import storage
from negrec.data import splits, vocab
from negrec.data.files import read_parquet, write_parquet
from negrec.data.partition import read_partition
from negrec.data.prepare_config import PrepareConfig
from negrec.data.sequences import CleaningStats, Sequences, build_sequences

COUNTS_DIR = "counts"
CANDIDATES_DIR = "candidates"
VOCAB = "vocab.parquet"
CLUSTERS = "item_clusters.parquet"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Cutoffs:
    """Temporal split times (ms): validation from ``val``, test from ``test``."""

    val: int
    test: int


@dataclass
class PartitionSummary:
    """Stage 2 result of one partition (plain numbers, summed by the driver)."""

    partition: int
    rows_in: int = 0
    rows_used: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)
    users_in: int = 0
    users_out: int = 0
    users_dropped: dict[str, int] = field(default_factory=dict)
    validation_eligible: int = 0


@dataclass
class PartitionOutput:
    """Stage 4 result of one partition: files written, rows per split, unknown items."""

    partition: int
    files: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    train_interactions: int = 0
    unknown_items: dict[str, int] = field(default_factory=dict)


def _sequences(
    config: PrepareConfig, work_uri: str, partition: int, options: storage.StorageOptions | None
) -> tuple[Sequences, CleaningStats] | None:
    """The partition's cleaned sequences (deterministic: stages 2 and 4 both call it)."""
    table = read_partition(work_uri, partition, options)
    if table is None:
        return None
    return build_sequences(table, config.min_sequence_length, config.dedup_consecutive)


def _plan(
    config: PrepareConfig,
    sequences: Sequences,
    cutoffs: Cutoffs | None,
    threshold: int | None,
) -> splits.SplitPlan:
    """The split plan; for leave-one-out, validation users are the eligible users whose
    key is at most ``threshold`` (None: no validation users)."""
    if config.split == "temporal":
        assert cutoffs is not None
        return splits.temporal(sequences, cutoffs.val, cutoffs.test)
    is_validation = np.zeros(sequences.num_sequences, dtype=bool)
    if threshold is not None:
        _, val_target = splits.leave_one_out_targets(sequences)
        keys = splits.validation_keys(sequences.user_ids, config.seed)
        is_validation = (val_target != splits.NONE) & (keys <= np.uint64(threshold))
    return splits.leave_one_out(sequences, is_validation)


def _candidate_deltas(config: PrepareConfig, sequences: Sequences) -> tuple[pa.Table, int]:
    """This partition's validation candidates (its ``val_users`` smallest keys among the
    eligible users) as rows (key, item_id, delta): the change in training item counts if
    the candidate becomes a validation user. Also returns the number of eligible users.

    Every candidate has rows: as an ordinary user its training sequence runs past its
    validation target, so it holds at least two interactions (the vocabulary task
    relies on this to see every candidate's key)."""
    _, val_target = splits.leave_one_out_targets(sequences)
    eligible = np.flatnonzero(val_target != splits.NONE)
    keys = splits.validation_keys(sequences.user_ids, config.seed)
    eligible_count = len(eligible)
    eligible = eligible[np.argsort(keys[eligible])[: config.val_users]]
    chosen = np.zeros(sequences.num_sequences, dtype=bool)
    chosen[eligible] = True
    parts = []
    for plan, sign in (
        (splits.leave_one_out(sequences, chosen), 1),
        (splits.leave_one_out(sequences, np.zeros_like(chosen)), -1),
    ):
        rows = np.intersect1d(splits.training_rows(sequences, plan), eligible)
        owner, index = splits.ranges(sequences.starts[rows], plan.train_end[rows])
        parts.append((keys[rows][owner], index, np.full(len(index), sign, np.int64)))
    key, index, delta = (np.concatenate(column) for column in zip(*parts, strict=True))
    table = pa.table(
        {
            "key": pa.array(key, pa.uint64()),
            "item_id": sequences.item_ids.take(pa.array(index, pa.int64())),
            "delta": pa.array(delta, pa.int64()),
        }
    )
    return table, eligible_count


def analyse_partition(
    config: PrepareConfig,
    work_uri: str,
    partition: int,
    cutoffs: Cutoffs | None,
    options: storage.StorageOptions | None,
) -> PartitionSummary:
    """Stage 2: clean, count training items (as if no user were in validation) and, for
    leave-one-out, write the validation candidates."""
    summary = PartitionSummary(partition=partition)
    built = _sequences(config, work_uri, partition, options)
    if built is None:
        return summary
    sequences, stats = built
    summary.rows_in = stats.rows_in
    summary.rows_used = sequences.num_interactions
    summary.rows_dropped = dict(stats.rows_dropped)
    summary.users_in = stats.sequences_in
    summary.users_out = sequences.num_sequences
    summary.users_dropped = dict(stats.sequences_dropped)
    name = f"p-{partition:05d}.parquet"
    plan = _plan(config, sequences, cutoffs, threshold=None)
    train_items = sequences.item_ids.take(pa.array(splits.training_indices(sequences, plan)))
    write_parquet(storage.join(work_uri, COUNTS_DIR, name), vocab.count_items(train_items), options)
    if config.split == "leave_one_out":
        candidates, summary.validation_eligible = _candidate_deltas(config, sequences)
        write_parquet(storage.join(work_uri, CANDIDATES_DIR, name), candidates, options)
    return summary


def _read_all(directory: str, options: storage.StorageOptions | None) -> pa.Table | None:
    if not storage.exists(directory, options):
        return None
    tables = [
        read_parquet(uri, options) for uri in storage.list_files(directory, ".parquet", options)
    ]
    return pa.concat_tables(tables) if tables else None


def build_vocabulary(
    work_uri: str,
    stage_uri: str,
    validation_users: int,
    clusters_uri: str | None,
    options: storage.StorageOptions | None,
) -> dict[str, int | None]:
    """Stage 3: choose the ``validation_users`` candidates with the smallest keys, sum
    the training counts with their changes, and write the vocabulary (and clusters).

    Returns ``num_items``, the key ``threshold`` (None: no validation users) and
    ``validation_users`` actually chosen.
    """
    counts = _read_all(storage.join(work_uri, COUNTS_DIR), options)
    candidates = _read_all(storage.join(work_uri, CANDIDATES_DIR), options)
    threshold = None
    chosen = 0
    if candidates is not None and validation_users > 0:
        keys = np.unique(candidates["key"].to_numpy())
        chosen = min(validation_users, len(keys))
        if chosen:
            threshold = int(keys[chosen - 1])
            selected = candidates.filter(
                pc.less_equal(candidates["key"], pa.scalar(threshold, pa.uint64()))
            )
            delta = selected.select(["item_id", "delta"]).rename_columns(["item_id", "count"])
            counts = delta if counts is None else pa.concat_tables([counts, delta])
    if counts is None:
        counts = pa.table({"item_id": pa.array([], pa.int64()), "count": pa.array([], pa.int64())})
    table = vocab.build_vocab(counts)
    write_parquet(storage.join(stage_uri, VOCAB), table, options)
    if clusters_uri is not None:
        clusters = vocab.map_clusters(table, read_parquet(clusters_uri, options))
        write_parquet(storage.join(stage_uri, CLUSTERS), clusters, options)
    return {"num_items": table.num_rows, "threshold": threshold, "validation_users": chosen}


def write_partition(
    config: PrepareConfig,
    work_uri: str,
    stage_uri: str,
    partition: int,
    cutoffs: Cutoffs | None,
    threshold: int | None,
    options: storage.StorageOptions | None,
) -> PartitionOutput:
    """Stage 4: the partition's train/val/test rows in vocabulary indices, as Parquet."""
    output = PartitionOutput(partition=partition)
    built = _sequences(config, work_uri, partition, options)
    if built is None:
        return output
    sequences, _ = built
    plan = _plan(config, sequences, cutoffs, threshold)
    index = vocab.lookup(read_parquet(storage.join(stage_uri, VOCAB), options), sequences.item_ids)
    tables = {"train": splits.train_table(sequences, plan, index)}
    for name, target, end in (
        ("val", plan.val_target, plan.val_end),
        ("test", plan.test_target, plan.test_end),
    ):
        tables[name], unknown = splits.eval_table(sequences, target, end, index)
        output.unknown_items.update({f"{name}_{where}": n for where, n in unknown.items()})
    output.train_interactions = int(
        pc.sum(pc.list_value_length(tables["train"]["items"])).as_py() or 0
    )
    for name, table in tables.items():
        output.rows[name] = table.num_rows
        if table.num_rows:
            relative = f"{name}/part-{partition:05d}.parquet"
            write_parquet(storage.join(stage_uri, relative), table, options)
            output.files[name] = relative
    return output
