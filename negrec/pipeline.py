"""The whole pipeline as one function: events -> prepare -> train or tune -> promote -> recommend.

``negrec demo`` runs it locally with a work directory standing in for object storage;
``jobs/pipeline.py`` runs it on a cluster under ``ray job submit``. Each step is a
library call of its stage, and each step is skipped when its committed output already
exists, so a retried job resumes instead of starting over.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from negrec import storage
from negrec.batching import NEGATIVE
from negrec.config import load_config
from negrec.strict import StrictModel

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


class PipelineConfig(StrictModel):
    """Where everything lives and how big the generated log is."""

    root: str = Field(description="Storage URI under which every stage writes (local or s3://)")
    name: str = Field("demo", description="Run name (same name = resume)")
    events: str | None = Field(None, description="Existing event log URI; None = generate one")
    format: str = "synthetic"
    users: int = Field(3_000, ge=1)
    items: int = Field(1_000, ge=2)
    num_events: int = Field(150_000, ge=1)
    seed: int = 0
    workers: int | None = Field(2, ge=1)
    preset: str | None = Field(
        None, description="Tuning preset: sweep coarse-then-fine instead of one training run"
    )
    train_config: str | None = Field(None, description="YAML training config (default: demo)")
    overrides: list[str] = Field(default_factory=list)
    tracking_uri: str | None = None


Step = Callable[[str], None]


def _timed(log: Step, title: str) -> Callable[[], float]:
    log(f"== {title}")
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def run(config: PipelineConfig, log: Step = print) -> dict[str, Any]:
    """Run every step, skipping those whose committed output exists; returns a summary."""
    from negrec import evaluate, generate, prepare, promote, recommend, registry, train, tune
    from negrec.data.prepare_config import PrepareConfig
    from negrec.tuning.preset import load_plan

    # A bad preset or training config fails here, before minutes of generate and prepare.
    if config.preset:
        load_plan(config.preset)
        train_config = None
    else:
        train_config = load_config(config.train_config or DEMO_CONFIG, config.overrides)
    summary: dict[str, Any] = {"root": config.root}
    events = config.events
    if events is None:
        events = storage.join(config.root, "events")
        elapsed = _timed(log, f"generate {config.num_events:,} events -> {events}")
        if storage.exists(storage.join(events, generate.MARKER)):
            log("   already generated; reusing")
        else:
            generate.run(
                generate.GenerateConfig(
                    out=events,
                    users=config.users,
                    items=config.items,
                    events=config.num_events,
                    seed=config.seed,
                )
            )
        summary["generate_s"] = round(elapsed(), 1)

    prepared = storage.join(config.root, "prepared")
    elapsed = _timed(log, f"prepare (Ray Data) {events} -> {prepared}")
    if storage.exists(storage.join(prepared, "manifest.json")):
        log("   already prepared; reusing")
    else:
        manifest = prepare.run(PrepareConfig(events=events, out=prepared, format=config.format))
        log(f"   {prepare.summary(manifest)}")
    summary["prepare_s"] = round(elapsed(), 1)

    if config.preset:
        elapsed = _timed(log, f"tune (Ray Tune, preset {config.preset})")
        swept = tune.run(
            tune.TuneJob(
                data=prepared,
                storage=storage.join(config.root, "sweeps"),
                name=config.name,
                preset=config.preset,
                tracking_uri=config.tracking_uri,
            )
        )
        best = swept["best_checkpoint"]
        summary.update(tune_s=round(elapsed(), 1), sweep=swept["stages"])
        summary["mlflow_run_id"] = swept["mlflow_run_id"]
    else:
        elapsed = _timed(log, f"train (Ray Train, {config.workers} workers)")
        job = train.TrainJob(
            data=prepared,
            storage=storage.join(config.root, "runs"),
            name=config.name,
            workers=config.workers,
            config=train_config,
            tracking_uri=config.tracking_uri,
        )
        trained = train.run(job)
        best = trained["checkpoint"]
        summary.update(train_s=round(elapsed(), 1), mlflow_run_id=trained["mlflow_run_id"])
    summary["checkpoint"] = best

    elapsed = _timed(log, "evaluate on the test split")
    summary["test"] = evaluate.run(best, prepared, "test", 10)
    summary["evaluate_s"] = round(elapsed(), 1)

    elapsed = _timed(log, "promote to the MLflow registry")
    promoted = promote.run(checkpoint_uri=best, tracking_uri=config.tracking_uri, data_uri=prepared)
    log(f"   {promoted['decision']}")
    summary["promote"] = promoted
    summary["promote_s"] = round(elapsed(), 1)

    champion = f"models:/{registry.DEFAULT_MODEL_NAME}@{registry.CHAMPION}"
    elapsed = _timed(log, f"recommend for a sample user with {champion}")
    history = sample_history(prepared)
    top = recommend.recommend(champion, history, k=10, tracking_uri=config.tracking_uri)[0]
    summary["sample"] = {"history": history, "recommended": top.items, "scores": top.scores}
    summary["recommend_s"] = round(elapsed(), 1)
    return summary


def sample_history(prepared_uri: str, length: int = 8) -> str:
    """The last ``length`` interactions of the first test user, as ``"item:+ item:-"``."""
    from negrec.data.loaders import list_column, load_prepared, read_split
    from negrec.serving.vocabulary import Vocabulary

    test = read_split(load_prepared(prepared_uri), "test")
    vocabulary = Vocabulary.of_prepared(prepared_uri)
    items = list_column(test["items"].slice(0, 1))[0][-length:]
    actions = list_column(test["actions"].slice(0, 1))[0][-length:]
    return " ".join(
        f"{vocabulary.item_id(int(i))}:{'-' if a == NEGATIVE else '+'}"
        for i, a in zip(items, actions, strict=True)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", required=True, type=storage.uri_argument, help="storage URI for every output"
    )
    parser.add_argument("--name", default="pipeline", help="run name (same name = resume)")
    parser.add_argument(
        "--events", type=storage.uri_argument, help="existing event log URI (default: generate one)"
    )
    parser.add_argument("--format", default="synthetic", help="event log format")
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--num-events", type=int, default=150_000)
    parser.add_argument("--workers", type=int, help="Train workers (default: all GPUs, or 1)")
    parser.add_argument("--preset", help="tune with this preset instead of one training run")
    parser.add_argument("--config", help="training YAML (default: configs/demo.yaml)")
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
        print(json.dumps(summary, default=str))
    return 0
