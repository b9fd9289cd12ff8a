"""``negrec recommend``: top-k items for histories of (item, action).

The library call is :func:`negrec.serving.api.recommend` (also ``negrec.recommend``);
this module parses the command line and prints each history's list.
"""

from __future__ import annotations

import argparse
import json
import sys

from negrec import registry, storage
from negrec.serving.api import recommend
from negrec.serving.requests import DEFAULT_K, Recommendation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="registered model, e.g. models:/negrec@champion")
    source.add_argument(
        "--checkpoint", type=storage.uri_argument, help="checkpoint directory URI (local or s3://)"
    )
    parser.add_argument(
        "--history",
        action="append",
        required=True,
        help='space-separated tokens ITEM:+ / ITEM:-, oldest first, e.g. "12:+ 7:- 31:+" '
        "(repeat for several histories)",
    )
    parser.add_argument("-k", type=int, default=DEFAULT_K, help="items per history")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    parser.add_argument(
        "--data",
        type=storage.uri_argument,
        help="with --checkpoint: prepared dataset holding the vocabulary",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def _report(number: int, history: str, result: Recommendation) -> str:
    lines = [f"history {number}: {history}"]
    lines += [
        f"  {rank:>3}. {item}  {score:.4f}"
        for rank, (item, score) in enumerate(zip(result.items, result.scores, strict=True), 1)
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.model:
        registry.ModelRef.parse(args.model)  # --model takes registry URIs only
    model = args.model or args.checkpoint
    results = recommend(model, args.history, args.k, args.tracking_uri, args.data)
    for number, (history, result) in enumerate(zip(args.history, results, strict=True), 1):
        if result.unknown_items:
            print(
                f"negrec recommend: history {number}: unknown to the model, not used as input: "
                + " ".join(result.unknown_items),
                file=sys.stderr,
            )
        print(_report(number, history, result))
    if args.json:
        summary = {
            "model": storage.redact(model),
            "k": args.k,
            "recommendations": [
                {"history": h, **vars(r)} for h, r in zip(args.history, results, strict=True)
            ],
        }
        print(json.dumps(summary))
    return 0
