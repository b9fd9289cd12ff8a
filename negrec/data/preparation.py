"""``prepare`` end to end: event log -> committed, manifest-described sequence shards.

Stages (each a set of independent Ray Data tasks, see ``negrec.data.ray_tasks``):

1. per input file: read, validate, map events to actions, hash-partition by user
   (``negrec.data.partition``);
2. per user partition: sort, clean, cut into sequences, count training items, list
   validation candidates (``negrec.data.split_tasks.analyse_partition``);
3. once: choose validation users, build the vocabulary from training counts;
4. per user partition: apply split and vocabulary, write train/val/test shards.

The temporal split adds a pass over the partitions before stage 2 that histograms the
timestamps for its cut-off times. Events only ever move between tasks through storage;
the driver sees per-task summaries. Everything is written under a hidden staging
prefix, the manifest last, and then committed (``negrec.storage.commit``): a crash or a
re-run never leaves an output that looks complete but is not.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from negrec import storage
from negrec.data import splits
from negrec.data.actions import load_mapping
from negrec.data.adapters import SourceSpec, discover
from negrec.data.formats import get_format
from negrec.data.manifest import (
    MANIFEST,
    CutoffsMs,
    Manifest,
    Source,
    SplitInfo,
    SplitOutput,
    library_versions,
    write_manifest,
)
from negrec.data.partition import FileStats, partition_file, read_partition
from negrec.data.prepare_config import PrepareConfig
from negrec.data.prepare_progress import PrepareProgress
from negrec.data.presplit import prepare_presplit
from negrec.data.ray_tasks import run_tasks
from negrec.data.split_tasks import (
    CLUSTERS,
    SPLITS,
    VOCAB,
    Cutoffs,
    PartitionOutput,
    PartitionSummary,
    analyse_partition,
    build_vocabulary,
    write_partition,
)
from negrec.errors import NegrecError
from negrec.runtime import ensure_ray

WORK_DIR = "_work"  # temporary files, inside the staging prefix, deleted before commit
CLUSTERS_SOURCE = "item_clusters.parquet"  # optional, next to the events
HISTOGRAM_BINS = 1 << 16


def _auto_partitions(
    spec: SourceSpec, config: PrepareConfig, options: storage.StorageOptions
) -> int:
    """A multiple of the CPU count (so the last wave of tasks keeps every CPU busy) with
    each task's input at most about ``partition_mib`` (which bounds a task's memory)."""
    import ray

    size = sum(storage.file_info(uri, options).size or 0 for uri in spec.files)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return cpus * max(1, math.ceil(size / (cpus * (config.partition_mib << 20))))


def _clusters_uri(events: str, options: storage.StorageOptions) -> str | None:
    """``item_clusters.parquet`` (item_id, cluster) beside the events, if there is one."""
    if storage.file_info(events, options).is_file:
        return None
    uri = storage.join(events, CLUSTERS_SOURCE)
    return uri if storage.exists(uri, options) else None


def _histogram_task(
    work: str, low: int, width: int, options: storage.StorageOptions, partition: int
) -> np.ndarray:
    table = read_partition(work, partition, options)
    if table is None:
        return np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    return splits.timestamp_histogram(table["timestamp"].to_numpy(), low, width, HISTOGRAM_BINS)


def _temporal_cutoffs(
    config: PrepareConfig,
    work: str,
    partitions: int,
    low: int,
    high: int,
    options: storage.StorageOptions,
) -> Cutoffs:
    width = max(1, math.ceil((high - low + 1) / HISTOGRAM_BINS))
    histograms = run_tasks(
        partial(_histogram_task, work, low, width, options), range(partitions), "time_histogram"
    )
    total = np.sum(histograms, axis=0)
    return Cutoffs(
        val=splits.quantile_cutoff(total, low, width, config.val_quantile),
        test=splits.quantile_cutoff(total, low, width, config.test_quantile),
    )


def _sum(dicts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for d in dicts:
        total.update(d)
    return {k: int(v) for k, v in sorted(total.items()) if v}


def _cutoff_text(cutoffs: Cutoffs) -> str:
    """Where the temporal split cuts, as UTC times."""

    def utc(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")

    return f"validation from {utc(cutoffs.val)}, test from {utc(cutoffs.test)} UTC"


def _count(results: Iterable[Any], field: str) -> str:
    """A summed count of the results so far, as a person reads it (``1,234,567``)."""
    return f"{sum(getattr(r, field) for r in results):,}"


def _manifest(
    config: PrepareConfig,
    spec: SourceSpec,
    actions_source: str,
    clusters: str | None,
    partitions: int,
    cutoffs: Cutoffs | None,
    files: list[FileStats],
    summaries: list[PartitionSummary],
    vocabulary: dict[str, Any],
    outputs: list[PartitionOutput],
) -> Manifest:
    """The manifest from the stages' summaries (see docs/prepare.md for every field)."""
    leave_one_out = config.split == "leave_one_out"
    return Manifest(
        created_unix_s=round(time.time(), 3),
        source=Source(
            events=config.events,
            format=config.format,
            files=spec.files,
            actions=actions_source,
            item_clusters=clusters,
        ),
        rows_in=sum(f.rows_in for f in files),
        rows_used=sum(s.rows_used for s in summaries),
        dropped=_sum([*(f.dropped for f in files), *(s.rows_dropped for s in summaries)]),
        users_in=sum(s.users_in for s in summaries),
        users_out=sum(s.users_out for s in summaries),
        users_dropped=_sum(s.users_dropped for s in summaries),
        num_items=vocabulary["num_items"],
        vocab=VOCAB,
        item_clusters=CLUSTERS if clusters else None,
        split=SplitInfo(
            method=config.split,
            validation_users=vocabulary["validation_users"] if leave_one_out else None,
            validation_eligible_users=(
                sum(s.validation_eligible for s in summaries) if leave_one_out else None
            ),
            cutoffs_ms=None if cutoffs is None else CutoffsMs(val=cutoffs.val, test=cutoffs.test),
        ),
        splits={
            name: SplitOutput(
                rows=sum(o.rows.get(name, 0) for o in outputs),
                files=[o.files[name] for o in outputs if name in o.files],
            )
            for name in SPLITS
        },
        train_interactions=sum(o.train_interactions for o in outputs),
        unknown_items=_sum(o.unknown_items for o in outputs),
        partitions=partitions,
        config=config,
        versions=library_versions(),
    )


