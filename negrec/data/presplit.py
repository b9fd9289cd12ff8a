"""``--format sasrec``: a split that is already made, in SASRec's ``user item`` text format.

Why: published benchmarks fix their split (the gSASRec port's ML-1M split among
them), and users coming from SASRec code hold their data as ``user item`` lines, one
interaction per line, each user's lines in time order. Re-deriving such a split from
timestamps would not reproduce it, so this reader takes it as given:

    train.txt   every user's training sequence
    val.txt     each validation user's input followed by its held-out target (last line)
    test.txt    each test user's input followed by its held-out target (last line)

Every interaction is positive (the format has no actions). Items keep their ids; the
vocabulary is built from the training lines as for every other format, so an item
that appears only in validation or test is out of vocabulary and counted in the
manifest's ``unknown_items``. The output is the layout every prepared dataset has
(``negrec prepare``), written under a staging prefix and committed with the manifest
last.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from negrec import storage
from negrec.data import vocab
from negrec.data.files import write_parquet
from negrec.data.layouts import Layout
from negrec.data.manifest import (
    MANIFEST,
    Manifest,
    Source,
    SplitInfo,
    SplitOutput,
    library_versions,
    write_manifest,
)
from negrec.data.prepare_config import PrepareConfig
from negrec.data.prepare_progress import PrepareProgress
from negrec.data.readers import discover
from negrec.data.split_tasks import SPLITS, VOCAB
from negrec.errors import NegrecError


def _read_pairs(uri: str, layout: Layout, options: storage.StorageOptions) -> pa.Table:
    """(user, item) int64 columns of one ``user item`` file (``layout``: the sasrec
    entry's, in ``negrec.data.formats``), in file order."""
    with storage.open_input_stream(uri, options) as stream:
        try:
            table = csv.read_csv(
                stream,
                read_options=csv.ReadOptions(column_names=["user", "item"]),
                parse_options=csv.ParseOptions(delimiter=layout.delimiter),
                convert_options=csv.ConvertOptions(
                    column_types={"user": pa.int64(), "item": pa.int64()}
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise NegrecError(f"{uri}: not a SASRec file of {layout.describe}: {error}") from None
    if table.num_rows and (table["user"].null_count or table["item"].null_count):
        row = int(np.flatnonzero(pc.is_null(table["item"]).to_numpy(zero_copy_only=False))[0])
        raise NegrecError(f"{uri}: line {row + 1} has no item; every line must be 'user item'")
    return table


def _sequences(pairs: pa.Table) -> tuple[np.ndarray, list[np.ndarray]]:
    """Users in first-appearance order and each user's items in file order."""
    users = pairs["user"].to_numpy()
    items = pairs["item"].to_numpy()
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    per_user = np.split(items[order], starts[1:]) if len(users) else []
    first_seen = np.argsort(order[starts], kind="stable")
    return sorted_users[starts][first_seen], [per_user[i] for i in first_seen]


def _list_array(rows: list[np.ndarray], dtype: pa.DataType) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
    values = np.concatenate(rows) if rows else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, dtype))


def _split_table(
    name: str, users: np.ndarray, sequences: list[np.ndarray], table: pa.Table
) -> tuple[pa.Table, dict[str, int]]:
    """One split's rows as vocabulary indices; evaluation rows hold out their last item.

    An evaluation row whose target is out of vocabulary cannot be scored: it is dropped
    and its lines counted under ``unknown_target``.
    """
    index_of = [vocab.lookup(table, pa.array(s)) for s in sequences]
    counts = {"unknown": int(sum((i == 0).sum() for i in index_of)), "unknown_target": 0}
    if name != "train":
        keep = [i for i, row in enumerate(index_of) if row[-1] > 0]
        counts["unknown_target"] = sum(len(index_of[i]) for i in set(range(len(users))) - set(keep))
        users, index_of = users[keep], [index_of[i] for i in keep]
    if name == "train":
        items = index_of
        columns: dict[str, pa.Array] = {}
    else:
        items = [i[:-1] for i in index_of]
        columns = {
            "target": pa.array([int(i[-1]) for i in index_of], pa.int32()),
            "heldout_rejected": _list_array([np.zeros(0)] * len(items), pa.int32()),
        }
    out = pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "items": _list_array(items, pa.int32()),
            "actions": _list_array([np.zeros(len(i)) for i in items], pa.int8()),
            **columns,
        }
    )
    return out, counts


