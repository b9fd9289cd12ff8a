"""Ray Train: DDP over two CPU workers, resume, recovery from a killed worker, S3."""

from __future__ import annotations

import json
import os
import signal
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from ray.train import UserCallback

from negrec import checkpoint, storage, tracking
from negrec.data.loaders import item_counts, load_prepared, local_eval_batches
from negrec.distributed import learning_curve
from negrec.distributed.trainer import TrainJob, run
from negrec.evaluation import evaluate, model_scorer, popularity_scorer
from negrec.model import ActionAwareGSASRec
from tests.cluster import train_worker_pids
from tests.train_runs import (
    INTERRUPTIBLE,
    assert_every_epoch_logged_once,
    run_in_background,
    small_config,
    wait_for_registered_checkpoint,
)

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

pytestmark = pytest.mark.slow


class RecordReports(UserCallback):
    """Runs in the Train controller process: appends every rank's metrics to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def after_report(self, run_context, metrics, checkpoint) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(metrics) + "\n")


def assert_learning_curve_png(data: bytes) -> None:
    """A PNG of the learning curve's pixel size, big enough to hold a drawn figure."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == learning_curve.PIXELS
    assert len(data) > 10_000


def _val_ndcg(prepared_uri: str, scorer) -> float:
    prepared = load_prepared(prepared_uri)
    return evaluate(scorer, local_eval_batches(prepared, "val", 512, 50)).metrics()["ndcg@10"]


def test_two_workers_ddp_learns_keeps_ranks_identical_and_tracks_in_mlflow(
    small_prepared: str, tmp_path: Path
) -> None:
    reports = tmp_path / "reports.jsonl"
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    summary = run(
        TrainJob(
            data=small_prepared,
            storage=str(tmp_path / "runs"),
            name="ddp",
            workers=2,
            config=small_config(),
            tracking_uri=tracking_uri,
        ),
        callbacks=[RecordReports(str(reports))],
    )
    assert summary.workers == 2
    per_report = [json.loads(line) for line in reports.read_text().splitlines()]
    # Every report carries one metrics dict per rank; the final one the weight digests.
    assert all(len(ranks) == 2 for ranks in per_report)
    epochs = [r for r in per_report if "epoch" in r[0]]
    assert [r[0]["epoch"] for r in epochs] == [1, 2, 3]
    for rank0, rank1 in epochs:
        assert rank0["val_ndcg_at_10"] == rank1["val_ndcg_at_10"]  # reduced over all ranks
    final = per_report[-1]
    assert final[0]["parameter_digest"] == final[1]["parameter_digest"]

    saved = checkpoint.load(summary.checkpoint)
    trained = _val_ndcg(small_prepared, model_scorer(saved.best_model()))
    torch.manual_seed(0)
    untrained = ActionAwareGSASRec(saved.num_items, saved.config.model).eval()
    prepared = load_prepared(small_prepared)
    assert trained > _val_ndcg(small_prepared, model_scorer(untrained)) + 0.05
    assert trained > _val_ndcg(small_prepared, popularity_scorer(item_counts(prepared)))
    assert trained == pytest.approx(max(r[0]["val_ndcg_at_10"] for r in epochs))

    client = tracking.client(tracking_uri)
    mlflow_run = client.get_run(summary.mlflow_run_id)
    assert mlflow_run.data.params["model.dim"] == "32"
    assert mlflow_run.data.params["objective.loss"] == "softmax"
    assert "test_ndcg_at_10" in mlflow_run.data.metrics
    assert mlflow_run.data.tags["negrec.checkpoint_uri"] == summary.checkpoint
    history = client.get_metric_history(summary.mlflow_run_id, "val_ndcg_at_10")
    assert sorted(m.step for m in history) == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(summary.mlflow_run_id)}
    assert {"config.yaml", "manifest.json", learning_curve.FILENAME} <= artifacts
    # The learning curve: an artifact of the run, and the same PNG beside the run.
    downloaded = client.download_artifacts(
        summary.mlflow_run_id, learning_curve.FILENAME, str(tmp_path)
    )
    png = Path(downloaded).read_bytes()
    assert_learning_curve_png(png)
    assert summary.learning_curve == str(tmp_path / "runs" / "ddp" / learning_curve.FILENAME)
    assert Path(summary.learning_curve).read_bytes() == png


def test_rerun_with_same_name_resumes_with_saved_optimizer_on_s3(
    small_prepared: str, s3_bucket: str, tmp_path: Path
) -> None:
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"

    def job(epochs: int, test_at_end: bool = True) -> TrainJob:
        return TrainJob(
            data=small_prepared,
            storage=f"{s3_bucket}/runs",
            name="resume",
            workers=1,
            config=small_config(max_epochs=epochs, patience=5, test_at_end=test_at_end),
            tracking_uri=tracking_uri,
        )

    first = run(job(1, test_at_end=False))
    assert first.test == {}  # train.test_at_end=false: no test ranking at the end
    assert first.checkpoint.startswith(f"{s3_bucket}/runs/resume/")
    assert checkpoint.load(first.checkpoint).state.epoch == 1
    steps_epoch_one = checkpoint.load(first.checkpoint).state.step

    second = run(job(2))
    assert second.start_epoch == 2
    assert second.resumed_optimizer_step == steps_epoch_one > 0
    assert second.mlflow_run_id == first.mlflow_run_id
    assert "test_ndcg_at_10" in second.test
    final = checkpoint.load(second.checkpoint)
    assert final.state.epoch == 2 and final.state.step == 2 * steps_epoch_one
    history = tracking.client(tracking_uri).get_metric_history(
        second.mlflow_run_id, "val_ndcg_at_10"
    )
    assert sorted(m.step for m in history) == [1, 2]
    assert second.learning_curve == f"{s3_bucket}/runs/resume/{learning_curve.FILENAME}"
    assert_learning_curve_png(storage.read_bytes(second.learning_curve))  # written to S3


def test_killed_worker_recovers_from_checkpoint_without_double_counting(
    small_prepared: str, ray_cluster: Cluster, tmp_path: Path
) -> None:
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    job = TrainJob(
        data=small_prepared,
        storage=str(tmp_path / "runs"),
        name="killed",
        workers=2,
        config=small_config(**INTERRUPTIBLE),
        tracking_uri=tracking_uri,
        max_failures=2,
    )
    thread, outcome = run_in_background(job)
    wait_for_registered_checkpoint(job, thread)
    victims = train_worker_pids(ray_cluster)
    assert victims, "no Train worker process found"
    os.kill(victims[-1], signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert outcome["start_epoch"] == 2  # the surviving attempt resumed after epoch 1
    assert_every_epoch_logged_once(tracking_uri, outcome["mlflow_run_id"], 3)
    assert checkpoint.load(outcome["checkpoint"]).state.epoch == 3
