"""The manifest of a prepared dataset: what went in, what came out, and how.

Why it matters beyond bookkeeping: ``manifest.json`` is written last and is the commit
marker (see ``negrec.storage.commit``); a prefix without it is an unfinished or crashed
``prepare`` and loaders refuse it. It also carries the accounting that proves no row
vanished silently: ``rows_in == rows_used + sum(dropped.values())``.

:class:`Manifest` is its one typed form: :func:`write_manifest` is the one place that
writes it and :func:`read_manifest` the one place that parses it; everything else reads
its attributes (docs/prepare.md describes every field).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Any, Literal

from pydantic import Field, ValidationError

from negrec import storage
from negrec.config import describe_validation_error
from negrec.data.prepare_config import PrepareConfig
from negrec.errors import NegrecError
from negrec.strict import FrozenModel

MANIFEST = "manifest.json"
FORMAT_VERSION = 1

SplitName = Literal["train", "val", "test"]
SplitMethod = Literal["leave_one_out", "temporal", "given"]
"""``given``: the split came with the data (a presplit format such as ``sasrec``)."""


class Source(FrozenModel):
    """What was read: the event log, its format, files, action mapping, item clusters."""

    events: str
    format: str
    files: list[str]
    actions: str
    """Where the action mapping came from (a file, a format's default, or a sentence)."""
    item_clusters: str | None
    """URI of the ``item_clusters.parquet`` read next to the events, if any."""


class CutoffsMs(FrozenModel):
    """Temporal split times (ms): validation from ``val``, test from ``test``."""

    val: int
    test: int


class SplitInfo(FrozenModel):
    """How the users were split (the leave-one-out and temporal numbers are None
    where they do not apply)."""

    method: SplitMethod
    validation_users: int | None
    validation_eligible_users: int | None
    cutoffs_ms: CutoffsMs | None


class SplitOutput(FrozenModel):
    """One split's rows (users) and its shard files, relative to the dataset."""

    rows: int
    files: list[str]


class Versions(FrozenModel):
    """Installed versions of the libraries that shape the output (None when absent)."""

    python: str
    negrec: str | None = None
    ray: str | None = None
    pyarrow: str | None = None
    numpy: str | None = None
    pandas: str | None = None
    torch: str | None = None
    pydantic: str | None = None


VERSIONED_PACKAGES = tuple(name for name in Versions.model_fields if name != "python")


def library_versions() -> Versions:
    """The :class:`Versions` installed here."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return Versions.model_validate(versions)


class Manifest(FrozenModel):
    """``manifest.json``: inputs, row accounting, splits, config, library versions."""

    format_version: int = FORMAT_VERSION
    created_unix_s: float
    source: Source
    rows_in: int
    rows_used: int
    dropped: dict[str, int]
    """Rows dropped, by reason (docs/prepare.md lists the reasons)."""
    users_in: int
    users_out: int
    users_dropped: dict[str, int]
    num_items: int
    vocab: str
    """The vocabulary file, relative to the dataset."""
    item_clusters: str | None
    """The item clusters file, relative to the dataset (None without clusters)."""
    split: SplitInfo
    splits: dict[SplitName, SplitOutput]
    train_interactions: int
    unknown_items: dict[str, int]
    partitions: int
    config: PrepareConfig
    versions: Versions
    timings_s: dict[str, float] | None = Field(None, exclude_if=lambda timings: timings is None)
    """Seconds per prepare stage (the Ray Data path writes them; absent otherwise)."""
    seconds: float | None = Field(None, exclude=True)
    """Wall time of the prepare run that returned this manifest; never written."""

    def to_json(self) -> str:
        """The text of ``manifest.json`` (also what a training run logs to MLflow)."""
        return json.dumps(self.model_dump(mode="json"), indent=2)

    def summary(self) -> dict[str, Any]:
        """The few numbers a script wants from a prepare run (its ``--json`` line)."""
        seconds = self.seconds or 0.0
        return {
            "out": self.config.out,
            "rows_in": self.rows_in,
            "rows_used": self.rows_used,
            "dropped": self.dropped,
            "users_out": self.users_out,
            "num_items": self.num_items,
            "splits": {name: split.rows for name, split in self.splits.items()},
            "unknown_items": self.unknown_items,
            "seconds": seconds,
            "events_per_s": round(self.rows_in / seconds) if seconds else None,
        }

    def dropped_line(self) -> str:
        """Every dropped row by reason, largest first, so that no filter goes unnoticed
        (an empty id or a time before 1970 is dropped, not an error)."""
        if not self.dropped:
            return f"dropped 0 of {self.rows_in:,} rows"
        reasons = sorted(self.dropped.items(), key=lambda item: (-item[1], item[0]))
        listed = ", ".join(f"{reason} {count:,}" for reason, count in reasons)
        return (
            f"dropped {sum(self.dropped.values()):,} of {self.rows_in:,} rows: {listed} "
            f"(reasons: docs/prepare.md)"
        )

    def summary_line(self) -> str:
        """What a prepare run did, in one line: rows, users, items, splits, where, how long."""
        splits = "/".join(f"{self.splits[name].rows:,}" for name in ("train", "val", "test"))
        return (
            f"prepared {self.rows_used:,} of {self.rows_in:,} events "
            f"({self.users_out:,} users, {self.num_items:,} items; train/val/test rows "
            f"{splits}) into {self.config.out} in {self.seconds or 0.0:.1f} s"
        )


def check_row_accounting(rows_in: int, rows_used: int, dropped: dict[str, int]) -> None:
    """Every input row is either used or dropped for a counted reason; anything else is
    a bug in prepare, so it stops the run instead of writing a wrong manifest."""
    if rows_in != rows_used + sum(dropped.values()):
        raise AssertionError(
            f"row accounting broken: rows_in={rows_in} but rows_used={rows_used} + "
            f"dropped={sum(dropped.values())} ({dropped})"
        )


_EVALUATION_SPLITS: dict[SplitName, str] = {"val": "validation", "test": "test"}


def _split_fix(manifest: Manifest, split: SplitName) -> str:
    """What to change so that ``split`` gets users, for the way the data was split."""
    config, method = manifest.config, manifest.split.method
    if method == "given":
        return f"the given {split}.txt needs users whose target is in train.txt"
    if method == "temporal":
        key = "val_quantile" if split == "val" else "test_quantile"
        return (
            f"few users have a positive after the {key}={getattr(config, key)} cut-off: lower "
            f"{key} (--set {key}=...) or use split: leave_one_out"
        )
    if split == "val":
        eligible = manifest.split.validation_eligible_users
        return (
            f"validation users = min(val_users={config.val_users}, floor(val_fraction="
            f"{config.val_fraction} x {manifest.users_out} users kept)) and {eligible} "
            "users are eligible (a positive before the test target, with an interaction "
            "before it): raise val_fraction (--set val_fraction=0.2) or val_users, or give "
            "more users"
        )
    return (
        "a test row needs a user whose last positive has an interaction before it: give "
        f"users longer sequences (min_sequence_length={config.min_sequence_length})"
    )


def check_evaluation_splits(manifest: Manifest, uri: str, minimum: int) -> None:
    """Refuse a dataset whose validation or test split has fewer than ``minimum`` users:
    training would run an epoch and then fail at its first evaluation. Prepare calls
    this before committing (with ``min_eval_users``), train and tune before starting
    Ray (with 1: they cannot run without both splits)."""
    for split, name in _EVALUATION_SPLITS.items():
        rows = manifest.splits[split].rows
        if rows < minimum:
            counts = "/".join(str(manifest.splits[s].rows) for s in ("train", "val", "test"))
            raise NegrecError(
                f"{uri}: the {name} split has {rows} users (train/val/test {counts}), below "
                f"the minimum of {minimum} (min_eval_users); {_split_fix(manifest, split)}"
            )


def write_manifest(uri: str, manifest: Manifest, options: storage.StorageOptions | None) -> None:
    """Check the accounting and the evaluation splits, then write ``manifest.json``."""
    check_row_accounting(manifest.rows_in, manifest.rows_used, manifest.dropped)
    check_evaluation_splits(manifest, manifest.source.events, manifest.config.min_eval_users)
    storage.write_text(storage.join(uri, MANIFEST), manifest.to_json(), options)


def read_manifest(uri: str, options: storage.StorageOptions | None = None) -> Manifest:
    """The manifest of a prepared dataset; a prefix without one is refused."""
    manifest_uri = storage.join(uri, MANIFEST)
    if not storage.exists(manifest_uri, options):
        raise NegrecError(
            f"{uri} is not a complete prepared dataset: it has no {MANIFEST} (prepare did not "
            f"finish, or this is the wrong URI); re-run `negrec prepare --events ... --out {uri}`"
        )
    try:
        values = json.loads(storage.read_text(manifest_uri, options))
    except json.JSONDecodeError as error:
        raise NegrecError(
            f"{manifest_uri} is not JSON ({error}); re-run `negrec prepare`"
        ) from None
    version = values.get("format_version") if isinstance(values, dict) else None
    if version != FORMAT_VERSION:
        raise NegrecError(
            f"{manifest_uri} has format_version {version!r}, this negrec "
            f"reads {FORMAT_VERSION}; re-run `negrec prepare` with this version"
        )
    try:
        return Manifest.model_validate(values)
    except ValidationError as error:
        raise NegrecError(
            describe_validation_error(
                error,
                f"{manifest_uri} is not a manifest this negrec reads (re-run `negrec "
                "prepare` with this version):",
                "",
            )
        ) from None
