"""``negrec evaluate``: ranking and negative-feedback metrics of a checkpoint.

The metrics are :func:`negrec.evaluation.checkpoint_metrics.evaluate_checkpoint`;
this module parses the command line and prints them as a table, in the flat form of
:class:`~negrec.evaluation.checkpoint_metrics.EvaluationResult` that ``--json`` prints.
"""

from __future__ import annotations

import argparse
import json

from negrec import storage
from negrec.evaluation.checkpoint_metrics import evaluate_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, type=storage.uri_argument, help="checkpoint directory URI"
    )
    parser.add_argument(
        "--data",
        type=storage.uri_argument,
        help="prepared dataset URI (default: the one trained on)",
    )
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument(
        "-k", type=int, help="cut-off of the top-k metrics (default: the run's train.eval_k)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    flat = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.k).model_dump()
    width = max(len(key) for key in flat)
    for key, value in flat.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    if args.json:
        print(json.dumps(flat))
    return 0
