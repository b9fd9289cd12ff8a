"""Read a prepared dataset: for Ray Train (a Ray Data stream) and in-process (no Ray).

Why both paths build their tensors with ``negrec.batching``: the distributed and the
in-process training loops must see exactly the same layout (left padding, next-positive
targets, rejected labels); only where the rows are read differs. A dataset without a
manifest is refused: it is an unfinished ``prepare``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from negrec import storage
from negrec.action_codes import POSITIVE
from negrec.batching import (
    EvalBatch,
    TrainBatch,
    eval_arrays,
    eval_batch_from_arrays,
    train_batch_from_arrays,
    training_arrays,
)
from negrec.data.files import read_parquet
from negrec.data.manifest import Manifest, read_manifest
from negrec.errors import NegrecError

if TYPE_CHECKING:
    import ray.data

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class PreparedData:
    """A committed prepared dataset: its manifest and the URIs of its parts."""

    uri: str
    manifest: Manifest
    num_items: int
    split_files: dict[str, list[str]]
    clusters_uri: str | None
    storage: storage.StorageOptions | None = None


def load_prepared(uri: str, options: storage.StorageOptions | None = None) -> PreparedData:
    """Open the dataset ``negrec prepare`` committed at ``uri`` (refused without manifest)."""
    manifest = read_manifest(uri, options)
    clusters = manifest.item_clusters
    return PreparedData(
        uri=uri,
        manifest=manifest,
        num_items=manifest.num_items,
        split_files={
            name: [storage.join(uri, f) for f in manifest.splits[name].files]
            for name in SPLIT_NAMES
        },
        clusters_uri=storage.join(uri, clusters) if clusters else None,
        storage=options,
    )


def list_column(column: pa.Array | pa.ChunkedArray) -> list[np.ndarray]:
    """A list<int> column as one numpy array per row (views, no per-row Python parsing)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    return np.split(values, offsets[1:-1] - offsets[0]) if len(column) else []


def _training_batch(batch: pa.Table, max_len: int, windows: bool) -> dict[str, np.ndarray]:
    return training_arrays(
        list_column(batch["items"]), list_column(batch["actions"]), max_len, windows
    )


def train_dataset(prepared: PreparedData, max_len: int, windows: bool = False) -> ray.data.Dataset:
    """Training rows as a Ray Data stream of fixed-length int64 arrays ``items, actions,
    targets, rejected`` (each ``(max_len,)``), ready for ``iter_torch_batches``; with
    ``windows``, every window of a long sequence (``training_arrays``)."""
    import ray.data

    files = prepared.split_files["train"]
    if not files:
        raise NegrecError(f"{prepared.uri} has no training rows; re-run prepare on more data")
    fs, _ = storage.resolve(prepared.uri, prepared.storage)
    paths = [storage.resolve(uri, prepared.storage)[1] for uri in files]
    return (
        ray.data.read_parquet(paths, filesystem=fs)
        .select_columns(["items", "actions"])
        .map_batches(
            _training_batch,
            fn_kwargs={"max_len": max_len, "windows": windows},
            batch_format="pyarrow",
        )
    )


IN_MEMORY_BLOCK_ROWS = 4096


def train_dataset_in_memory(
    prepared: PreparedData, max_len: int, windows: bool = False
) -> ray.data.Dataset:
    """The same rows as :func:`train_dataset`, built on the driver and put in the object
    store as they are. For data that fits this skips Ray Data's read and map tasks,
    whose worker start-up dominated a small run's start (17.5 s of a 1,500-row
    ``negrec train``'s first minute, docs/benchmarks.md); blocks of
    ``IN_MEMORY_BLOCK_ROWS`` rows keep the per-worker split even."""
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    table = read_split(prepared, "train")
    if table is None:
        raise NegrecError(f"{prepared.uri} has no training rows; re-run prepare on more data")
    arrays = training_arrays(
        list_column(table["items"]), list_column(table["actions"]), max_len, windows
    )
    rows = pa.table({name: ArrowTensorArray.from_numpy(a) for name, a in arrays.items()})
    return ray.data.from_arrow(
        [
            rows.slice(start, IN_MEMORY_BLOCK_ROWS)
            for start in range(0, rows.num_rows, IN_MEMORY_BLOCK_ROWS)
        ]
    )


def read_split(prepared: PreparedData, split: str) -> pa.Table | None:
    """One split's rows in manifest order (None when the split is empty)."""
    if split not in SPLIT_NAMES:
        raise NegrecError(f"unknown split '{split}'; choose one of {', '.join(SPLIT_NAMES)}")
    tables = [read_parquet(uri, prepared.storage) for uri in prepared.split_files[split]]
    return pa.concat_tables(tables) if tables else None


def local_train_batches(
    prepared: PreparedData, batch_size: int, max_len: int, seed: int, epoch: int
) -> Iterator[TrainBatch]:
    """Training batches in process, shuffled per epoch (the same order for the same
    ``seed`` and ``epoch``); the last batch may be smaller."""
    table = read_split(prepared, "train")
    if table is None:
        return
    items, actions = list_column(table["items"]), list_column(table["actions"])
    order = np.random.default_rng([seed, epoch]).permutation(len(items))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        arrays = training_arrays([items[r] for r in rows], [actions[r] for r in rows], max_len)
        yield train_batch_from_arrays(arrays)


def local_eval_batches(
    prepared: PreparedData, split: str, batch_size: int, max_len: int
) -> Iterator[EvalBatch]:
    """Validation or test batches in process, in file order."""
    table = read_split(prepared, split)
    if table is not None:
        yield from eval_batches(table, batch_size, max_len)


def eval_batches(table: pa.Table, batch_size: int, max_len: int) -> Iterator[EvalBatch]:
    """Batches of evaluation rows (a val/test split's table), in row order."""
    for start in range(0, table.num_rows, batch_size):
        rows = table.slice(start, batch_size)
        arrays = eval_arrays(
            list_column(rows["items"]),
            list_column(rows["actions"]),
            rows["target"].to_numpy(),
            list_column(rows["heldout_rejected"]),
            max_len,
        )
        yield eval_batch_from_arrays(arrays)


def item_counts(prepared: PreparedData) -> torch.Tensor:
    """Positive training interactions per vocabulary index (``num_items + 1``; index 0,
    padding, is 0): the ranking of the most-popular baseline."""
    counts = torch.zeros(prepared.num_items + 1, dtype=torch.int64)
    table = read_split(prepared, "train")
    if table is not None:
        items = pc.list_flatten(table["items"]).to_numpy()
        actions = pc.list_flatten(table["actions"]).to_numpy()
        positive = items[actions == POSITIVE].astype(np.int64)
        counts += torch.as_tensor(np.bincount(positive, minlength=prepared.num_items + 1))
    return counts


def item_clusters(prepared: PreparedData) -> torch.Tensor | None:
    """Cluster id per vocabulary index (``num_items + 1``; -1 for padding and items
    without a cluster); None when the source had no clusters. Non-integer cluster
    labels are numbered in sorted order."""
    if prepared.clusters_uri is None:
        return None
    table = read_parquet(prepared.clusters_uri, prepared.storage)
    cluster = table["cluster"].combine_chunks()
    if not pa.types.is_integer(cluster.type):
        labels = pc.unique(cluster).sort()
        cluster = pc.index_in(cluster, value_set=labels)
    out = torch.full((prepared.num_items + 1,), -1, dtype=torch.int64)
    index = torch.as_tensor(table["index"].to_numpy().astype(np.int64))
    out[index] = torch.as_tensor(cluster.to_numpy().astype(np.int64))
    return out