def _stage_names(config: PrepareConfig) -> list[str]:
    """The stages a person watches, in order (the histogram only for a temporal split)."""
    middle = ["time_histogram"] if config.split == "temporal" else []
    return [
        "read_validate_partition",
        *middle,
        "sequences_and_counts",
        "vocabulary",
        "write_splits",
        "commit",
    ]


def prepare(
    config: PrepareConfig, options: storage.StorageOptions | None = None, progress: bool = False
) -> Manifest:
    """Run the whole pipeline and commit ``config.out``; returns the manifest.
    ``progress`` shows the stages and their rows as they finish (``negrec prepare``)."""
    options = storage.StorageOptions.from_env() if options is None else options
    if get_format(config.format).presplit:
        if config.actions is not None:
            raise NegrecError(
                f"--format {config.format} has no events to map: drop --actions (every "
                "interaction is positive)"
            )
        return prepare_presplit(config, options, progress)
    with PrepareProgress(_stage_names(config), progress) as shown:
        return _prepare(config, options, shown)


def _prepare(
    config: PrepareConfig, options: storage.StorageOptions, shown: PrepareProgress
) -> Manifest:
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 3)

    mapping = load_mapping(config.format, config.actions)
    spec = discover(config.events, config.format, options)
    clusters = _clusters_uri(config.events, options)
    ensure_ray()
    partitions = config.partitions or _auto_partitions(spec, config, options)
    stage = storage.staging_uri(config.out)
    work = storage.join(stage, WORK_DIR)
    lap("discover")
    read: list[FileStats] = []
    summarised: list[PartitionSummary] = []
    written: list[PartitionOutput] = []

    def file_read(done: int, stats: FileStats) -> None:
        read.append(stats)
        shown.task(
            "read_validate_partition",
            done,
            len(spec.files),
            f"{_count(read, 'rows_in')} rows read, {_count(read, 'rows_valid')} valid",
        )

    def partition_summarised(done: int, summary: PartitionSummary) -> None:
        summarised.append(summary)
        shown.task(
            "sequences_and_counts",
            done,
            partitions,
            f"{_count(summarised, 'users_out')} users kept of {_count(summarised, 'users_in')}",
        )

    def partition_written(done: int, output: PartitionOutput) -> None:
        written.append(output)
        rows = _sum(o.rows for o in written)
        shown.task(
            "write_splits",
            done,
            partitions,
            ", ".join(f"{name} {rows.get(name, 0):,}" for name in ("train", "val", "test"))
            + " rows",
        )

    try:
        files = run_tasks(
            lambda index: partition_file(spec, index, mapping, partitions, work, options),
            range(len(spec.files)),
            "read_validate_partition",
            file_read,
        )
        lap("read_validate_partition")
        rows_valid = sum(f.rows_valid for f in files)
        if rows_valid == 0:
            raise NegrecError(
                f"{config.events}: no usable events ({sum(f.rows_in for f in files)} rows read, "
                f"dropped: {_sum(f.dropped for f in files) or 'none'}); check --events, "
                f"--format and the --actions mapping"
            )
        cutoffs = None
        if config.split == "temporal":
            low = min(f.min_timestamp for f in files if f.min_timestamp is not None)
            high = max(f.max_timestamp for f in files if f.max_timestamp is not None)
            cutoffs = _temporal_cutoffs(config, work, partitions, low, high, options)
            lap("time_histogram")
            shown.stage_done("time_histogram", _cutoff_text(cutoffs))
        summaries = run_tasks(
            lambda p: analyse_partition(config, work, p, cutoffs, options),
            range(partitions),
            "sequences_and_counts",
            partition_summarised,
        )
        lap("sequences_and_counts")
        users_out = sum(s.users_out for s in summaries)
        wanted_validation = min(config.val_users, math.floor(config.val_fraction * users_out))
        vocabulary = run_tasks(
            lambda _: build_vocabulary(work, stage, wanted_validation, clusters, options),
            [0],
            "vocabulary",
        )[0]
        lap("vocabulary")
        shown.stage_done("vocabulary", f"{vocabulary['num_items']:,} items")
        if vocabulary["num_items"] == 0:
            raise NegrecError(
                f"{config.events}: no sequence survived cleaning ({users_out} users kept of "
                f"{sum(s.users_in for s in summaries)}); lower min_sequence_length or check "
                f"that the log has positive events"
            )
        outputs = run_tasks(
            lambda p: write_partition(
                config, work, stage, p, cutoffs, vocabulary["threshold"], options
            ),
            range(partitions),
            "write_splits",
            partition_written,
        )
        storage.delete_tree(work, options)
        lap("write_splits")

        manifest = _manifest(
            config,
            spec,
            mapping.source,
            clusters,
            partitions,
            cutoffs,
            files,
            summaries,
            vocabulary,
            outputs,
        ).model_copy(update={"timings_s": dict(timings)})
        write_manifest(stage, manifest, options)
        storage.commit(stage, config.out, MANIFEST, options)
    except BaseException:
        storage.delete_tree(stage, options)
        raise
    lap("commit")
    shown.stage_done("commit", config.out)
    seconds = round(time.perf_counter() - started, 3)
    return manifest.model_copy(update={"timings_s": timings, "seconds": seconds})
