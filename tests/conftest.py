"""Shared fixtures: one real local Ray instance per test session, started on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Ray on a 2-core machine: declare more logical CPUs than cores so that Train workers
# (which take one each) never starve Ray Data's read/map tasks.
RAY_TEST_CPUS = 8


@pytest.fixture(scope="session")
def ray_session(s3_server) -> Iterator[None]:
    """Ray starts after the test S3 endpoint so that its worker processes, which inherit
    the environment at start-up, see the endpoint and the fake credentials too."""
    import ray

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(
        num_cpus=RAY_TEST_CPUS,
        # As a local negrec instance has it: Ray Train's placement-group cleaner asks
        # the dashboard's State API whether a run's controller is alive.
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    yield
    ray.shutdown()


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
