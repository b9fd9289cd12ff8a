"""On the session's multi-node cluster (tests/cluster.py): a run whose Train workers are
spread over nodes, with data and checkpoints on S3, loses a node hosting one of its
workers and resumes from its checkpoint on a replacement; its checkpoint then scores
the test split on two actors.

None of this holds on a single-node instance: STRICT_SPREAD cannot place two workers on
one node (the run waits for a second), and there is no node to remove but the driver's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from negrec import checkpoint, cli, tags, tracking
from negrec.distributed.trainer import TrainJob, TrainSummary
from negrec.serving.batch import read_score_manifest
from negrec.stages import train as train_stage
from tests.cluster import WORKER_NODES, add_worker_node, ray_processes_by_node
from tests.s3 import S3Server, new_bucket
from tests.serving_helpers import check_scores, known_items, read_scores, split_inputs
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


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    """One bucket for the module: the prepared data, the spread run and its scores."""
    return new_bucket(s3_server)


@pytest.fixture(scope="module")
def s3_prepared(ray_session: None, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated log prepared on Ray Data straight to S3, as large as ``small_prepared``
    so that an epoch of ``INTERRUPTIBLE`` lasts long enough to lose a node in it."""
    from negrec.data import generated_log
    from negrec.data.preparation import prepare
    from negrec.data.prepare_config import PrepareConfig

    log = tmp_path_factory.mktemp("multinode") / "log"
    generated_log.run(
        generated_log.GenerateConfig(out=str(log), users=1500, items=600, events=60_000, seed=5)
    )
    out = f"{bucket}/prepared"
    prepare(PrepareConfig(events=str(log), out=out))
    return out


@dataclass(frozen=True)
class NodeLoss:
    """A two-worker STRICT_SPREAD run that lost a node hosting one of its workers."""

    summary: TrainSummary
    tracking_uri: str
    run_id: str
    placed: list[str]
    """Where the first attempt's workers ran."""
    lost: str
    """The node removed in the middle of the run."""


@pytest.fixture(scope="module")
def node_loss(
    s3_prepared: str, bucket: str, ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> NodeLoss:
    """The run, with data and checkpoints on S3: once Ray Train has registered its first
    checkpoint, the worker node under one of its workers goes, and a replacement with
    the same resources joins so that the restart can be placed again."""
    tracking_uri = f"sqlite:///{tmp_path_factory.mktemp('node-loss')}/mlflow.db"
    job = TrainJob(
        data=s3_prepared,
        storage=f"{bucket}/runs",
        name="node-loss",
        workers=2,
        placement_strategy="STRICT_SPREAD",
        config=small_config(**INTERRUPTIBLE),
        tracking_uri=tracking_uri,
        max_failures=2,
    )
    thread, outcome = run_in_background(job)
    wait_for_registered_checkpoint(job, thread)
    run_id = tracking.find_run(tracking_uri, job.name)
    assert run_id is not None
    run_tags = tracking.client(tracking_uri).get_run(run_id).data.tags
    placed = run_tags[tags.WORKER_NODE_IDS].split(",")
    head = ray_cluster.head_node.node_id
    # Ray Train's controller runs on the driver's node, the head, which is never removed.
    assert set(ray_processes_by_node(ray_cluster, "TrainController")) == {head}
    assert set(ray_processes_by_node(ray_cluster, "RayTrainWorker")) == set(placed)
    lost = next(node for node in ray_cluster.worker_nodes if node.node_id in placed)
    try:
        ray_cluster.remove_node(lost)
    finally:
        add_worker_node(ray_cluster)  # as many nodes as before, for the restart and later
    thread.join(timeout=600)
    assert not thread.is_alive()
    return NodeLoss(TrainSummary(**outcome), tracking_uri, run_id, placed, lost.node_id)


def test_the_train_command_takes_a_placement_strategy() -> None:
    argv = ["train", "--data", "d", "--storage", "s", "--name", "n"]
    args = cli.build_parser(argv).parse_args([*argv, "--placement-strategy", "STRICT_SPREAD"])
    assert train_stage.job_from_args(args).placement_strategy == "STRICT_SPREAD"
    assert cli.build_parser(argv).parse_args(argv).placement_strategy == "PACK"
    with pytest.raises(SystemExit):
        cli.build_parser(argv).parse_args([*argv, "--placement-strategy", "ANYWHERE"])


def test_strict_spread_puts_each_worker_on_a_node_of_its_own(
    node_loss: NodeLoss, ray_cluster: Cluster, bucket: str
) -> None:
    summary = node_loss.summary
    for nodes in (node_loss.placed, summary.worker_node_ids):  # both attempts
        assert len(nodes) == 2 and nodes[0] != nodes[1]  # PACK would put both on one here
    assert set(summary.worker_node_ids) <= {n.node_id for n in ray_cluster.list_all_nodes()}
    run_tags = tracking.client(node_loss.tracking_uri).get_run(node_loss.run_id).data.tags
    assert run_tags[tags.WORKER_NODE_IDS] == ",".join(summary.worker_node_ids)  # the last
    assert run_tags[tags.DDP_BACKEND] == "gloo"  # CPU workers synchronise over gloo
    shown = json.loads(summary.model_dump_json())  # what negrec train --json prints
    assert shown["worker_node_ids"] == summary.worker_node_ids and "test_ndcg_at_10" in shown
    assert summary.checkpoint.startswith(f"{bucket}/runs/node-loss/")


def test_a_run_that_loses_a_node_resumes_from_its_checkpoint_on_a_replacement(
    node_loss: NodeLoss, ray_cluster: Cluster
) -> None:
    summary = node_loss.summary
    assert summary.start_epoch is not None and summary.start_epoch > 1
    assert summary.resumed_optimizer_step is not None and summary.resumed_optimizer_step > 0
    assert node_loss.lost in node_loss.placed and node_loss.lost not in summary.worker_node_ids
    epochs = INTERRUPTIBLE["max_epochs"]
    assert_every_epoch_logged_once(node_loss.tracking_uri, node_loss.run_id, epochs)
    assert checkpoint.load(summary.checkpoint).state.epoch == epochs
    assert len(ray_cluster.worker_nodes) == WORKER_NODES


def test_the_recovered_checkpoint_scores_the_test_split_to_s3_on_two_actors(
    node_loss: NodeLoss,
    s3_prepared: str,
    bucket: str,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = f"{bucket}/scores/test"
    argv = ["score", "--model", node_loss.summary.checkpoint, "--data", s3_prepared]
    assert cli.main([*argv, "--split", "test", "-k", "5", "--actors", "2", "--out", out]) == 0
    capsys.readouterr()
    inputs = split_inputs(s3_prepared, "test")
    manifest = read_score_manifest(out, s3_server.options)
    assert manifest.actors == 2 and manifest.k == 5
    assert manifest.users_in == manifest.users_out == len(inputs)
    check_scores(read_scores(out, s3_server.options), inputs, known_items(s3_prepared), 5)
