"""The synthetic event log of ``negrec generate``, written to local or object storage.

Layout under ``--out`` (a directory or ``s3://`` prefix this stage owns)::

    events/part-00000.parquet ...   user_id, item_id, timestamp (s), event
    item_clusters.parquet           item_id, cluster (ground truth for responsiveness)
    generator.json                  parameters and counts; written last = commit marker

Files hold at most ``--chunk-events`` rows and are written one at a time, so memory
stays at one chunk plus one generation block however large the log is. Everything is
staged under a hidden sibling prefix and committed at the end (see
``negrec.storage.commit``): a crash never leaves a log that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from negrec import storage
from negrec.data.synthetic import NEGATIVE_EVENTS, SyntheticParams, build_world, item_clusters
from negrec.data.synthetic import iter_blocks as iter_event_blocks
from negrec.errors import NegrecError
from negrec.strict import StrictModel

MARKER = "generator.json"
EVENTS_DIR = "events"


class GenerateConfig(StrictModel):
    """What to generate and where; the defaults make a log the demo trains on in minutes."""

    out: str = Field(description="Output directory or s3:// prefix.")
    users: int = Field(10_000, ge=1)
    items: int = Field(2_000, ge=2)
    events: int = Field(500_000, ge=1)
    seed: int = 0
    chunk_events: int = Field(1_000_000, ge=1, description="Most rows per Parquet file.")


def _write_chunks(
    blocks: Iterator[pa.Table], events_uri: str, chunk_events: int, options: storage.StorageOptions
) -> list[str]:
    """Re-cut the block stream into files of exactly ``chunk_events`` rows (the last fewer)."""
    names: list[str] = []

    def flush(table: pa.Table) -> None:
        name = f"part-{len(names):05d}.parquet"
        _write_parquet(storage.join(events_uri, name), table, options)
        names.append(name)

    pending: pa.Table | None = None
    for block in blocks:
        pending = block if pending is None else pa.concat_tables([pending, block])
        while pending.num_rows >= chunk_events:
            flush(pending.slice(0, chunk_events))
            pending = pending.slice(chunk_events)
    if pending is not None and pending.num_rows:
        flush(pending)
    return names


def _counting(blocks: Iterator[pa.Table], counts: Counter[str]) -> Iterator[pa.Table]:
    for block in blocks:
        for entry in pc.value_counts(block["event"]).to_pylist():
            counts[entry["values"]] += entry["counts"]
        yield block


def _write_parquet(uri: str, table: pa.Table, options: storage.StorageOptions) -> None:
    with (
        storage.open_output_stream(uri, options) as stream,
        storage.translate_errors(uri, "write", options),
    ):
        pq.write_table(table, stream)


def run(config: GenerateConfig, options: storage.StorageOptions | None = None) -> dict[str, Any]:
    """Generate, write and commit the log; returns the summary also stored in generator.json."""
    options = storage.StorageOptions.from_env() if options is None else options
    params = SyntheticParams(
        users=config.users, items=config.items, events=config.events, seed=config.seed
    )
    started = time.perf_counter()
    world = build_world(params)
    staging = storage.staging_uri(config.out)
    try:
        counts: Counter[str] = Counter()
        blocks = _counting(iter_event_blocks(params, world), counts)
        files = _write_chunks(
            blocks, storage.join(staging, EVENTS_DIR), config.chunk_events, options
        )
        _write_parquet(
            storage.join(staging, "item_clusters.parquet"), item_clusters(params, world), options
        )
        negatives = sum(counts[name] for name in NEGATIVE_EVENTS)
        summary: dict[str, Any] = {
            "format": "synthetic",
            "events": params.events,
            "users": int((world.lengths > 0).sum()),
            "items": params.items,
            "clusters": params.num_clusters,
            "files": [f"{EVENTS_DIR}/{name}" for name in files],
            "chunk_events": config.chunk_events,
            "event_counts": dict(sorted(counts.items())),
            "negative_share": round(negatives / params.events, 6),
            "params": params.to_dict(),
        }
        storage.write_text(storage.join(staging, MARKER), json.dumps(summary, indent=2), options)
        storage.commit(staging, config.out, MARKER, options)
    except BaseException:
        with contextlib.suppress(NegrecError):  # keep the original error, not the cleanup's
            storage.delete_tree(staging, options)
        raise
    seconds = time.perf_counter() - started
    return {
        **summary,
        "out": config.out,
        "seconds": round(seconds, 3),
        "events_per_s": round(params.events / seconds),
    }
