"""On the session's multi-node cluster (tests/cluster.py): Train workers spread over
nodes with S3 storage, scoring on actors from that checkpoint, and a run that loses a
node hosting one of its workers and resumes from its checkpoint on a replacement.

None of this holds on a single-node instance: STRICT_SPREAD cannot place two workers on
one node (the run waits for a second), and there is no node to remove but the driver's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from negrec import checkpoint, cli, tags, tracking
from negrec.distributed.trainer import TrainJob, TrainSummary, run
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
    """A small generated log prepared on Ray Data straight to S3."""
    from negrec.data import generated_log
    from negrec.data.preparation import prepare
    from negrec.data.prepare_config import PrepareConfig

    log = tmp_path_factory.mktemp("multinode") / "log"
    generated_log.run(
        generated_log.GenerateConfig(out=str(log), users=400, items=150, events=12_000, seed=5)
    )
    out = f"{bucket}/prepared"
    prepare(PrepareConfig(events=str(log), out=out))
    return out


@pytest.fixture(scope="module")
def spread(s3_prepared: str, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> TrainSummary:
    """Two workers, each on a node of its own, checkpoints on S3."""
    tracking_uri = f"sqlite:///{tmp_path_factory.mktemp('spread')}/mlflow.db"
    return run(
        TrainJob(
            data=s3_prepared,
            storage=f"{bucket}/runs",
            name="spread",
            workers=2,
            placement_strategy="STRICT_SPREAD",
            config=small_config(max_epochs=1),
            tracking_uri=tracking_uri,
        )
    )


def test_the_train_command_takes_a_placement_strategy() -> None:
    argv = ["train", "--data", "d", "--storage", "s", "--name", "n"]
    args = cli.build_parser(argv).parse_args([*argv, "--placement-strategy", "STRICT_SPREAD"])
    assert train_stage.job_from_args(args).placement_strategy == "STRICT_SPREAD"
    assert cli.build_parser(argv).parse_args(argv).placement_strategy == "PACK"
    with pytest.raises(SystemExit):
        cli.build_parser(argv).parse_args([*argv, "--placement-strategy", "ANYWHERE"])


def test_strict_spread_puts_each_worker_on_a_node_of_its_own(
    spread: TrainSummary, ray_cluster: Cluster, bucket: str
) -> None:
    nodes = spread.worker_node_ids
    assert spread.workers == 2 and len(nodes) == 2
    assert nodes[0] != nodes[1]  # both on one node is what PACK would do here
    assert set(nodes) <= {node.node_id for node in ray_cluster.list_all_nodes()}  # live ones
    run_tags = tracking.client(spread.tracking_uri).get_run(spread.mlflow_run_id).data.tags
    assert run_tags[tags.WORKER_NODE_IDS] == ",".join(nodes)
    assert run_tags[tags.DDP_BACKEND] == "gloo"  # CPU workers synchronise over gloo
    shown = json.loads(spread.model_dump_json())  # what negrec train --json prints
    assert shown["worker_node_ids"] == nodes and "test_ndcg_at_10" in shown
    assert spread.checkpoint.startswith(f"{bucket}/runs/spread/")
    assert checkpoint.load(spread.checkpoint).state.epoch == 1


def test_the_spread_checkpoint_scores_the_test_split_to_s3_on_two_actors(
    spread: TrainSummary,
    s3_prepared: str,
    bucket: str,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = f"{bucket}/scores/test"
    argv = ["score", "--model", spread.checkpoint, "--data", s3_prepared, "--split", "test"]
    assert cli.main([*argv, "-k", "5", "--actors", "2", "--out", out, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    inputs = split_inputs(s3_prepared, "test")
    assert summary["users_in"] == summary["users_out"] == len(inputs)
    manifest = read_score_manifest(out, s3_server.options)
    assert manifest.actors == 2 and manifest.k == 5
    check_scores(read_scores(out, s3_server.options), inputs, known_items(s3_prepared), 5)


def test_a_run_that_loses_a_node_resumes_from_its_checkpoint_on_a_replacement(
    small_prepared: str, ray_cluster: Cluster, tmp_path: Path
) -> None:
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    job = TrainJob(
        data=small_prepared,
        storage=str(tmp_path / "runs"),
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
    assert outcome["start_epoch"] > 1 and outcome["resumed_optimizer_step"] > 0
    assert lost.node_id not in outcome["worker_node_ids"]
    assert len(set(outcome["worker_node_ids"])) == 2
    assert_every_epoch_logged_once(tracking_uri, run_id, INTERRUPTIBLE["max_epochs"])
    assert checkpoint.load(outcome["checkpoint"]).state.epoch == INTERRUPTIBLE["max_epochs"]
    assert len(ray_cluster.worker_nodes) == WORKER_NODES
