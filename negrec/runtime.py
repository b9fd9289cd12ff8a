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
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray import LoggingConfig

LOCAL_CPUS_ENV = "NEGREC_RAY_CPUS"
QUIET_ENV = {
    "RAY_DATA_LOG_LEVEL": "WARNING",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "RAY_AIR_NEW_OUTPUT": "0",
}
"""Ray Data's execution-plan and progress lines and MLflow's notices ("Creating initial
MLflow database tables", "Validating input example") are INFO, and Tune's newer console
output prints an experiment box and a TensorBoard hint whatever its verbosity (its
older one, at verbosity 0, prints nothing): all off unless ``--verbose``. Set in this
process's environment, which a local Ray instance's workers inherit, and given to a
joined cluster's workers as the job's ``runtime_env``."""
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
"""Ray Train watches for node preemption (spot instances) with an actor whose creation
makes Ray's core log a 380-character notice at every run. One machine has no other node
to be preempted in favour of, so a quiet run on one machine (one node, or several nodes
of a local test cluster, all at one address) goes without it."""
JOB_SUBMISSION_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by ``ray job submit`` for the job's driver: the job has a runtime_env of its own
(working_dir, often env_vars such as credentials), which one given to ``ray.init``
would conflict with, so a submitted job keeps Ray's output as the cluster sets it."""
GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"
"""The port a head node's GCS listens on, when set as it starts (Ray's own variable)."""
PACKAGE_DIR = Path(__file__).resolve().parent
"""The negrec package this process imported (this module is at its top level)."""
QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup",)
"""Loggers whose warnings are notices, not problems ("token authentication is enabled")."""
QUIET_FLAG = "NEGREC_QUIET_RAY"
"""Set by :func:`quiet_ray_logging`: a Ray instance this process starts or joins then logs
only warnings and errors in every one of its processes (Ray Train's per-report
``TrainingReport(...)`` dumps and worker-group lines are INFO)."""


def quiet_ray_logging() -> None:
    """Keep a stage's console to its own lines, warnings and errors (``--verbose`` skips
    this): a failed ``negrec prepare`` on a bad file printed 12 lines of Ray notices and
    Ray Data INFO around its one-line error."""
    for key, value in {**QUIET_ENV, QUIET_FLAG: "1"}.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_ray_requested() -> bool:
    """Whether Ray's own output is off (a stage without ``--verbose``), so that negrec
    draws progress itself."""
    return bool(os.environ.get(QUIET_FLAG))


def local_cpus() -> int:
    """Logical CPUs for a local Ray instance: at least 4, and twice the cores."""
    if LOCAL_CPUS_ENV in os.environ:
        return int(os.environ[LOCAL_CPUS_ENV])
    return max(4, 2 * (os.cpu_count() or 1))


def joined_runtime_env(quiet: bool) -> dict[str, object]:
    """The job's ``runtime_env`` on a joined cluster.

    ``py_modules``: this process's own negrec package goes to the workers, so that they
    run the code the driver runs, whatever the nodes have installed (an older release,
    or a checkout): a driver and workers of different versions would exchange pickled
    objects that do not match. ``env_vars``: the quiet settings, and the cluster's
    address, which Ray Train's placement-group cleaner otherwise guesses and gets wrong
    (a traceback) when several Ray instances run on one machine."""
    env = {**(QUIET_ENV if quiet else {}), "RAY_ADDRESS": os.environ["RAY_ADDRESS"]}
    return {
        "env_vars": env,
        "py_modules": [str(PACKAGE_DIR)],
        "excludes": ["__pycache__"],
    }


def ensure_ray(log_to_driver: bool = True) -> None:
    """Join ``RAY_ADDRESS`` if set (a cluster, or a job under ``ray job submit``),
    else start a local instance on 127.0.0.1 with planned resources; no-op if this
    process is already connected."""
    import ray

    if ray.is_initialized():
        return
    quiet = ray.LoggingConfig(log_level="WARNING") if quiet_ray_requested() else None
    # Quiet, the driver draws all progress itself and errors reach it as exceptions, so
    # the workers' own output (Ray keeps it under /tmp/ray/session_latest/logs) is not
    # forwarded: it would bring Ray's C++ stack dumps from the workers of every trial
    # that ASHA stops mid-step.
    log_to_driver = log_to_driver and quiet is None
    if os.environ.get("RAY_ADDRESS"):
        submitted = JOB_SUBMISSION_ENV in os.environ
        ray.init(
            log_to_driver=log_to_driver,
            configure_logging=False,
            logging_config=quiet,
            runtime_env=None if submitted else joined_runtime_env(quiet is not None),
        )
        if quiet and len({node["NodeManagerAddress"] for node in ray.nodes()}) == 1:
            os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")
    else:
        if quiet:  # before the instance starts, so that its workers inherit it
            os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")
        _start_local(quiet, log_to_driver)
    if quiet:
        # Ray Data's progress inside a Ray worker (Ray Train's dataset shards) goes to
        # tqdm_ray, which warns when tqdm is absent; off it, progress off a terminal is
        # logged at INFO, which RAY_DATA_LOG_LEVEL keeps out. (Turning the bars off
        # instead warns too.) The datasets carry this context to their executors.
        from ray.data import DataContext

        DataContext.get_current().use_ray_tqdm = False


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_local(quiet: LoggingConfig | None, log_to_driver: bool) -> None:
    """A local instance on 127.0.0.1 with planned resources.

    Its GCS port is chosen here so that the job's workers can be told their own
    instance's address (``RAY_ADDRESS`` in the job's ``runtime_env``): Ray Train's
    placement-group cleaner otherwise looks for "the" local instance, and with two on
    the machine (a benchmark and the demo) it fails, the resources of a sweep's stopped
    trial are never freed, and the next trial waits for them for ever."""
    import ray

    port = _free_port()
    os.environ[GCS_PORT_ENV] = str(port)  # read by the head node as it starts
    try:
        ray.init(
            logging_config=quiet,
            num_cpus=local_cpus(),
            # The dashboard serves the State API, which Ray Train's placement-group
            # cleaner polls; without it every run logs "Failed to query ... actor state".
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            log_to_driver=log_to_driver,
            configure_logging=False,
            _node_ip_address="127.0.0.1",
            runtime_env={"env_vars": {"RAY_ADDRESS": f"127.0.0.1:{port}"}},
        )
    finally:
        os.environ.pop(GCS_PORT_ENV, None)
