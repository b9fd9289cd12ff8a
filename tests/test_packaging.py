"""A wheel carries everything negrec reads: recipes, search spaces, presets, mappings;
installed outside the repository (``tests/wheel.py``), it runs, a cluster it joins
runs its code, and an instance it starts tells its workers where it is.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.wheel import REPO, InstalledWheel, run

pytestmark = pytest.mark.slow

PACKAGE_DATA = ("recipes", "data/mappings")
"""Folders of ``negrec/`` whose YAML files the code reads at run time."""


@pytest.fixture()
def wheel(installed_wheel: InstalledWheel) -> InstalledWheel:
    return installed_wheel


def _python(wheel: InstalledWheel, *args: str) -> str:
    return run([sys.executable, *args], wheel.outside, wheel.env)


def test_the_wheel_holds_every_recipe_preset_and_mapping(wheel: InstalledWheel) -> None:
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


def test_the_installed_copy_is_the_one_imported(wheel: InstalledWheel) -> None:
    printed = _python(wheel, "-c", "import negrec; print(negrec.__file__)").strip()
    assert Path(printed).is_relative_to(wheel.site), printed
    assert not Path(printed).is_relative_to(REPO)


def test_the_installed_copy_loads_its_presets_and_recipes(wheel: InstalledWheel) -> None:
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


def test_the_installed_cli_shows_demo_and_tune(wheel: InstalledWheel) -> None:
    demo = _python(wheel, "-m", "negrec.cli", "demo", "--help")
    assert "--preset" in demo and "--workdir" in demo
    tune = _python(wheel, "-m", "negrec.cli", "tune", "--help")
    assert "--preset" in tune and "tiny" in tune  # the built-in presets, from the wheel
    script = wheel.site / "bin" / "negrec"  # the console script pip installed
    if script.exists():
        assert "--preset" in run([str(script), "demo", "--help"], wheel.outside, wheel.env)


def test_the_installed_tune_reads_the_tiny_preset_before_the_data(
    wheel: InstalledWheel,
) -> None:
    """``negrec tune --preset tiny`` gets past the preset (read from the wheel) and stops
    at the missing data, before Ray starts. The whole tiny sweep from the wheel is the
    one ``test_tune`` runs."""
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


def test_a_joined_cluster_runs_the_drivers_installed_code(
    ray_session: None, wheel: InstalledWheel
) -> None:
    """The test session's Ray workers have the checkout on their path; a driver from the
    wheel that joins them ships its own package, and their tasks import that copy."""
    import ray

    script = (
        "import ray\n"
        "from negrec.runtime import ensure_ray\n"
        "ensure_ray()\n"
        "where = ray.remote(lambda: __import__('negrec').__file__)\n"
        "print(__import__('negrec').__file__)\n"
        "print(ray.get(where.remote()))\n"
    )
    env = {**wheel.env, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    driver, worker = run([sys.executable, "-c", script], wheel.outside, env).splitlines()[-2:]
    assert Path(driver).is_relative_to(wheel.site), driver
    assert not Path(worker).is_relative_to(REPO), worker  # not the checkout's copy
    shipped, installed = Path(worker).parent, Path(driver).parent
    assert shipped != installed  # Ray's copy of the uploaded package, on the node
    preset = Path("recipes", "tuning", "presets", "tiny.yaml")
    assert (shipped / preset).read_bytes() == (installed / preset).read_bytes()


def test_a_second_local_instance_tells_its_workers_its_own_address(
    ray_session: None, wheel: InstalledWheel
) -> None:
    """With the test session's instance already on the machine, a stage that starts its
    own local instance gives its workers that instance's address, so that the State API
    (which Ray Train's placement-group cleaner asks about stopped trials) answers them
    instead of failing on "multiple active Ray instances"."""
    script = (
        "import os, ray\n"
        "from negrec.runtime import ensure_ray\n"
        "ensure_ray()\n"
        "@ray.remote\n"
        "def ask():\n"
        "    from ray.util.state import list_nodes\n"
        "    return os.environ['RAY_ADDRESS'], len(list_nodes())\n"
        "address, nodes = ray.get(ask.remote())\n"
        "print(ray.get_runtime_context().gcs_address.rsplit(':', 1)[1], address, nodes)\n"
    )
    env = {k: v for k, v in wheel.env.items() if k != "RAY_ADDRESS"}
    own_port, address, nodes = run([sys.executable, "-c", script], wheel.outside, env).split()[-3:]
    assert address == f"127.0.0.1:{own_port}"
    assert nodes == "1"  # the State API of its own instance answered
