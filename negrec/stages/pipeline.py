"""``negrec pipeline``: events -> prepare -> train or tune -> evaluate -> promote -> recommend.

The steps are :func:`negrec.workflow.pipeline.run`; this module parses the command line
(``jobs/pipeline.py`` runs it under ``ray job submit``).
"""

from __future__ import annotations

import argparse
import json

from negrec import recipes, storage
from negrec.workflow.pipeline import PipelineConfig, default, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", required=True, type=storage.uri_argument, help="storage URI for every output"
    )
    parser.add_argument("--name", default="pipeline", help="run name (same name = resume)")
    parser.add_argument(
        "--events", type=storage.uri_argument, help="existing event log URI (default: generate one)"
    )
    parser.add_argument("--format", default="synthetic", help="event log format")
    parser.add_argument("--users", type=int, default=default("users"))
    parser.add_argument("--items", type=int, default=default("items"))
    parser.add_argument("--num-events", type=int, default=default("num_events"))
    parser.add_argument("--workers", type=int, help="Train workers (default: all GPUs, or 1)")
    parser.add_argument("--preset", help="tune with this preset instead of one training run")
    parser.add_argument(
        "--config",
        help=f"a built-in training recipe ({', '.join(recipes.recipe_names())}) or a YAML "
        "file (default: the recipe demo)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tracking-uri", help="MLflow tracking URI")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    summary = run(
        PipelineConfig(
            root=args.root,
            name=args.name,
            events=args.events,
            format=args.format,
            users=args.users,
            items=args.items,
            num_events=args.num_events,
            workers=args.workers,
            preset=args.preset,
            train_config=args.config,
            overrides=args.overrides,
            tracking_uri=args.tracking_uri,
        )
    )
    if args.json:
        print(json.dumps(summary.model_dump(), default=str))
    return 0
