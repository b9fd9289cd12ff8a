"""``negrec demo``: the whole pipeline on generated data, on this machine (the steps are
:func:`negrec.workflow.pipeline.run`).

By default it runs the small coarse-then-fine sweep of the built-in preset ``demo``
(``negrec/recipes/tuning/presets/demo.yaml``), so a newcomer sees every stage (Ray
Data, Ray Tune with ASHA over Ray Train DDP trials, MLflow runs and registry) in a few
minutes. A work directory stands in for object storage and a sqlite file for the MLflow
server; Ray starts locally with planned resources. Prints what was done, the metrics
next to the most-popular baseline, and how to open the MLflow UI.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from negrec import metrics
from negrec.workflow.pipeline import PipelineConfig, default, run

if TYPE_CHECKING:
    from negrec.workflow.summary import PipelineSummary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir", default="negrec-demo", help="where data, runs and mlflow.db go"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default("workers"),
        help="Ray Train workers with --preset none",
    )
    parser.add_argument(
        "--preset",
        default="demo",
        help="tuning preset of the coarse-then-fine sweep (default: the built-in 'demo'); "
        "'none' trains once with the built-in training recipe 'demo' instead",
    )
    parser.add_argument("--users", type=int, default=default("users"), help="users to generate")
    parser.add_argument("--items", type=int, default=default("items"), help="items to generate")
    parser.add_argument(
        "--events", type=int, default=default("num_events"), help="events to generate"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def _report(summary: PipelineSummary, workdir: Path) -> str:
    test = summary.test
    k = test.k
    ndcg = metrics.ndcg(k)
    shown = (metrics.recall(k), ndcg, metrics.MRR, metrics.rejected_in_top(k))
    rows = [f"{'metric':<20} {'negrec':>8} {'most-popular':>13}"]
    for name in shown:
        if name in test.metrics:
            baseline = test.popular.get(name, float("nan"))
            rows.append(f"{name:<20} {test.metrics[name]:>8.4f} {baseline:>13.4f}")
    if test.responsiveness is not None:
        rows.append(f"{'responsiveness':<20} {test.responsiveness:>+8.1%}")
    beaten = test.metrics[ndcg] > test.popular.get(ndcg, float("inf"))
    verdict = "beats" if beaten else "does NOT beat"
    db = workdir / "mlflow.db"
    return "\n".join(
        [
            "",
            f"negrec demo: done ({test.rows} held-out test users)",
            *rows,
            f"negrec {verdict} the most-popular baseline on NDCG@{k}.",
            f"checkpoint: {summary.checkpoint}",
            f"learning curve (val NDCG@{k}, training loss): {summary.learning_curve}",
            f"registry:   {summary.promote.decision}",
            f"sample user history: {summary.sample.history}",
            f"  recommended (top {k}): {' '.join(map(str, summary.sample.recommended))}",
            "timings (s): "
            + ", ".join(f"{step} {seconds}" for step, seconds in summary.timings().items()),
            f"MLflow UI:  .venv/bin/mlflow ui --backend-store-uri sqlite:///{db} \\",
            "              --host 127.0.0.1 --port 5000   (then open http://127.0.0.1:5000)",
        ]
    )


def main(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    summary = run(
        PipelineConfig(
            root=str(workdir / "store"),
            users=args.users,
            items=args.items,
            num_events=args.events,
            workers=args.workers,
            preset=None if args.preset == "none" else args.preset,
            tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        )
    )
    print(_report(summary, workdir))
    if args.json:
        print(json.dumps(summary.model_dump(), default=str))
    return 0
