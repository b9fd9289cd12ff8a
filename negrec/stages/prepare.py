"""``negrec prepare``: event log -> validated per-user sequence shards (Ray Data).

The work is :func:`negrec.data.preparation.prepare`. Output under ``--out`` (committed
with ``manifest.json`` last)::

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

from negrec.data.actions import default_mapping_text
from negrec.data.formats import format_names
from negrec.data.preparation import prepare
from negrec.data.prepare_config import load_prepare_config
from negrec.runtime import quiet_ray_requested
from negrec.storage import uri_argument

EPILOG = (
    "Formats (files, columns, header, timestamp units, default actions), the --actions "
    "mapping file (every key) and a worked example per format: docs/prepare.md. Start a "
    "mapping file from a format's default: negrec prepare --print-mapping table > mine.yaml"
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
    parser.add_argument("--format", choices=format_names(), default=None, help="default: synthetic")
    parser.add_argument(
        "--actions", default=None, help="YAML mapping of event values to actions (overrides)"
    )
    parser.add_argument(
        "--print-mapping",
        action=_PrintMapping,
        choices=format_names(mapped=True),  # a presplit format carries no actions
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
    manifest = prepare(config, progress=quiet_ray_requested())
    print(manifest.summary_line())
    print(manifest.dropped_line())
    if args.json:
        print(json.dumps(manifest.summary()))
    return 0