PRESPLIT_STAGES = ["read", "vocabulary", "write_splits", "commit"]


def prepare_presplit(
    config: PrepareConfig, options: storage.StorageOptions, progress: bool = False
) -> Manifest:
    """Read ``train.txt``, ``val.txt``, ``test.txt`` under ``config.events`` (found by
    the format's discovery rule) and commit them as a prepared dataset at
    ``config.out``; returns the manifest. ``progress`` shows the stages as they finish."""
    with PrepareProgress(PRESPLIT_STAGES, progress) as shown:
        return _prepare_presplit(config, options, shown)


def _prepare_presplit(
    config: PrepareConfig, options: storage.StorageOptions, shown: PrepareProgress
) -> Manifest:
    started = time.perf_counter()
    spec = discover(config.events, config.format, options)
    uris = dict(zip(SPLITS, spec.files, strict=True))
    pairs = {name: _read_pairs(uri, spec.layout_of(uri)[1], options) for name, uri in uris.items()}
    parsed = {name: _sequences(table) for name, table in pairs.items()}
    shown.stage_done("read", ", ".join(f"{name} {len(parsed[name][0]):,} users" for name in SPLITS))
    for name in ("val", "test"):
        for user, sequence in zip(*parsed[name], strict=True):
            if len(sequence) < 2:
                raise NegrecError(
                    f"{uris[name]}: user {user} has {len(sequence)} line; an evaluation "
                    "user needs an input and a target (its last line)"
                )
    table = vocab.build_vocab(vocab.count_items(pairs["train"]["item"].combine_chunks()))
    shown.stage_done("vocabulary", f"{table.num_rows:,} items")
    stage = storage.staging_uri(config.out)
    splits: dict[str, SplitOutput] = {}
    unknown: dict[str, int] = {}
    dropped = 0
    try:
        write_parquet(storage.join(stage, VOCAB), table, options)
        for name in SPLITS:
            rows, counts = _split_table(name, *parsed[name], table)
            relative = f"{name}/part-00000.parquet"
            write_parquet(storage.join(stage, relative), rows, options)
            splits[name] = SplitOutput(rows=rows.num_rows, files=[relative])
            if counts["unknown"]:
                unknown[name] = counts["unknown"]
            dropped += counts["unknown_target"]
            shown.task("write_splits", len(splits), len(SPLITS), f"{name} {rows.num_rows:,} rows")
        rows_in = sum(t.num_rows for t in pairs.values())
        manifest = Manifest(
            created_unix_s=round(time.time(), 3),
            source=Source(
                events=config.events,
                format=config.format,
                files=list(uris.values()),
                actions="all interactions positive (sasrec format)",
                item_clusters=None,
            ),
            rows_in=rows_in,
            rows_used=rows_in - dropped,
            dropped={"unknown_target": dropped} if dropped else {},
            users_in=len(parsed["train"][0]),
            users_out=len(parsed["train"][0]),
            users_dropped={},
            num_items=table.num_rows,
            vocab=VOCAB,
            item_clusters=None,
            split=SplitInfo(
                method="given",
                validation_users=splits["val"].rows,
                validation_eligible_users=None,
                cutoffs_ms=None,
            ),
            splits=splits,
            train_interactions=pairs["train"].num_rows,
            unknown_items=unknown,
            partitions=1,
            config=config,
            versions=library_versions(),
        )
        write_manifest(stage, manifest, options)
        storage.commit(stage, config.out, MANIFEST, options)
    except BaseException:
        storage.delete_tree(stage, options)
        raise
    shown.stage_done("commit", config.out)
    return manifest.model_copy(update={"seconds": round(time.perf_counter() - started, 3)})
