"""``negrec promote``: register a checkpoint in MLflow; move ``champion`` only if it is better.

The checkpoint (given, or the best of a ``negrec tune`` sweep) is evaluated on the test
split, logged as a pyfunc model in an MLflow run, and registered as a new version whose
tags carry its test NDCG@10 and Recall@10. The ``champion`` alias moves to it only when
its test NDCG@10 beats the champion's (``--force`` moves it anyway); the decision is
printed either way. Every input is checked before the evaluation spends compute.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negrec import registry, storage, tracking
from negrec.errors import NegrecError

SWEEP_NAME_TAG = "negrec.sweep_name"
SWEEP_CHECKPOINT_TAG = "negrec.best_checkpoint_uri"
RANK_METRIC = "ndcg@10"
REPORTED_METRICS = (RANK_METRIC, "recall@10")
MODEL_ARTIFACT = "model"


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


def sweep_checkpoint(uri: str, sweep: str) -> str:
    """The best checkpoint recorded on the latest parent run of sweep ``sweep``."""
    if "'" in sweep:
        raise NegrecError(f"sweep name {sweep!r} contains a quote; sweep names never do")
    client = tracking.client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`{SWEEP_NAME_TAG}` = '{sweep}'",
        order_by=["attributes.start_time DESC"],
    )
    parent = next((r for r in runs if "mlflow.parentRunId" not in r.data.tags), None)
    if parent is None:
        raise NegrecError(
            f"no sweep named '{sweep}' in the MLflow store at {storage.redact(uri)}; check "
            "the name given to `negrec tune --name` and --tracking-uri, or pass --checkpoint"
        )
    best = parent.data.tags.get(SWEEP_CHECKPOINT_TAG)
    if not best:
        raise NegrecError(
            f"sweep '{sweep}' (MLflow run {parent.info.run_id}, {parent.info.status}) has no "
            f"best checkpoint yet ({SWEEP_CHECKPOINT_TAG} is not set): wait for it to finish "
            "or pass --checkpoint"
        )
    return best


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(score: float, version: str, current: Any | None, force: bool) -> Decision:
    """Whether version ``version`` (test NDCG@10 ``score``) takes the alias from ``current``.

    A champion without a readable score is never replaced silently: only ``--force``
    replaces it, since nothing says the new version is better.
    """
    if current is None:
        return Decision(True, f"version {version} is the first champion (none was set)")
    best = registry.version_metric(current, RANK_METRIC)
    shown = f"{best:.4f}" if best is not None else "unknown (no test NDCG@10 tag)"
    versus = f"test NDCG@10 {score:.4f} vs champion version {current.version}'s {shown}"
    if best is not None and score > best:
        return Decision(True, f"version {version} beats the champion: {versus}")
    if force:
        return Decision(True, f"--force: version {version} replaces the champion ({versus})")
    return Decision(False, f"version {version} does not beat the champion: {versus}")


def _log_model_run(
    uri: str,
    experiment: str,
    run_name: str,
    model_dir: Path,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str],
) -> tuple[str, str]:
    """An MLflow run holding the pyfunc model at ``model_dir``; returns (run id, the
    model's artifact URI)."""
    client = tracking.client(uri)
    run = client.create_run(tracking.experiment_id(uri, experiment), run_name=run_name, tags=tags)
    run_id = run.info.run_id
    try:
        tracking.log_params(uri, run_id, params)
        tracking.log_metrics(uri, run_id, metrics, step=0)
        client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id, f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"


def run(
    checkpoint_uri: str | None = None,
    sweep: str | None = None,
    model_name: str = registry.DEFAULT_MODEL_NAME,
    force: bool = False,
    tracking_uri: str | None = None,
    data_uri: str | None = None,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
) -> dict[str, Any]:
    """Evaluate, log, register; move ``champion`` if better (or forced). Returns a summary."""
    from negrec import checkpoint, evaluate
    from negrec.serving import pyfunc
    from negrec.serving.vocabulary import Vocabulary

    if (checkpoint_uri is None) == (sweep is None):
        raise NegrecError("give exactly one of --checkpoint and --sweep")
    storage.configure_environment()
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_reachable(uri)
    checkpoint_uri = checkpoint_uri or sweep_checkpoint(uri, str(sweep))
    saved = checkpoint.load(checkpoint_uri)
    data_uri = data_uri or saved.data_uri
    vocabulary = Vocabulary.of_prepared(data_uri)
    if len(vocabulary) != saved.num_items:
        raise NegrecError(
            f"{data_uri} has {len(vocabulary)} items but {checkpoint_uri} was trained on "
            f"{saved.num_items}: pass the --data the checkpoint was trained on"
        )

    metrics = evaluate.run(checkpoint_uri, data_uri, split="test", k=10)
    provenance = {
        f"{registry.TAG_PREFIX}checkpoint_uri": storage.redact(checkpoint_uri),
        f"{registry.TAG_PREFIX}data_uri": storage.redact(data_uri),
    }
    with tempfile.TemporaryDirectory(prefix="negrec-promote-") as staging:
        model_dir = pyfunc.save(saved, vocabulary, Path(staging) / MODEL_ARTIFACT)
        run_id, source = _log_model_run(
            uri,
            experiment,
            f"promote-{model_name}",
            model_dir,
            tracking.flatten(saved.config.model_dump()),
            {f"test_{k}": v for k, v in metrics.items() if isinstance(v, float)},
            provenance,
        )
    client = tracking.client(uri)
    current = registry.champion(client, model_name)
    tags = {registry.metric_tag(m): repr(float(metrics[m])) for m in REPORTED_METRICS}
    version = registry.register(client, model_name, source, run_id, {**tags, **provenance})
    decision = decide(float(metrics[RANK_METRIC]), version, current, force)
    if decision.promote:
        client.set_registered_model_alias(model_name, registry.CHAMPION, version)
    previous = None if current is None else str(current.version)
    return {
        "model_name": model_name,
        "version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "promoted": decision.promote,
        "forced": force,
        "decision": decision.reason,
        "champion_version": version if decision.promote else previous,
        "previous_champion_version": previous,
        "previous_champion_test_ndcg@10": (
            None if current is None else registry.version_metric(current, RANK_METRIC)
        ),
        **{f"test_{m}": float(metrics[m]) for m in REPORTED_METRICS},
        "checkpoint": storage.redact(checkpoint_uri),
        "data": storage.redact(data_uri),
        "mlflow_run_id": run_id,
        "tracking_uri": storage.redact(uri),
    }


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
        f"negrec promote: registered {summary['model_uri']} (test ndcg@10 "
        f"{summary['test_ndcg@10']:.4f}, recall@10 {summary['test_recall@10']:.4f})\n"
        f"  {'champion moved' if summary['promoted'] else 'champion kept'}: "
        f"{summary['decision']}"
    )
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from negrec.cli import main as cli_main

    sys.exit(cli_main(["promote", *sys.argv[1:]]))
