"""``negrec promote``: register a checkpoint in MLflow; move ``champion`` only if it is better.

The work is :func:`negrec.serving.promotion.run`; this module parses the command line
and prints the decision.
"""

from __future__ import annotations

import argparse
import json

from negrec import registry, storage, tracking
from negrec.serving.promotion import run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint", type=storage.uri_argument, help="checkpoint directory URI (local or s3://)"
    )
    source.add_argument("--sweep", help="promote the best checkpoint of this `negrec tune` sweep")
    parser.add_argument("--model-name", default=registry.DEFAULT_MODEL_NAME)
    parser.add_argument(
        "--force", action="store_true", help="make it champion even if it is not better"
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    parser.add_argument(
        "--data",
        type=storage.uri_argument,
        help="prepared dataset URI (default: the one trained on)",
    )
    parser.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    summary = run(
        args.checkpoint,
        args.sweep,
        args.model_name,
        args.force,
        args.tracking_uri,
        args.data,
        args.experiment,
    )
    print(
        f"negrec promote: registered {summary.model_uri} (test "
        + ", ".join(f"{name} {score:.4f}" for name, score in summary.test.items())
        + ")\n"
        f"  {'champion moved' if summary.promoted else 'champion kept'}: {summary.decision}"
    )
    if args.json:
        print(json.dumps(summary.model_dump()))
    return 0
