"""``negrec prepare``: event log -> validated per-user sequence shards (Ray Data).

Output under ``--out`` (committed with ``manifest.json`` last; see
``negrec.data.pipeline``)::

    train/part-*.parquet   user_id, items list<int32>, actions list<int8>
    val/part-*.parquet     user_id, items, actions, target int32, heldout_rejected list<int32>
    test/part-*.parquet    (same columns as val)
    vocab.parquet          item_id (original), index int32 (1..N, 0 = padding), count
    item_clusters.parquet  index, cluster (when the source has item clusters)
    manifest.json          inputs, row accounting, splits, config, library versions
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from negrec.data.actions import FORMATS, PRESPLIT_FORMATS, default_mapping_text
from negrec.data.prepare_config import PrepareConfig, load_prepare_config
from negrec.storage import StorageOptions, uri_argument

MAPPED_FORMATS = tuple(f for f in FORMATS if f not in PRESPLIT_FORMATS)
"""Formats read through an action mapping (``sasrec`` carries no actions)."""
EPILOG = (
    "Formats (files, columns, header, timestamp units, default actions), the --actions "
    "mapping file (every key) and a worked example per format: docs/prepare.md. Start a "
    "mapping file from a format's default: negrec prepare --print-mapping table > mine.yaml"
)


def run(config: PrepareConfig, options: StorageOptions | None = None) -> dict[str, Any]:
    """Prepare ``config.events`` into ``config.out``; returns the manifest."""
    from negrec.data.pipeline import prepare

    return prepare(config, options)


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a script wants from a run (the ``--json`` line)."""
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


class _PrintMapping(argparse.Action):
    """``--print-mapping FORMAT``: print the default mapping and exit, like ``--help``
    (so neither --events nor --out is needed)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(default_mapping_text(str(values)))
        parser.exit(0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "--events", required=True, type=uri_argument, help="event log: a file or directory URI"
    )
    parser.add_argument("--format", choices=FORMATS, default=None, help="default: synthetic")
    parser.add_argument(
        "--actions", default=None, help="YAML mapping of event values to actions (overrides)"
    )
    parser.add_argument(
        "--print-mapping",
        action=_PrintMapping,
        choices=MAPPED_FORMATS,
        metavar="FORMAT",
        help="print FORMAT's default action mapping (a start for --actions) and exit",
    )
    parser.add_argument(
        "--out", required=True, type=uri_argument, help="output URI of the prepared dataset"
    )
    parser.add_argument("--config", default=None, help="YAML file of prepare settings")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    flags = {"events": args.events, "out": args.out}
    flags.update({k: v for k, v in (("format", args.format), ("actions", args.actions)) if v})
    config = load_prepare_config(args.config, args.set, flags)
    manifest = run(config)
    result = summary(manifest)
    print(
        f"prepared {result['rows_used']:,} of {result['rows_in']:,} events "
        f"({result['users_out']:,} users, {result['num_items']:,} items; train/val/test rows "
        f"{result['splits']['train']:,}/{result['splits']['val']:,}/{result['splits']['test']:,}) "
        f"into {config.out} in {result['seconds']:.1f} s"
    )
    print(dropped_line(manifest))
    if args.json:
        print(json.dumps(result))
    return 0
