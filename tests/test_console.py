"""What a person sees: a whole pipeline prints a short, narrow log; ``--verbose`` brings
Ray's own reporting back.

Run as a subprocess with stdout to a pipe (as under CI or ``ray job submit``), so the
progress displays fall back to plain lines, which is what the limits are about.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from negrec.console import WIDTH

pytestmark = pytest.mark.slow

MAX_LINES = 60
RAY_REPORT = "TrainingReport("  # Ray Train's per-report dump, INFO


def _pipeline(root: Path, *extra: str) -> str:
    import ray

    command = [
        sys.executable,
        "-m",
        "negrec.cli",
        "pipeline",
        "--root",
        str(root / "store"),
        "--name",
        "console",
        "--users",
        "400",
        "--items",
        "150",
        "--num-events",
        "16000",
        "--workers",
        "2",
        "--set",
        "train.max_epochs=3",
        "--tracking-uri",
        f"sqlite:///{root}/mlflow.db",
        *extra,
    ]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def test_a_pipeline_prints_few_narrow_lines_and_verbose_brings_ray_back(
    ray_session: None, tmp_path: Path
) -> None:
    quiet = _pipeline(tmp_path).splitlines()
    assert len(quiet) <= MAX_LINES, "\n".join(quiet)
    widest = max(quiet, key=len)
    assert len(widest) <= WIDTH, "\n".join(quiet)
    text = "\n".join(quiet)
    assert RAY_REPORT not in text and "Trial status:" not in text
    for step in ("== generate", "== prepare", "== train", "== evaluate", "== promote"):
        assert step in text
    assert "train console: epoch 3/3" in text  # the run's own progress line
    assert "champion" in text

    # The same pipeline again with --verbose: every step is reused or resumed, and Ray
    # Train's own reporting shows again.
    verbose = _pipeline(tmp_path, "--verbose")
    assert "already prepared" in verbose
    assert "Attempting to start training worker group" in verbose or RAY_REPORT in verbose
