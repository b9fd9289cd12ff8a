"""``negrec tune``: coarse-then-fine hyperparameter search with ASHA (Ray Tune).

The sweep is :func:`negrec.tuning.driver.run` (its docstring describes the stages and
the layout under ``--storage``); this module parses the command line and prints the
summary.
"""

from __future__ import annotations

import argparse

from negrec import storage, tracking
from negrec.config import build_model
from negrec.tuning.driver import TuneJob, run
from negrec.tuning.preset import builtin_presets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    storage.add_data_and_storage_arguments(parser, "sweep storage")
    parser.add_argument("--name", required=True, help="sweep name (same name = resume)")
    parser.add_argument(
        "--preset",
        default="laptop",
        help=f"a built-in preset ({', '.join(builtin_presets())}) or a preset YAML file",
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    parser.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def main(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in ("data", "storage", "name", "preset", "experiment")}
    job = build_model(TuneJob, {**options, "tracking_uri": args.tracking_uri}, "command line")
    summary = run(job)
    best = summary.best_trial
    print(
        f"negrec tune: done. best val ndcg@{summary.k} {summary.best_val_ndcg:.4f} "
        f"({best.stage} trial {best.trial_id}); "
        + "; ".join(
            f"{name}: {s.trials} trials, {s.stopped_by_asha} stopped by ASHA"
            for name, s in summary.stages.items()
        )
        + f"\n  best checkpoint: {summary.best_checkpoint}"
        + f"\n  MLflow sweep run: {summary.mlflow_run_id}"
    )
    if args.json:
        print(summary.model_dump_json())
    return 0
