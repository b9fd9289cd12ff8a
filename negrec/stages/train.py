"""``negrec train``: action-aware gSASRec on Ray Train (DDP), tracked in MLflow.

The work is :func:`negrec.distributed.trainer.run`; this module turns the command line
into a :class:`~negrec.distributed.trainer.TrainJob` and prints the summary.
"""

from __future__ import annotations

import argparse
from typing import get_args

from negrec import metrics, recipes, storage, tracking
from negrec.config import load_config
from negrec.distributed.resources import DEFAULT_CACHE_LIMIT_MIB
from negrec.distributed.trainer import PlacementStrategy, TrainJob, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    storage.add_data_and_storage_arguments(parser, "run storage")
    parser.add_argument("--name", required=True, help="run name (same name = resume)")
    parser.add_argument("--workers", type=int, help="Train workers (default: all GPUs, or 1)")
    parser.add_argument("--gpu", action="store_true", default=None, help="one GPU per worker")
    parser.add_argument(
        "--cpus-per-worker",
        type=float,
        help="CPUs (and so torch threads) per worker (default: planned so Ray Data keeps one)",
    )
    parser.add_argument(
        "--placement-strategy",
        choices=get_args(PlacementStrategy),
        default="PACK",
        help="how Ray places the workers on nodes: PACK (as few nodes as possible), SPREAD "
        "(across nodes where they fit), STRICT_SPREAD (each on a node of its own; the run "
        "waits for enough nodes)",
    )
    parser.add_argument(
        "--config",
        help=f"a built-in recipe ({', '.join(recipes.recipe_names())}) or a YAML file "
        "overriding the defaults",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set train.lr=3e-4 (repeatable)",
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    parser.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    parser.add_argument("--keep-checkpoints", type=int, default=3)
    parser.add_argument("--max-failures", type=int, default=3)
    parser.add_argument(
        "--cache-limit-mib",
        type=int,
        default=DEFAULT_CACHE_LIMIT_MIB,
        help="hold the training rows in memory up to this size, else stream them from "
        "storage every epoch (0 = always stream)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def job_from_args(args: argparse.Namespace) -> TrainJob:
    return TrainJob(
        data=args.data,
        storage=args.storage,
        name=args.name,
        config=load_config(args.config, args.overrides),
        workers=args.workers,
        gpu=args.gpu,
        cpus_per_worker=args.cpus_per_worker,
        placement_strategy=args.placement_strategy,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        keep_checkpoints=args.keep_checkpoints,
        max_failures=args.max_failures,
        cache_limit_mib=args.cache_limit_mib,
    )


def main(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    summary = run(job)
    k = job.config.train.eval_k
    shown = [metrics.on_split("test", key) for key in (*metrics.reported(k), metrics.MRR)]
    print(
        f"negrec train: done ({summary.stop_reason}). "
        + " ".join(f"{name} {summary.test[name]:.4f}" for name in shown if name in summary.test)
        + f"\n  checkpoint: {summary.checkpoint}\n  MLflow run: {summary.mlflow_run_id}"
    )
    if args.json:
        print(summary.model_dump_json())
    return 0
