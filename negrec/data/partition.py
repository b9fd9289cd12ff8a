"""Stage 1 of prepare: one input file -> canonical events, hash-partitioned by user.

Why our own partitioning instead of a Ray Data shuffle: every later step needs *all*
events of a user in one place, and a hash shuffle through the object store is the slow
part of ``groupby`` (measured in the brief). Here each task reads one file through the
format adapters, assigns every row the partition ``hash(user_id) % P``, and appends
the rows to one Arrow IPC file per partition (``<work>/p=00007/f-000003.arrow``);
stage 2 then reads one partition directory per task. Temporary files are Arrow IPC,
not Parquet, because they are written once and read once and IPC costs almost nothing
to encode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from negrec import storage
from negrec.data.actions import ActionMapping
from negrec.data.adapters import SourceSpec, iter_normalised

FLUSH_ROWS = 1 << 20  # rows buffered before they are split and appended to partitions
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


@dataclass
class FileStats:
    """What one input file contributed (summed into the manifest)."""

    file_index: int
    rows_in: int = 0
    rows_valid: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    min_timestamp: int | None = None
    max_timestamp: int | None = None


def partition_of(user_ids: pa.Array | pa.ChunkedArray, partitions: int) -> np.ndarray:
    """Partition of each user: a fixed (unseeded) hash, so every process agrees."""
    hashes = pd.util.hash_array(user_ids.to_numpy(zero_copy_only=False))
    return (hashes % np.uint64(partitions)).astype(np.int64)


def partition_dir(work_uri: str, partition: int) -> str:
    return storage.join(work_uri, f"p={partition:05d}")


class _PartitionWriters:
    """One lazily opened IPC stream per partition that this file has users in."""

    def __init__(self, work_uri: str, file_index: int, options: storage.StorageOptions | None):
        self.work_uri, self.file_index, self.options = work_uri, file_index, options
        self.open: dict[int, tuple[pa.NativeFile, pa.ipc.RecordBatchStreamWriter]] = {}

    def append(self, partition: int, table: pa.Table) -> None:
        if partition not in self.open:
            uri = storage.join(
                partition_dir(self.work_uri, partition), f"f-{self.file_index:06d}.arrow"
            )
            stream = storage.open_output_stream(uri, self.options)
            self.open[partition] = (
                stream,
                pa.ipc.new_stream(stream, table.schema, options=IPC_OPTIONS),
            )
        self.open[partition][1].write_table(table)

    def close(self) -> None:
        for stream, writer in self.open.values():
            writer.close()
            stream.close()


def _split(table: pa.Table, partitions: int, writers: _PartitionWriters) -> None:
    """Append each row to its user's partition; a stable sort keeps file order."""
    part = partition_of(table["user_id"], partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    ordered = table.take(pa.array(order))
    for p in np.flatnonzero(np.diff(bounds)):
        writers.append(int(p), ordered.slice(int(bounds[p]), int(bounds[p + 1] - bounds[p])))


def partition_file(
    spec: SourceSpec,
    file_index: int,
    mapping: ActionMapping,
    partitions: int,
    work_uri: str,
    options: storage.StorageOptions | None,
) -> FileStats:
    """Read, validate and normalise one file and append its rows to the user partitions."""
    stats = FileStats(file_index=file_index)
    writers = _PartitionWriters(work_uri, file_index, options)
    pending: list[pa.Table] = []
    buffered = 0

    def flush() -> None:
        nonlocal buffered
        if buffered:
            _split(pa.concat_tables(pending), partitions, writers)
        pending.clear()
        buffered = 0

    try:
        for batch in iter_normalised(spec, spec.files[file_index], mapping, options):
            stats.rows_in += batch.rows_in
            stats.rows_valid += batch.rows_kept
            stats.dropped.update(batch.dropped)
            if batch.rows_kept == 0:
                continue
            timestamps = batch.table["timestamp"].to_numpy()
            low, high = int(timestamps.min()), int(timestamps.max())
            stats.min_timestamp = (
                low if stats.min_timestamp is None else min(stats.min_timestamp, low)
            )
            stats.max_timestamp = (
                high if stats.max_timestamp is None else max(stats.max_timestamp, high)
            )
            pending.append(batch.table)
            buffered += batch.rows_kept
            if buffered >= FLUSH_ROWS:
                flush()
        flush()
    finally:
        writers.close()
    return stats


def read_partition(
    work_uri: str, partition: int, options: storage.StorageOptions | None
) -> pa.Table | None:
    """All events of one partition, files in input-file order; None when it is empty."""
    directory = partition_dir(work_uri, partition)
    if not storage.exists(directory, options):
        return None
    tables = []
    for uri in storage.list_files(directory, ".arrow", options):
        with storage.open_input_stream(uri, options, compression=None) as stream:
            tables.append(pa.ipc.open_stream(stream).read_all())
    return pa.concat_tables(tables) if tables else None
