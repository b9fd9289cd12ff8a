"""`ray job submit` of jobs/pipeline.py to a real Ray head started on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from negrec import checkpoint, tracking

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_head(temp_dir: Path) -> None:
    """Stop only this head's processes (``ray stop`` would stop every Ray on the machine,
    including the test session's own instance)."""
    mine = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(temp_dir) in part for part in (p.info["cmdline"] or []))
    ]
    for process in mine:
        process.kill()
    psutil.wait_procs(mine, timeout=30)


@pytest.fixture()
def auth_env() -> dict[str, str]:
    """Token authentication, explicitly: the head and the CLI share a fresh token. The
    virtual environment comes first on PATH so the job's `python` is the one negrec is
    installed in (on a cluster, the nodes' own Python)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    token = secrets.token_hex(32)
    return {**os.environ, "PATH": path, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


@pytest.fixture()
def ray_head(auth_env: dict[str, str]) -> Iterator[str]:
    # A short path: Ray's socket paths under the temp dir must stay below 108 bytes.
    temp_dir = Path(f"/tmp/negrec-head-{os.getpid()}")
    dashboard = _free_port()
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={_free_port()}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            # Every port explicit: other Ray instances on this machine hold the defaults.
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
            "--num-cpus=4",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        timeout=180,
        env=auth_env,
    )
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        _stop_head(temp_dir)


def test_pipeline_job_submitted_with_a_working_dir_succeeds(
    ray_head: str, auth_env: dict[str, str], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    database = tmp_path / "mlflow.db"
    job = (
        f"python jobs/pipeline.py --root {store} --name job --users 400 --items 200 "
        f"--num-events 20000 --workers 1 --set train.max_epochs=2 "
        f"--tracking-uri sqlite:///{database} --json"
    )
    command = [RAY, "job", "submit", "--address", ray_head, "--working-dir", str(REPO)]
    command += ["--submission-id", "negrec-test-pipeline", "--", *job.split()]
    deadline = time.time() + 120
    while True:  # the head's job agent comes up a little after `ray start` returns
        submit = subprocess.run(command, capture_output=True, text=True, timeout=900, env=auth_env)
        if "No available agent" not in submit.stderr or time.time() > deadline:
            break
        time.sleep(3)
    output = submit.stdout + submit.stderr
    assert submit.returncode == 0, output[-3000:]
    assert "succeeded" in output.lower()
    summary = json.loads(
        next(line for line in reversed(submit.stdout.splitlines()) if line.startswith("{"))
    )
    manifest = json.loads((store / "prepared" / "manifest.json").read_text())
    assert manifest["rows_in"] == 20000
    saved = checkpoint.load(summary["checkpoint"])
    assert saved.state.epoch == 2
    client = tracking.client(f"sqlite:///{database}")
    assert "test_ndcg_at_10" in client.get_run(summary["mlflow_run_id"]).data.metrics
    champion = client.get_model_version_by_alias("negrec", "champion")
    assert summary["promote"]["model_uri"] == f"models:/negrec/{champion.version}"
    assert len(summary["sample"]["recommended"]) == 10
