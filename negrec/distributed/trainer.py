"""The training driver: one ``negrec train`` run on Ray Train (DDP), tracked in MLflow.

It lives next to the Ray Train worker it starts (``worker.py``). The driver validates
everything it can before compute is spent (config, prepared data, tracking store,
resources), opens or resumes the MLflow run, and fits a ``TorchTrainer`` whose workers
run the one training loop. Re-running with the same ``--name`` and ``--storage`` resumes
from the latest checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import Field

from negrec import metrics, storage, tags, tracking
from negrec.config import NegrecConfig
from negrec.distributed.resources import DEFAULT_CACHE_LIMIT_MIB, plan_workers
from negrec.distributed.worker import (
    WorkerSpec,
    train_worker,
)
from negrec.errors import NegrecError
from negrec.runtime import ensure_ray
from negrec.storage import AbsoluteUri, StorageOptions
from negrec.strict import StrictModel


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
    tracking_uri: str | None = None
    experiment: str = tracking.DEFAULT_EXPERIMENT
    keep_checkpoints: int = Field(3, ge=1, description="Best N by validation NDCG@eval_k")
    max_failures: int = Field(3, ge=-1, description="Worker-group restarts from a checkpoint")
    parent_run_id: str | None = None
    cache_limit_mib: int = Field(
        DEFAULT_CACHE_LIMIT_MIB,
        ge=0,
        description="Materialise the training stream in the object store when its "
        "fixed-length arrays fit in this many MiB (0 = always stream from storage)",
    )


BYTES_PER_POSITION = 4 * 8  # items, actions, targets, rejected as int64


def training_data(prepared: Any, max_len: int, cache_limit_mib: int) -> Any:
    """The training rows for Ray Train. Small enough data is built once on the driver
    and held in the object store: Ray Data re-reads and re-transforms a streamed
    dataset every epoch (seconds of fixed overhead per epoch even for a few thousand
    rows), and its read tasks cost a worker start-up before the first epoch."""
    from negrec.data.loaders import train_dataset, train_dataset_in_memory

    rows = prepared.manifest["splits"]["train"]["rows"]
    if rows * max_len * BYTES_PER_POSITION <= cache_limit_mib << 20:
        return train_dataset_in_memory(prepared, max_len)
    return train_dataset(prepared, max_len)


def _log_run_inputs(
    client: Any, uri: str, run_id: str, job: TrainJob, manifest: dict[str, Any]
) -> None:
    params = tracking.flatten(job.config.model_dump())
    params.update({"data": job.data, "storage": job.storage})
    tracking.log_params(uri, run_id, params)
    client.log_text(run_id, yaml.safe_dump(job.config.model_dump()), "config.yaml")
    client.log_text(run_id, json.dumps(manifest, indent=2), "manifest.json")


def run(job: TrainJob, callbacks: Sequence[Any] = (), train_data: Any = None) -> dict[str, Any]:
    """Fit on Ray Train and return a summary (metrics, checkpoint URI, MLflow run id).

    ``train_data`` is a training dataset built by :func:`training_data` for this job's
    data and ``max_len``; a sweep builds it once and shares it between its trials.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from negrec.data.loaders import load_prepared
    from negrec.data.manifest import check_evaluation_splits

    options = StorageOptions.from_env()
    storage.configure_environment(options)
    prepared = load_prepared(job.data, options)
    check_evaluation_splits(prepared.manifest, job.data, minimum=1)
    uri = tracking.resolve_tracking_uri(job.tracking_uri)
    tracking.check_reachable(uri)
    ensure_ray()
    import ray

    plan = plan_workers(job.workers, job.gpu, ray.cluster_resources(), job.cpus_per_worker)
    print(f"negrec train: {job.name}: {plan.describe()}", flush=True)
    run_id = tracking.start_or_resume_run(
        uri, job.name, job.experiment, parent_run_id=job.parent_run_id
    )
    client = tracking.client(uri)
    client.update_run(run_id, status="RUNNING")
    if tags.USER_ERROR in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, tags.USER_ERROR)  # an earlier attempt's
    _log_run_inputs(client, uri, run_id, job, prepared.manifest)

    filesystem, storage_path = storage.resolve(job.storage, options)
    spec = WorkerSpec(config=job.config, data_uri=job.data, tracking_uri=uri, mlflow_run_id=run_id)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=spec.model_dump(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.num_workers,
            use_gpu=plan.use_gpu,
            resources_per_worker={"CPU": plan.cpus_per_worker},
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
            callbacks=list(callbacks),
        ),
        datasets={
            "train": train_data
            if train_data is not None
            else training_data(prepared, job.config.model.max_len, job.cache_limit_mib)
        },
    )
    try:
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
    logged = client.get_run(run_id).data.metrics
    test = {k: v for k, v in logged.items() if k.startswith("test_")}
    return {
        "name": job.name,
        "checkpoint": checkpoint_uri,
        "mlflow_run_id": run_id,
        "tracking_uri": storage.redact(uri),
        "workers": plan.num_workers,
        "stop_reason": outcome.get(tags.STOP_REASON),
        "start_epoch": result.metrics.get("start_epoch"),
        "resumed_optimizer_step": result.metrics.get("resumed_optimizer_step"),
        **test,
    }
