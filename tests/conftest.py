"""Shared fixtures: one real local Ray cluster per test session (a head and two worker
nodes, tests/cluster.py), started on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# Checks shared between test modules keep pytest's detailed assertion messages; this
# must come before they are first imported.
pytest.register_assert_rewrite(
    "tests.cluster", "tests.objective_helpers", "tests.serving_helpers", "tests.train_runs"
)

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

    from tests.s3 import S3Server

# Read once, when ray is first imported (test modules import it as they are collected,
# after this file). Otherwise Ray rewrites 127.0.0.1 in a driver's address to the
# machine's outward IP, where the cluster's nodes, bound to 127.0.0.1 only, do not
# listen; with it Ray keeps every address of this machine on loopback, for this process
# and for every stage that a test starts in a subprocess.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(scope="session")
def ray_cluster(s3_server: S3Server) -> Iterator[Cluster]:
    """The session's cluster, this process connected to it as the driver (on the head),
    for tests that add or remove nodes; they leave it with its worker nodes as it was.

    It starts after the test S3 endpoint so that its processes, which inherit the
    environment at start-up, see the endpoint and the fake credentials too."""
    import ray
    from ray._private import ray_constants

    from tests.cluster import start_cluster, stop_cluster

    assert not ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before tests/conftest.py"
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    cluster = start_cluster()
    ray.init(
        address=cluster.address,
        log_to_driver=False,
        configure_logging=False,
        # As negrec's own local instance does (negrec.runtime): the State API in a
        # worker finds its cluster by RAY_ADDRESS, not by guessing among the machine's.
        runtime_env={"env_vars": {"RAY_ADDRESS": cluster.address}},
    )
    yield cluster
    ray.shutdown()
    stop_cluster(cluster)


@pytest.fixture(scope="session")
def ray_session(ray_cluster: Cluster) -> None:
    """This process is a driver of the session's Ray cluster."""


pytest_plugins = ["tests.s3", "tests.wheel"]


@pytest.fixture(scope="session")
def small_prepared(ray_session, tmp_path_factory) -> str:
    """A generated log (1,500 users, 600 items) prepared once per session on Ray Data."""
    from negrec.data import generated_log
    from negrec.data.preparation import prepare
    from negrec.data.prepare_config import PrepareConfig

    root = tmp_path_factory.mktemp("small")
    generated_log.run(
        generated_log.GenerateConfig(
            out=str(root / "log"), users=1500, items=600, events=60_000, seed=3
        )
    )
    out = str(root / "prepared")
    prepare(PrepareConfig(events=str(root / "log"), out=out))
    return out
