"""Connecting to Ray: the cluster under ``ray job submit``, or a planned local instance.

Why explicit local resources: Ray sizes a local instance by physical cores, and on a
2-core machine two Train workers (one CPU each) then leave nothing for Ray Data's read
and map tasks, which hangs the run. A local instance therefore declares more logical
CPUs than cores (``NEGREC_RAY_CPUS`` overrides), and each Train worker takes a share
that leaves room for data tasks (see ``negrec.distributed.resources``).
"""

from __future__ import annotations

import logging
import os

LOCAL_CPUS_ENV = "NEGREC_RAY_CPUS"
QUIET_ENV = {"RAY_DATA_LOG_LEVEL": "WARNING"}
"""Ray Data's execution-plan and progress lines are INFO: off unless ``--verbose``.
Set in the environment so that the Ray workers started later inherit it."""
QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup",)
"""Loggers whose warnings are notices, not problems ("token authentication is enabled")."""


def quiet_ray_logging() -> None:
    """Keep a stage's console to its own lines, warnings and errors (``--verbose`` skips
    this): a failed ``negrec prepare`` on a bad file printed 12 lines of Ray notices and
    Ray Data INFO around its one-line error."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def local_cpus() -> int:
    """Logical CPUs for a local Ray instance: at least 4, and twice the cores."""
    if LOCAL_CPUS_ENV in os.environ:
        return int(os.environ[LOCAL_CPUS_ENV])
    return max(4, 2 * (os.cpu_count() or 1))


def ensure_ray(log_to_driver: bool = True) -> None:
    """Join ``RAY_ADDRESS`` if set (a cluster, or a job under ``ray job submit``),
    else start a local instance on 127.0.0.1 with planned resources; no-op if this
    process is already connected."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=log_to_driver, configure_logging=False)
        return
    ray.init(
        num_cpus=local_cpus(),
        # The dashboard serves the State API, which Ray Train's placement-group
        # cleaner polls; without it every run logs "Failed to query ... actor state".
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=log_to_driver,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
