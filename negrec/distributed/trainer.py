"""The training driver: one ``negrec train`` run on Ray Train (DDP), tracked in MLflow.

It lives next to the Ray Train worker it starts (``worker.py``). The driver validates
everything it can before compute is spent (config, prepared data, tracking store,
resources), opens or resumes the MLflow run, and fits a ``TorchTrainer`` whose workers
run the one training loop. Re-running with the same ``--name`` and ``--storage`` resumes
from the latest checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from negrec import metrics, storage, tags, tracking
from negrec.config import NegrecConfig
from negrec.console import clip
from negrec.distributed.learning_curve import FILENAME, log_run_curve
from negrec.distributed.progress import watch_run
from negrec.distributed.resources import DEFAULT_CACHE_LIMIT_MIB, plan_workers
from negrec.distributed.worker import (
    WorkerSpec,
    train_worker,
)
from negrec.errors import NegrecError
from negrec.objectives.choice import resolve_objective
from negrec.runtime import ensure_ray, quiet_ray_requested
from negrec.storage import AbsoluteUri, StorageOptions
from negrec.strict import FrozenModel, StrictModel

if TYPE_CHECKING:
    from negrec.data.loaders import PreparedData
    from negrec.data.manifest import Manifest


PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_SPREAD"]
"""How Ray places the Train workers' resource bundles on nodes (``ScalingConfig``)."""


class TrainJob(StrictModel):
    """One training run: what to train on, where to keep it, how to scale it."""

    data: AbsoluteUri = Field(description="URI of a prepared dataset (negrec prepare --out)")
    storage: AbsoluteUri = Field(
        description="URI under which Ray Train keeps run state/checkpoints"
    )
    name: str = Field(description="Run name; re-running the same name resumes")
    config: NegrecConfig = Field(default_factory=NegrecConfig)
    workers: int | None = Field(None, ge=1)
    gpu: bool | None = None
    cpus_per_worker: float | None = Field(
        None, gt=0, description="Fixed CPU share per worker (default: planned from the cluster)"
    )
    placement_strategy: PlacementStrategy = Field(
        "PACK",
        description="PACK: as few nodes as possible; SPREAD: across nodes where they "
        "fit; STRICT_SPREAD: every worker on a node of its own (the run waits until there "
        "are as many nodes as workers)",
    )
    tracking_uri: str | None = None
    experiment: str = tracking.DEFAULT_EXPERIMENT
    keep_checkpoints: int = Field(3, ge=1, description="Best N by validation NDCG@eval_k")
    max_failures: int = Field(3, ge=-1, description="Worker-group restarts from a checkpoint")
    parent_run_id: str | None = None
    progress: Literal["draw", "epoch_lines", "none"] | None = Field(
        None,
        description="draw: this process shows the epochs as one progress display; "
        "epoch_lines: rank 0 prints a line per epoch (what --verbose gets, with Ray's own "
        "output); none: nothing (a sweep's trials: the sweep shows them). "
        "Default: draw, or epoch_lines with --verbose",
    )
    cache_limit_mib: int = Field(
        DEFAULT_CACHE_LIMIT_MIB,
        ge=0,
        description="Materialise the training stream in the object store when its "
        "fixed-length arrays fit in this many MiB (0 = always stream from storage)",
    )


TEST_PREFIX = "test_"


