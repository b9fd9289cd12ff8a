"""A wheel carries everything negrec reads: recipes, search spaces, presets, mappings.

The wheel is built from the repository's sources (copied first, so no stale ``build/``
folder of the checkout leaks into it), installed into a folder of its own and run from
outside the repository, where nothing of the checkout can stand in for package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ("recipes", "data/mappings")
"""Folders of ``negrec/`` whose YAML files the code reads at run time."""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
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
    _run([*pip, "wheel", *offline, "--no-build-isolation", "-w", str(root / "dist"), "."], source)
    (path,) = (root / "dist").glob("negrec-*.whl")
    site = root / "site"
    _run([*pip, "install", *offline, "--target", str(site), str(path)], root)
    outside = root / "elsewhere"  # the working directory: neither the repository nor site
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    return SimpleNamespace(path=path, site=site, outside=outside, env=env)


def _python(wheel: SimpleNamespace, *args: str) -> str:
    return _run([sys.executable, *args], wheel.outside, wheel.env)


def test_the_wheel_holds_every_recipe_preset_and_mapping(wheel: SimpleNamespace) -> None:
    with zipfile.ZipFile(wheel.path) as archive:
        names = set(archive.namelist())
    for folder in PACKAGE_DATA:
        shipped = {
            path.relative_to(REPO).as_posix() for path in (REPO / "negrec" / folder).rglob("*.yaml")
        }
        assert shipped, f"negrec/{folder} has no YAML files"
        assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"
    assert {
        "negrec/recipes/demo.yaml",
        "negrec/recipes/ml1m.yaml",
        "negrec/recipes/gsasrec.yaml",
        "negrec/recipes/tuning/coarse.yaml",
        "negrec/recipes/tuning/fine_rules.yaml",
        "negrec/recipes/tuning/presets/tiny.yaml",
        "negrec/recipes/tuning/presets/demo.yaml",
    } <= names
    assert not any(name.startswith(("configs/", "tuning/", "tests/")) for name in names)


def test_the_installed_copy_is_the_one_imported(wheel: SimpleNamespace) -> None:
    printed = _python(wheel, "-c", "import negrec; print(negrec.__file__)").strip()
    assert Path(printed).is_relative_to(wheel.site), printed
    assert not Path(printed).is_relative_to(REPO)


def test_the_installed_copy_loads_its_presets_and_recipes(wheel: SimpleNamespace) -> None:
    script = (
        "from negrec import recipes\n"
        "from negrec.config import load_config\n"
        "from negrec.tuning.preset import load_plan\n"
        "plan = load_plan('tiny')\n"
        "print(plan.path)\n"
        "print(plan.preset.coarse.trials, len(plan.coarse.keys()))\n"
        "print(load_config('demo').model.dim, load_config('ml1m').model.dim)\n"
        "print(' '.join(recipes.preset_names()))\n"
        "for name in recipes.preset_names():\n"
        "    load_plan(name)\n"
    )
    path, sizes, dims, presets = _python(wheel, "-c", script).strip().splitlines()
    assert Path(path).is_relative_to(wheel.site / "negrec" / "recipes"), path
    trials, keys = map(int, sizes.split())
    assert trials >= 1 and keys >= 1
    assert dims == "64 64"
    assert {"tiny", "demo", "laptop", "cluster"} <= set(presets.split())


def test_the_installed_cli_shows_demo_and_tune(wheel: SimpleNamespace) -> None:
    demo = _python(wheel, "-m", "negrec.cli", "demo", "--help")
    assert "--preset" in demo and "--workdir" in demo
    tune = _python(wheel, "-m", "negrec.cli", "tune", "--help")
    assert "--preset" in tune and "tiny" in tune  # the built-in presets, from the wheel
    script = wheel.site / "bin" / "negrec"  # the console script pip installed
    if script.exists():
        assert "--preset" in _run([str(script), "demo", "--help"], wheel.outside, wheel.env)


def test_the_installed_tune_reads_the_tiny_preset_before_the_data(
    wheel: SimpleNamespace,
) -> None:
    """``negrec tune --preset tiny`` gets past the preset (read from the wheel) and stops
    at the missing data, before Ray starts: a full tiny sweep takes minutes (test_tune)."""
    missing = wheel.outside / "not-prepared"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "negrec.cli",
            "tune",
            "--preset",
            "tiny",
            "--data",
            str(missing),
            "--storage",
            str(wheel.outside / "sweeps"),
            "--name",
            "packaged",
            "--tracking-uri",
            f"sqlite:///{wheel.outside / 'mlflow.db'}",
        ],
        cwd=wheel.outside,
        env=wheel.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "preset" not in done.stderr, done.stderr  # the preset was found and valid
    assert str(missing) in done.stderr and "manifest.json" in done.stderr, done.stderr
    assert not any(wheel.outside.iterdir())  # no sweep state, no MLflow store
