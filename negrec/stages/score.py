"""``negrec score``: top-k for every user of a prepared split, as Parquet (Ray Data).

The work is :func:`negrec.serving.batch.score`. Output under ``--out`` (committed with
``_manifest.json`` last)::

    *.parquet        user_id, items list<original item id> (best first, k of them),
                     scores list<float32> (descending)
    _manifest.json   model (and the version it resolved to), data, split, k,
                     users_in, users_out, files, actors, seconds, library versions
"""

from __future__ import annotations

import argparse
import json

from negrec import storage
from negrec.data.loaders import SPLIT_NAMES
from negrec.serving.batch import DEFAULT_BATCH_SIZE, score


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint directory URI",
    )
    parser.add_argument(
        "--data", required=True, type=storage.uri_argument, help="prepared dataset URI"
    )
    parser.add_argument(
        "--split",
        choices=SPLIT_NAMES,
        default="test",
        help="train: each user's whole training sequence; val/test: each row's input items",
    )
    parser.add_argument("-k", type=int, help="items per user (default: the model's train.eval_k)")
    parser.add_argument(
        "--out", required=True, type=storage.uri_argument, help="output URI (local or s3://)"
    )
    parser.add_argument("--actors", type=int, default=1, help="scoring actors, one model each")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="users per scoring batch"
    )
    parser.add_argument("--gpu", action="store_true", help="one GPU per actor")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    manifest = score(
        args.model,
        args.data,
        args.split,
        args.out,
        k=args.k,
        actors=args.actors,
        batch_size=args.batch_size,
        gpu=args.gpu,
        tracking_uri=args.tracking_uri,
    )
    print(manifest.summary_line())
    if args.json:
        print(json.dumps(manifest.summary()))
    return 0
