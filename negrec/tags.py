"""MLflow tag names negrec writes and reads back: the one place each is spelt.

Why tags: Ray Train's result holds only the latest checkpoint's metrics and a Ray Tune
trial runs in another process, so what a later stage must know of a run (why it
stopped, a user error in a worker, where its checkpoint is, which sweep it belongs to)
travels through the tracking store.
"""

from __future__ import annotations

from negrec.metrics import on_split

PREFIX = "negrec."
USER_ERROR = f"{PREFIX}error"
"""A worker's user error (bad data or config), for the driver to raise."""
STOP_REASON = f"{PREFIX}stop_reason"
CHECKPOINT_URI = f"{PREFIX}checkpoint_uri"
DATA_URI = f"{PREFIX}data_uri"
SWEEP_NAME = f"{PREFIX}sweep_name"
BEST_CHECKPOINT_URI = f"{PREFIX}best_checkpoint_uri"
BEST_CONFIG = f"{PREFIX}best_config"
STAGE = f"{PREFIX}stage"
TRIAL_ID = f"{PREFIX}trial_id"
WORKER_NODE_IDS = f"{PREFIX}worker_node_ids"
"""The Ray node id of every Train worker, comma-separated in rank order; each attempt
(a restart after a lost worker or node) writes its own placement over the last one's."""
DDP_BACKEND = f"{PREFIX}ddp_backend"
"""The torch process-group backend the run's workers synchronised over (``nccl`` on
GPUs, ``gloo`` on CPUs, ``none`` for one worker): what benchmarks/gpu_check.py reports."""


def test_metric(key: str) -> str:
    """``ndcg@10`` -> ``negrec.test_ndcg_at_10``: the tag a registered version's test
    metric lives in (registry versions have tags, not metrics)."""
    return f"{PREFIX}{on_split('test', key)}"
