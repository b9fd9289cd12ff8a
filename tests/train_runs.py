"""Small Ray Train runs for the distributed tests, and the checks of a run that a test
interrupts (a killed worker, a lost node) while it runs in the background."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from negrec import storage, tracking
from negrec.config import NegrecConfig, build_config
from negrec.distributed.trainer import TrainJob, run

SMALL = {
    "model": {"max_len": 50, "dim": 32, "blocks": 1, "dropout": 0.1},
    "objective": {"loss": "softmax", "negatives": 64},
    "train": {"batch_size": 64, "lr": 3e-3, "max_epochs": 3, "patience": 3},
}
INTERRUPTIBLE = {"max_epochs": 3, "batch_size": 8, "patience": 5}
"""Small batches make an epoch of ``small_prepared`` long enough to be interrupted in its
middle; three epochs leave one to resume after the first checkpoint."""


def small_config(**train: Any) -> NegrecConfig:
    """``SMALL`` with these ``train`` keys changed."""
    values = json.loads(json.dumps(SMALL))
    values["train"].update(train)
    return build_config(values)


def run_in_background(job: TrainJob) -> tuple[threading.Thread, dict[str, Any]]:
    """The run in a thread of this driver; the dict gets its summary's fields."""
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(run(job)))
    thread.start()
    return thread, outcome


def wait_for_registered_checkpoint(
    job: TrainJob, thread: threading.Thread, timeout_s: float = 300
) -> None:
    """Until Ray Train has registered the run's first checkpoint.

    A checkpoint folder exists as soon as rank 0 has uploaded it, but a restart resumes
    from it only once Ray Train has registered it, which it records in its
    checkpoint-manager snapshot. Interrupting in between would rightly restart epoch 1.
    """
    snapshot = storage.join(job.storage, job.name, "checkpoint_manager_snapshot.json")
    deadline = time.time() + timeout_s
    while not (storage.exists(snapshot) and "checkpoint_" in storage.read_text(snapshot)):
        assert time.time() < deadline and thread.is_alive(), "no registered checkpoint"
        time.sleep(0.1)


def assert_every_epoch_logged_once(tracking_uri: str, run_id: str, epochs: int) -> None:
    """Each epoch's validation metric is in MLflow exactly once: an epoch trained again
    after a restart is not counted twice, and none is missing."""
    history = tracking.client(tracking_uri).get_metric_history(run_id, "val_ndcg_at_10")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))
