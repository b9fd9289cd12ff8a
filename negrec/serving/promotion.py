"""Promotion (``negrec promote``): register a checkpoint; move ``champion`` only if better.

The checkpoint (given, or the best of a ``negrec tune`` sweep) is evaluated on the test
split, logged as a pyfunc model in an MLflow run, and registered as a new version whose
tags carry its test NDCG@k and Recall@k (``k = train.eval_k``). The ``champion`` alias
moves to it only when its test NDCG@k beats the champion's (``--force`` moves it
anyway); the decision is printed either way. Every input is checked before the
evaluation spends compute.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SerializerFunctionWrapHandler, model_serializer, model_validator

from negrec import metrics, registry, storage, tags, tracking
from negrec.errors import NegrecError
from negrec.strict import FrozenModel

if TYPE_CHECKING:  # the evaluation imports torch: only run() needs it
    from negrec.evaluation.checkpoint_metrics import EvaluationResult

MODEL_ARTIFACT = "model"
TEST_PREFIX = "test_"
PREVIOUS_PREFIX = "previous_champion_test_"


class PromotionResult(FrozenModel):
    """What :func:`run` returns and ``negrec promote --json`` prints.

    The JSON names the test metrics with their cut-off (``test_ndcg@10``,
    ``test_recall@10``, ``previous_champion_test_ndcg@10``), as it always did; here they
    are ``test`` and ``previous_champion_test``, so that no field name depends on ``k``.
    """

    model_name: str
    version: str
    model_uri: str
    """``models:/NAME/VERSION`` of the version just registered."""
    promoted: bool
    """Whether the ``champion`` alias moved to it."""
    forced: bool
    decision: str
    """Why it moved or not, as printed."""
    champion_version: str | None
    previous_champion_version: str | None
    k: int
    """The cut-off of the test metrics (``train.eval_k``)."""
    previous_champion_test: float | None
    """The previous champion's test NDCG@k (None: no champion, or it carries no score)."""
    test: dict[str, float]
    """This version's test NDCG@k and Recall@k (``negrec.metrics.reported``), as tagged."""
    checkpoint: str
    data: str
    mlflow_run_id: str
    """The MLflow run that logged the model."""
    tracking_uri: str

    @model_validator(mode="before")
    @classmethod
    def _unspell_k(cls, values: Any) -> Any:
        """The flat JSON form back into the model: ``test_*`` into ``test``, the
        champion's score under its plain name."""
        if not isinstance(values, dict) or "test" in values:
            return values
        previous = f"{PREVIOUS_PREFIX}{metrics.ndcg(values.get('k'))}"
        grouped: dict[str, Any] = {"test": {}}
        for key, value in values.items():
            if key == previous:
                grouped["previous_champion_test"] = value
            elif key.startswith(TEST_PREFIX):
                grouped["test"][key.removeprefix(TEST_PREFIX)] = value
            else:
                grouped[key] = value
        return grouped

    @model_serializer(mode="wrap")
    def _spell_k(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in handler(self).items():
            if key == "previous_champion_test":
                flat[f"{PREVIOUS_PREFIX}{metrics.ndcg(self.k)}"] = value
            elif key == "test":
                flat |= {f"{TEST_PREFIX}{name}": score for name, score in value.items()}
            else:
                flat[key] = value
        return flat


def sweep_checkpoint(uri: str, sweep: str) -> str:
    """The best checkpoint recorded on the latest parent run of sweep ``sweep``."""
    if "'" in sweep:
        raise NegrecError(f"sweep name {sweep!r} contains a quote; sweep names never do")
    client = tracking.client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`{tags.SWEEP_NAME}` = '{sweep}'",
        order_by=["attributes.start_time DESC"],
    )
    parent = next((r for r in runs if "mlflow.parentRunId" not in r.data.tags), None)
    if parent is None:
        raise NegrecError(
            f"no sweep named '{sweep}' in the MLflow store at {storage.redact(uri)}; check "
            "the name given to `negrec tune --name` and --tracking-uri, or pass --checkpoint"
        )
    best = parent.data.tags.get(tags.BEST_CHECKPOINT_URI)
    if not best:
        raise NegrecError(
            f"sweep '{sweep}' (MLflow run {parent.info.run_id}, {parent.info.status}) has no "
            f"best checkpoint yet ({tags.BEST_CHECKPOINT_URI} is not set): wait for it to finish "
            "or pass --checkpoint"
        )
    return best


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(score: float, version: str, current: Any | None, force: bool, k: int) -> Decision:
    """Whether version ``version`` (test NDCG@k ``score``) takes the alias from ``current``.

    A champion without a readable score is never replaced silently: only ``--force``
    replaces it, since nothing says the new version is better.
    """
    if current is None:
        return Decision(True, f"version {version} is the first champion (none was set)")
    best = registry.version_metric(current, metrics.ndcg(k))
    shown = f"{best:.4f}" if best is not None else f"unknown (no test NDCG@{k} tag)"
    versus = f"test NDCG@{k} {score:.4f} vs champion version {current.version}'s {shown}"
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
    test_metrics: EvaluationResult | None = None,
) -> PromotionResult:
    """Evaluate, log, register; move ``champion`` if better (or forced). Returns a summary.

    ``test_metrics``: the checkpoint's test metrics on ``data_uri`` when the caller has
    just computed them (the pipeline), so the test split is not scored twice."""
    from negrec import checkpoint
    from negrec.evaluation.checkpoint_metrics import evaluate_checkpoint
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

    scores = test_metrics
    if scores is None:
        scores = evaluate_checkpoint(checkpoint_uri, data_uri, split="test")
    k = scores.k
    test = {name: scores.metrics[name] for name in metrics.reported(k)}
    ranking = metrics.ndcg(k)
    provenance = {
        tags.CHECKPOINT_URI: storage.redact(checkpoint_uri),
        tags.DATA_URI: storage.redact(data_uri),
    }
    with tempfile.TemporaryDirectory(prefix="negrec-promote-") as staging:
        model_dir = pyfunc.save(saved, vocabulary, Path(staging) / MODEL_ARTIFACT)
        run_id, source = _log_model_run(
            uri,
            experiment,
            f"promote-{model_name}",
            model_dir,
            tracking.flatten(saved.config.model_dump()),
            {f"test_{key}": v for key, v in scores.model_dump().items() if isinstance(v, float)},
            provenance,
        )
    client = tracking.client(uri)
    current = registry.champion(client, model_name)
    scored = {tags.test_metric(name): repr(score) for name, score in test.items()}
    version = registry.register(client, model_name, source, run_id, {**scored, **provenance})
    decision = decide(test[ranking], version, current, force, k)
    if decision.promote:
        client.set_registered_model_alias(model_name, registry.CHAMPION, version)
    previous = None if current is None else str(current.version)
    return PromotionResult(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        promoted=decision.promote,
        forced=force,
        decision=decision.reason,
        champion_version=version if decision.promote else previous,
        previous_champion_version=previous,
        k=k,
        previous_champion_test=(
            None if current is None else registry.version_metric(current, ranking)
        ),
        test=test,
        checkpoint=storage.redact(checkpoint_uri),
        data=storage.redact(data_uri),
        mlflow_run_id=run_id,
        tracking_uri=storage.redact(uri),
    )
