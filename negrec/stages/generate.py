"""``negrec generate``: write a synthetic event log to local or object storage.

The writer is :func:`negrec.data.generated_log.run` (its docstring gives the layout);
this module parses the command line and prints the counts.
"""

from __future__ import annotations

import argparse
import json

from pydantic import ValidationError

from negrec import storage
from negrec.config import ConfigError
from negrec.data.generated_log import GenerateConfig, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    fields = GenerateConfig.model_fields
    parser.add_argument(
        "--out", required=True, type=storage.uri_argument, help=fields["out"].description
    )
    for name in ("users", "items", "events", "seed", "chunk_events"):
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"default {fields[name].default}")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    values = {
        name: getattr(args, name)
        for name in GenerateConfig.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        config = GenerateConfig(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(f"negrec generate: {problems}") from None
    summary = run(config)
    print(
        f"wrote {summary['events']:,} events of {summary['users']:,} users over "
        f"{summary['items']:,} items in {len(summary['files'])} file(s) to {config.out} "
        f"({summary['events_per_s']:,} events/s)"
    )
    if args.json:
        print(json.dumps(summary))
    return 0
