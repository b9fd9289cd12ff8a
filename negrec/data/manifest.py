"""The manifest of a prepared dataset: what went in, what came out, and how.

Why it matters beyond bookkeeping: ``manifest.json`` is written last and is the commit
marker (see ``negrec.storage.commit``); a prefix without it is an unfinished or crashed
``prepare`` and loaders refuse it. It also carries the accounting that proves no row
vanished silently: ``rows_in == rows_used + sum(dropped.values())``.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Any

from negrec import storage
from negrec.errors import NegrecError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
VERSIONED_PACKAGES = ("negrec", "ray", "pyarrow", "numpy", "pandas", "torch", "pydantic")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the output (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_row_accounting(rows_in: int, rows_used: int, dropped: dict[str, int]) -> None:
    """Every input row is either used or dropped for a counted reason; anything else is
    a bug in prepare, so it stops the run instead of writing a wrong manifest."""
    if rows_in != rows_used + sum(dropped.values()):
        raise AssertionError(
            f"row accounting broken: rows_in={rows_in} but rows_used={rows_used} + "
            f"dropped={sum(dropped.values())} ({dropped})"
        )


_EVALUATION_SPLITS = {"val": "validation", "test": "test"}


def _split_fix(manifest: dict[str, Any], split: str) -> str:
    """What to change so that ``split`` gets users, for the way the data was split."""
    config, method = manifest["config"], manifest["split"]["method"]
    if method == "given":
        return f"the given {split}.txt needs users whose target is in train.txt"
    if method == "temporal":
        key = "val_quantile" if split == "val" else "test_quantile"
        return (
            f"few users have a positive after the {key}={config[key]} cut-off: lower {key} "
            f"(--set {key}=...) or use split: leave_one_out"
        )
    if split == "val":
        eligible = manifest["split"]["validation_eligible_users"]
        return (
            f"validation users = min(val_users={config['val_users']}, floor(val_fraction="
            f"{config['val_fraction']} x {manifest['users_out']} users kept)) and {eligible} "
            "users are eligible (a positive before the test target, with an interaction "
            "before it): raise val_fraction (--set val_fraction=0.2) or val_users, or give "
            "more users"
        )
    return (
        "a test row needs a user whose last positive has an interaction before it: give "
        f"users longer sequences (min_sequence_length={config['min_sequence_length']})"
    )


def check_evaluation_splits(manifest: dict[str, Any], uri: str, minimum: int) -> None:
    """Refuse a dataset whose validation or test split has fewer than ``minimum`` users:
    training would run an epoch and then fail at its first evaluation. Prepare calls
    this before committing (with ``min_eval_users``), train and tune before starting
    Ray (with 1: they cannot run without both splits)."""
    for split, name in _EVALUATION_SPLITS.items():
        rows = manifest["splits"][split]["rows"]
        if rows < minimum:
            counts = "/".join(str(manifest["splits"][s]["rows"]) for s in ("train", "val", "test"))
            raise NegrecError(
                f"{uri}: the {name} split has {rows} users (train/val/test {counts}), below "
                f"the minimum of {minimum} (min_eval_users); {_split_fix(manifest, split)}"
            )


def write_manifest(
    uri: str, manifest: dict[str, Any], options: storage.StorageOptions | None
) -> None:
    check_row_accounting(manifest["rows_in"], manifest["rows_used"], manifest["dropped"])
    minimum = manifest["config"]["min_eval_users"]
    check_evaluation_splits(manifest, manifest["source"]["events"], minimum)
    storage.write_text(storage.join(uri, MANIFEST), json.dumps(manifest, indent=2), options)


def read_manifest(uri: str, options: storage.StorageOptions | None = None) -> dict[str, Any]:
    """The manifest of a prepared dataset; a prefix without one is refused."""
    manifest_uri = storage.join(uri, MANIFEST)
    if not storage.exists(manifest_uri, options):
        raise NegrecError(
            f"{uri} is not a complete prepared dataset: it has no {MANIFEST} (prepare did not "
            f"finish, or this is the wrong URI); re-run `negrec prepare --events ... --out {uri}`"
        )
    manifest = json.loads(storage.read_text(manifest_uri, options))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise NegrecError(
            f"{manifest_uri} has format_version {manifest.get('format_version')!r}, this negrec "
            f"reads {FORMAT_VERSION}; re-run `negrec prepare` with this version"
        )
    return manifest


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a script wants from a prepare run (its ``--json`` line)."""
    seconds = manifest.get("seconds") or 0.0
    return {
        "out": manifest["config"]["out"],
        "rows_in": manifest["rows_in"],
        "rows_used": manifest["rows_used"],
        "dropped": manifest["dropped"],
        "users_out": manifest["users_out"],
        "num_items": manifest["num_items"],
        "splits": {name: split["rows"] for name, split in manifest["splits"].items()},
        "unknown_items": manifest["unknown_items"],
        "seconds": seconds,
        "events_per_s": round(manifest["rows_in"] / seconds) if seconds else None,
    }


def dropped_line(manifest: dict[str, Any]) -> str:
    """Every dropped row by reason, largest first, so that no filter goes unnoticed
    (an empty id or a time before 1970 is dropped, not an error)."""
    dropped = manifest["dropped"]
    if not dropped:
        return f"dropped 0 of {manifest['rows_in']:,} rows"
    reasons = sorted(dropped.items(), key=lambda item: (-item[1], item[0]))
    listed = ", ".join(f"{reason} {count:,}" for reason, count in reasons)
    return (
        f"dropped {sum(dropped.values()):,} of {manifest['rows_in']:,} rows: {listed} "
        f"(reasons: docs/prepare.md)"
    )


def summary_line(manifest: dict[str, Any]) -> str:
    """What a prepare run did, in one line: rows, users, items, splits, where, how long."""
    result = summary(manifest)
    splits = "/".join(f"{result['splits'][name]:,}" for name in ("train", "val", "test"))
    return (
        f"prepared {result['rows_used']:,} of {result['rows_in']:,} events "
        f"({result['users_out']:,} users, {result['num_items']:,} items; train/val/test rows "
        f"{splits}) into {result['out']} in {result['seconds']:.1f} s"
    )
