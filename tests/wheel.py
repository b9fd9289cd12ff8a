"""negrec as a user installs it: a wheel built from the sources, installed into a folder
of its own and run from outside the repository, where nothing of the checkout can stand
in for package data.

The wheel is built from a copy of the sources, so no stale ``build/`` folder of the
checkout leaks into it. Session-wide: the packaging tests inspect it, and the sweep of
``test_tune`` runs ``negrec tune --preset tiny`` from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class InstalledWheel:
    path: Path
    """The ``.whl`` file."""
    site: Path
    """Where pip installed it (``--target``)."""
    outside: Path
    """An empty working directory: neither the repository nor ``site``."""

    @property
    def env(self) -> dict[str, str]:
        """This process's environment now (a Ray session started later adds its token),
        with ``site`` first on ``PYTHONPATH``, ahead of the checkout's editable install."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        return {**env, "PYTHONPATH": str(self.site)}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """``command``'s stdout; fails the test with its output if it exits non-zero."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "negrec", source / "negrec", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    offline = ["--no-deps", "--no-index"]
    run([*pip, "wheel", *offline, "--no-build-isolation", "-w", str(root / "dist"), "."], source)
    (path,) = (root / "dist").glob("negrec-*.whl")
    site = root / "site"
    run([*pip, "install", *offline, "--target", str(site), str(path)], root)
    outside = root / "elsewhere"
    outside.mkdir()
    return InstalledWheel(path=path, site=site, outside=outside)