class TrainSummary(FrozenModel):
    """What :func:`run` returns and ``negrec train --json`` prints.

    In the JSON the test metrics are top-level keys under their logged names
    (``test_ndcg_at_10``, ``test_mrr``, ...: ``negrec.metrics``), as they always were;
    here they are the ``test`` dict, so that no field name depends on ``train.eval_k``.
    """

    name: str
    checkpoint: str
    """URI of the best checkpoint Ray Train kept."""
    mlflow_run_id: str
    tracking_uri: str
    """The MLflow tracking URI, credentials redacted."""
    workers: int
    stop_reason: str | None
    start_epoch: int | None
    """First epoch of the last attempt (1 unless it resumed from a checkpoint)."""
    resumed_optimizer_step: int | None
    worker_node_ids: list[str] = Field(default_factory=list)
    """The Ray node each worker of the last attempt ran on, in rank order."""
    learning_curve: str | None = None
    """URI of the run's learning-curve PNG, beside the run (also an MLflow artifact)."""
    test: dict[str, float] = Field(default_factory=dict)
    """Test-split metrics under their logged names (``test_ndcg_at_10``, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _gather_test_metrics(cls, values: Any) -> Any:
        """The flat JSON form back into the model: ``test_*`` keys into ``test``."""
        if isinstance(values, dict) and "test" not in values:
            test = {k: v for k, v in values.items() if k.startswith(TEST_PREFIX)}
            values = {k: v for k, v in values.items() if k not in test} | {"test": test}
        return values

    @model_serializer(mode="wrap")
    def _flat_test_metrics(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {**{k: v for k, v in data.items() if k != "test"}, **data.get("test", {})}


BYTES_PER_POSITION = 4 * 8  # items, actions, targets, rejected as int64


RowLayout = tuple[int, bool]
"""How sequences become training rows: ``(model.max_len, windows)``; the training data
is built once per layout (a sweep shares it between trials)."""


def row_layout(config: NegrecConfig) -> RowLayout:
    return config.model.max_len, config.train.long_histories == "windows"


def training_data(prepared: Any, layout: RowLayout, cache_limit_mib: int) -> Any:
    """The training rows for Ray Train. Small enough data is built once on the driver
    and held in the object store: Ray Data re-reads and re-transforms a streamed
    dataset every epoch (seconds of fixed overhead per epoch even for a few thousand
    rows), and its read tasks cost a worker start-up before the first epoch."""
    from negrec.data.loaders import train_dataset, train_dataset_in_memory

    max_len, windows = layout
    rows = prepared.manifest.splits["train"].rows
    if windows:  # at most one more row per max_len interactions
        rows += prepared.manifest.train_interactions // max_len
    if rows * max_len * BYTES_PER_POSITION <= cache_limit_mib << 20:
        return train_dataset_in_memory(prepared, max_len, windows)
    return train_dataset(prepared, max_len, windows)


def _log_run_inputs(client: Any, uri: str, run_id: str, job: TrainJob, manifest: Manifest) -> None:
    params = tracking.flatten(job.config.model_dump())
    params.update({"data": job.data, "storage": job.storage})
    tracking.log_params(uri, run_id, params)
    client.log_text(run_id, yaml.safe_dump(job.config.model_dump()), "config.yaml")
    client.log_text(run_id, manifest.to_json(), "manifest.json")


def open_inputs(data: str, tracking_uri: str | None) -> tuple[PreparedData, str]:
    """The prepared dataset and the resolved tracking URI, both checked before any
    compute is spent (a run's and a sweep's pre-flight): the data has a manifest and
    non-empty evaluation splits, the tracking store answers."""
    from negrec.data.loaders import load_prepared
    from negrec.data.manifest import check_evaluation_splits

    options = StorageOptions.from_env()
    storage.configure_environment(options)
    prepared = load_prepared(data, options)
    check_evaluation_splits(prepared.manifest, data, minimum=1)
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_reachable(uri)
    return prepared, uri


def run(job: TrainJob, callbacks: Sequence[Any] = (), train_data: Any = None) -> TrainSummary:
    """Fit on Ray Train and return a summary (metrics, checkpoint URI, MLflow run id).

    ``train_data`` is a training dataset built by :func:`training_data` for this job's
    data and ``max_len``; a sweep builds it once and shares it between its trials.
    """
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train.torch import TorchTrainer

    prepared, uri = open_inputs(job.data, job.tracking_uri)
    options = prepared.storage
    ensure_ray()
    import ray

    plan = plan_workers(job.workers, job.gpu, ray.cluster_resources(), job.cpus_per_worker)
    print(clip(f"negrec train: {job.name}: {plan.describe()}"), flush=True)
    # The loop makes the same choice from the same catalogue size and batch shape.
    choice = resolve_objective(
        job.config.objective,
        prepared.manifest.num_items,
        job.config.train.batch_size,
        job.config.model.max_len,
    )
    print(clip(f"negrec train: {choice.line()}"), flush=True)
    run_id = tracking.start_or_resume_run(
        uri, job.name, job.experiment, parent_run_id=job.parent_run_id
    )
    client = tracking.client(uri)
    client.update_run(run_id, status="RUNNING")
    if tags.USER_ERROR in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, tags.USER_ERROR)  # an earlier attempt's
    _log_run_inputs(client, uri, run_id, job, prepared.manifest)

    filesystem, storage_path = storage.resolve(job.storage, options)
    progress = job.progress or ("draw" if quiet_ray_requested() else "epoch_lines")
    watched = progress == "draw"
    spec = WorkerSpec(
        config=job.config,
        data_uri=job.data,
        tracking_uri=uri,
        mlflow_run_id=run_id,
        print_epochs=progress == "epoch_lines",
    )
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=spec.model_dump(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.num_workers,
            use_gpu=plan.use_gpu,
            resources_per_worker={"CPU": plan.cpus_per_worker},
            placement_strategy=job.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=job.name,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=job.keep_checkpoints,
                checkpoint_score_attribute=metrics.val_ndcg(job.config.train.eval_k),
                checkpoint_score_order="max",
            ),
            failure_config=ray.train.FailureConfig(max_failures=job.max_failures),
            # Ray Train's INFO lines (a TrainingReport dump per report and rank, worker
            # group set-up) are what --verbose is for; warnings and errors always show.
            logging_config=ray.train.LoggingConfig(
                log_level="WARNING" if quiet_ray_requested() else "INFO"
            ),
            callbacks=list(callbacks),
        ),
        datasets={
            "train": train_data
            if train_data is not None
            else training_data(prepared, row_layout(job.config), job.cache_limit_mib)
        },
        # Ray Train's default ingest options set the deprecated exclude_resources, which
        # makes Ray Data warn at every run; these are the same defaults without it.
        dataset_config=ray.train.DataConfig(execution_options=ExecutionOptions()),
    )
    try:
        epochs, k = job.config.train.max_epochs, job.config.train.eval_k
        with watch_run(uri, run_id, f"train {job.name}", epochs, k) if watched else nullcontext():
            result = trainer.fit()
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    outcome = client.get_run(run_id).data.tags
    if tags.USER_ERROR in outcome:
        client.set_terminated(run_id, status="FAILED")
        raise NegrecError(outcome[tags.USER_ERROR])
    if result.checkpoint is None:
        raise NegrecError(f"run {job.name} finished without a checkpoint; see the log above")
    checkpoint_uri = storage.uri_for(job.storage, result.checkpoint.path)
    client.set_tag(run_id, tags.CHECKPOINT_URI, checkpoint_uri)
    client.set_terminated(run_id, status="FINISHED")
    curve = log_run_curve(
        uri, run_id, job.config.train.eval_k, storage.join(job.storage, job.name, FILENAME), options
    )
    logged = client.get_run(run_id).data.metrics
    return TrainSummary(
        name=job.name,
        checkpoint=checkpoint_uri,
        mlflow_run_id=run_id,
        tracking_uri=storage.redact(uri),
        workers=plan.num_workers,
        stop_reason=outcome.get(tags.STOP_REASON),
        start_epoch=result.metrics.get("start_epoch"),
        resumed_optimizer_step=result.metrics.get("resumed_optimizer_step"),
        worker_node_ids=outcome[tags.WORKER_NODE_IDS].split(","),
        learning_curve=curve,
        test={k: v for k, v in logged.items() if k.startswith(TEST_PREFIX)},
    )
