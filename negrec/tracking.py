"""MLflow tracking: where the store is, one run per training run, metrics logged once.

Why a module: every stage (train, tune, promote) must agree on the tracking URI, the
experiment, where its artifacts go (beside the store, never the working directory:
:func:`artifact_location`) and how a re-run finds its earlier MLflow run; and nothing
here may leak a credential (a tracking URI can carry ``user:password@``).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from negrec.errors import NegrecError
from negrec.storage import redact

RUN_NAME_TAG = "negrec.run_name"
DEFAULT_EXPERIMENT = "negrec"
ARTIFACT_ROOT_ENV = "NEGREC_ARTIFACT_ROOT"
"""Artifact location of the experiments negrec creates; see :func:`artifact_location`."""
ARTIFACTS_FOLDER = "mlartifacts"
"""Beside a sqlite database, the folder of its experiments' artifacts."""
DATABASE_SCHEMES = {"postgresql", "mysql", "mssql", "oracle"}


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    Relative sqlite paths are made absolute so Ray workers (whose working directory
    differs from the driver's) write to the same database.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any compute, when the tracking store cannot be used."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                return
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise NegrecError(
                f"MLflow tracking server {redact(uri)} is unreachable ({redact(str(reason))}); "
                "start it, fix --tracking-uri / MLFLOW_TRACKING_URI, or unset it to use a "
                "local sqlite store"
            ) from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise NegrecError(
                f"cannot create the MLflow database in {folder}: the folder does not exist "
                "or is not writable; create it or choose another --tracking-uri"
            )


def artifact_location(uri: str) -> str | None:
    """Where an experiment that negrec creates keeps its artifacts: never wherever the
    process happens to run (MLflow's own default for a database store is ``./mlruns``
    in the working directory, resolved by whichever process creates the experiment).

    - ``NEGREC_ARTIFACT_ROOT`` if set: a folder (made absolute) or a URI (``s3://...``);
    - a sqlite store ``sqlite:///DIR/mlflow.db``: ``DIR/mlartifacts``, beside the
      database, so the two move (and are deleted) together;
    - a tracking server (``http(s)://``, ``databricks``) or a file store: None, the
      server's ``--artifacts-destination`` or the store's own folder decides;
    - another database (``postgresql://``, ...): refused without ``NEGREC_ARTIFACT_ROOT``.

    An experiment keeps the location it was created with (MLflow cannot move it).
    """
    root = os.environ.get(ARTIFACT_ROOT_ENV)
    if root:
        return root if "://" in root else str(Path(root).expanduser().resolve())
    uri = resolve_tracking_uri(uri)
    scheme = uri.partition(":")[0].split("+")[0].lower() if "://" in uri else "file"
    if scheme == "sqlite":
        return str(Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS_FOLDER)
    if scheme in DATABASE_SCHEMES:
        raise NegrecError(
            f"tracking store {redact(uri)} is a database with no place for artifacts: set "
            f"{ARTIFACT_ROOT_ENV} (e.g. s3://my-bucket/mlflow), or track through an MLflow "
            "server started with --artifacts-destination"
        )
    return None


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(uri: str, name: str = DEFAULT_EXPERIMENT) -> str:
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(name, artifact_location=artifact_location(uri))


def start_or_resume_run(
    uri: str,
    run_name: str,
    experiment: str = DEFAULT_EXPERIMENT,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> str:
    """The id of the latest run called ``run_name``, or of a new one.

    Re-running a training run with the same name resumes it from its checkpoint, so it
    keeps logging into the same MLflow run instead of scattering epochs over several.
    """
    existing = find_run(uri, run_name, experiment)
    if existing is not None:
        return existing
    all_tags = {RUN_NAME_TAG: run_name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    exp_id = experiment_id(uri, experiment)
    run = client(uri).create_run(exp_id, run_name=run_name, tags=all_tags)
    return run.info.run_id


def find_run(uri: str, run_name: str, experiment: str = DEFAULT_EXPERIMENT) -> str | None:
    """The id of the latest run called ``run_name``, or None."""
    existing = client(uri).search_runs(
        [experiment_id(uri, experiment)],
        filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return existing[0].info.run_id if existing else None


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"model.dim": "128", ...}`` for MLflow params."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def log_params(uri: str, run_id: str, params: Mapping[str, str]) -> None:
    """Log params not yet on the run (MLflow refuses to change a logged param)."""
    from mlflow.entities import Param

    mlflow_client = client(uri)
    logged = mlflow_client.get_run(run_id).data.params
    fresh = [Param(k, v) for k, v in params.items() if k not in logged]
    for start in range(0, len(fresh), 100):
        mlflow_client.log_batch(run_id, params=fresh[start : start + 100])


def logged_steps(uri: str, run_id: str, metric: str) -> set[int]:
    return {m.step for m in client(uri).get_metric_history(run_id, metric)}


def log_metrics(uri: str, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    batch = [Metric(metric_name(k), float(v), stamp, step) for k, v in metrics.items()]
    client(uri).log_batch(run_id, metrics=batch)


def metric_name(key: str) -> str:
    """MLflow metric names may not contain '@'."""
    return key.replace("@", "_at_")
