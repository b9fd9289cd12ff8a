"""The test session's Ray cluster: a head and two worker nodes, every one on 127.0.0.1.

Why several nodes on one machine: workers placed across nodes, a Train worker on a node
other than the driver's, and a node lost in the middle of a run are what a real cluster
does and one local instance never shows (``tests/test_multinode.py``). Each node is a
raylet of its own with its own resources; together they have ``RAY_TEST_CPUS``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from tests.serving_helpers import free_port

if TYPE_CHECKING:
    from ray._private.node import Node
    from ray.cluster_utils import Cluster

RAY_TEST_CPUS = 8
"""More logical CPUs than the machine's 2 cores, so that Train workers (which take one
each) never starve Ray Data's read and map tasks."""
HEAD_CPUS = 4
WORKER_NODES = 2
WORKER_NODE_CPUS = (RAY_TEST_CPUS - HEAD_CPUS) // WORKER_NODES
TEMP_DIR = Path(f"/tmp/negrec-ray-{os.getpid()}")
"""Short: Ray's socket paths under it must stay below 108 bytes."""


@contextmanager
def own_address_file() -> Iterator[None]:
    """Ray records the head's address for a later ``ray.init()`` without one in its
    default temporary directory, and deletes it at shutdown: under this context that is
    the session's own, not ``/tmp/ray``, where a stage that a test starts (or anyone
    else's Ray on the machine) would join this cluster instead of starting its own."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_TMPDIR", str(TEMP_DIR))
        yield


def _node_args(cpus: int, object_store_mib: int) -> dict[str, Any]:
    return {
        "num_cpus": cpus,
        "object_store_memory": object_store_mib << 20,
        "node_ip_address": "127.0.0.1",
        "temp_dir": str(TEMP_DIR / "ray"),
    }


def start_cluster() -> Cluster:
    """The head (the driver's node, where Ray Train's controllers run) and the worker
    nodes. The head's dashboard ports are chosen here: another Ray on the machine holds
    the defaults."""
    from ray.cluster_utils import Cluster

    head = {
        **_node_args(HEAD_CPUS, 1024),
        # As a local negrec instance has it: Ray Train's placement-group cleaner asks
        # the dashboard's State API whether a run's controller is alive.
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "dashboard_port": free_port(),
        "dashboard_agent_listen_port": free_port(),
    }
    with own_address_file():
        cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(WORKER_NODES):
        add_worker_node(cluster)
    return cluster


def add_worker_node(cluster: Cluster) -> Node:
    """One more worker node with the resources every worker node of the session has."""
    return cluster.add_node(**_node_args(WORKER_NODE_CPUS, 512))


def stop_cluster(cluster: Cluster) -> None:
    with own_address_file():
        cluster.shutdown()


def ray_processes_by_node(cluster: Cluster, title: str) -> dict[str, list[int]]:
    """The processes whose title names ``title`` (an actor class: ``RayTrainWorker``,
    ``TrainController``) under each node id of the cluster's (descendants of its
    raylet), never those of another Ray instance on the same machine."""
    from ray._private.ray_constants import PROCESS_TYPE_RAYLET

    found: dict[str, list[int]] = {}
    for node in cluster.list_all_nodes():
        for raylet in node.all_processes[PROCESS_TYPE_RAYLET]:
            for child in psutil.Process(raylet.process.pid).children(recursive=True):
                if any(title in part for part in _cmdline(child)):
                    found.setdefault(node.node_id, []).append(child.pid)
    return found


def _cmdline(process: psutil.Process) -> list[str]:
    """A process's command line; none for one that has exited meanwhile (Ray stops idle
    workers at any time)."""
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return []


def train_worker_pids(cluster: Cluster) -> list[int]:
    """Ray Train worker processes on any node of the cluster."""
    return [
        pid for pids in ray_processes_by_node(cluster, "RayTrainWorker").values() for pid in pids
    ]
