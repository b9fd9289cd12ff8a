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


def write_manifest(
    uri: str, manifest: dict[str, Any], options: storage.StorageOptions | None
) -> None:
    check_row_accounting(manifest["rows_in"], manifest["rows_used"], manifest["dropped"])
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
