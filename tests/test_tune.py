"""negrec tune on Ray Tune: the tiny preset on generated data, interrupted and resumed.

One sweep serves the slow tests (a sweep is the expensive part): its driver runs from
the installed wheel (``tests/wheel.py``), outside the repository, as a
subprocess joined to the test session's Ray cluster, is SIGKILLed once Tune's saved
state shows a finished coarse trial, and the same command is run again to the end.
Bad input must fail before any trial starts, with a message that names the problem.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from negrec import checkpoint, cli, recipes, tags, tracking
from negrec.distributed import learning_curve
from negrec.serving import promotion
from negrec.tuning import report, results
from negrec.tuning.driver import TuneJob
from negrec.tuning.driver import run as run_sweep
from negrec.tuning.fine import derive_fine_space
from negrec.tuning.preset import load_plan
from negrec.tuning.space import Choice, SearchSpace
from tests.wheel import InstalledWheel

pytestmark = pytest.mark.slow

NAME = "ci"
PNG_MAGIC = b"\x89PNG"


def _tune_args(data: str, storage: Path, tracking_uri: str, preset: str = "tiny") -> list[str]:
    return [
        "tune",
        "--data",
        data,
        "--storage",
        str(storage),
        "--name",
        NAME,
        "--preset",
        preset,
        "--tracking-uri",
        tracking_uri,
        "--json",
    ]


# --- bad input: a clear error, and no trial -----------------------------------------


def _bad_preset(tmp_path: Path, space: str) -> str:
    (tmp_path / "space.yaml").write_text(space)
    preset = recipes.preset_path("tiny").read_text().replace("../coarse.yaml", "space.yaml")
    preset = preset.replace("../fine_rules.yaml", str(recipes.tuning_path("fine_rules.yaml")))
    path = tmp_path / "preset.yaml"
    path.write_text(preset)
    return str(path)


def _assert_refused(args: list[str], storage: Path, db: Path, capsys: Any) -> str:
    assert cli.main(args) == 1
    error = capsys.readouterr().err
    assert error.startswith("negrec tune: error:")
    assert not storage.exists()  # no sweep state, so no trial
    assert not db.exists()  # no MLflow run either
    return error


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("train.lr: {kind: loguniform, low: 1.0e-4, high: 1.0e-2, step: 2}", "step: unknown key"),
        ("model.dropout: {kind: uniform, low: 0.5, high: 0.5}", "empty range"),
        ("model.depth: {kind: choice, values: [2]}", "model.depth: not a config key"),
    ],
)
def test_a_bad_space_is_refused_before_any_trial(
    tmp_path: Path, capsys: Any, space: str, message: str
) -> None:
    db = tmp_path / "mlflow.db"
    args = _tune_args(str(tmp_path / "data"), tmp_path / "sweeps", f"sqlite:///{db}")
    args[args.index("tiny")] = _bad_preset(tmp_path, space)
    assert message in _assert_refused(args, tmp_path / "sweeps", db, capsys)


def test_a_sweep_name_that_is_not_a_plain_name_is_refused(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "mlflow.db"
    args = _tune_args(str(tmp_path / "data"), tmp_path / "sweeps", f"sqlite:///{db}")
    args[args.index(NAME)] = "it's/mine"
    assert "name: String should match pattern" in _assert_refused(
        args, tmp_path / "sweeps", db, capsys
    )


def test_missing_data_is_refused_before_any_trial(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "mlflow.db"
    missing = str(tmp_path / "not-prepared")
    args = _tune_args(missing, tmp_path / "sweeps", f"sqlite:///{db}")
    error = _assert_refused(args, tmp_path / "sweeps", db, capsys)
    assert missing in error and "manifest.json" in error


def test_unreachable_tracking_server_is_refused_before_any_trial(
    small_prepared: str, tmp_path: Path, capsys: Any
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = _tune_args(small_prepared, tmp_path / "sweeps", f"http://127.0.0.1:{port}")
    error = _assert_refused(args, tmp_path / "sweeps", tmp_path / "mlflow.db", capsys)
    assert f"127.0.0.1:{port} is unreachable" in error


# --- one sweep, interrupted and resumed ---------------------------------------------


def _trial_status(experiment: Path) -> dict[str, str]:
    """Trial id -> status in Tune's last saved experiment state (what a restore reads)."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        saved = json.loads(states[-1].read_text())
    except json.JSONDecodeError:  # caught while Tune rewrites it
        return {}
    trials = (json.loads(trial) for trial, _ in saved["trial_data"])
    return {trial["trial_id"]: trial["status"] for trial in trials}


@pytest.fixture(scope="module")
def sweep(
    small_prepared: str, installed_wheel: InstalledWheel, tmp_path_factory: pytest.TempPathFactory
) -> SimpleNamespace:
    """The tiny sweep as a user runs it: ``negrec tune --preset tiny`` from the installed
    wheel (its preset and recipes read from there, its code shipped to the workers),
    outside the repository."""
    import ray

    root = tmp_path_factory.mktemp("tune")
    storage, tracking_uri = root / "sweeps", f"sqlite:///{root}/mlflow.db"
    command = [
        sys.executable,
        "-m",
        "negrec.cli",
        *_tune_args(small_prepared, storage, tracking_uri),
    ]
    env = {**installed_wheel.env, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    coarse = storage / NAME / "coarse"
    started = time.monotonic()
    with open(root / "interrupted.log", "w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        try:
            while "TERMINATED" not in _trial_status(coarse).values():
                assert driver.poll() is None, (root / "interrupted.log").read_text()[-3000:]
                assert time.monotonic() - started < 480, "no coarse trial finished in 8 minutes"
                time.sleep(0.5)
            finished = {t for t, status in _trial_status(coarse).items() if status == "TERMINATED"}
            results_before = {t: (coarse / t / "result.json").read_bytes() for t in finished}
            assert driver.poll() is None, "the sweep ended before it could be interrupted"
        finally:
            driver.kill()
            driver.wait()
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    print(f"tiny sweep, killed once and resumed: {time.monotonic() - started:.0f}s")
    return SimpleNamespace(
        root=root,
        storage=storage,
        tracking_uri=tracking_uri,
        data=small_prepared,
        finished_before_kill=finished,
        results_before_kill=results_before,
        rerun_stdout=rerun.stdout,
        summary=json.loads(rerun.stdout.strip().splitlines()[-1]),
        coarse=results.load(str(coarse.with_suffix(".json"))),
        fine=results.load(str(storage / NAME / "fine.json")),
    )


def test_a_killed_sweep_resumes_without_rerunning_finished_trials(sweep: SimpleNamespace) -> None:
    assert "resuming the coarse stage" in sweep.rerun_stdout
    plan = load_plan("tiny")
    ids = {trial.trial_id for trial in sweep.coarse.trials}
    assert len(sweep.coarse.trials) == plan.preset.coarse.trials  # not started over
    assert sweep.finished_before_kill <= ids  # the same Tune experiment, restored
    for trial_id, before in sweep.results_before_kill.items():
        after = (sweep.storage / NAME / "coarse" / trial_id / "result.json").read_bytes()
        assert after == before  # a finished trial was not run again
    assert len(sweep.fine.trials) == plan.preset.fine.trials
    assert all(trial.stop_reason != "error" for trial in sweep.coarse.trials + sweep.fine.trials)


def _budget(trial: results.TrialRecord, plan: Any) -> int:
    return getattr(plan.preset, trial.stage).epochs


def test_asha_stops_weak_trials_and_the_fine_space_surrounds_the_best(
    sweep: SimpleNamespace,
) -> None:
    plan = load_plan("tiny")
    coarse_epochs, fine_epochs = plan.preset.coarse.epochs, plan.preset.fine.epochs
    stopped = sweep.coarse.stopped_by_asha() + sweep.fine.stopped_by_asha()
    assert stopped and all(trial.epochs < _budget(trial, plan) for trial in stopped)
    for trial in sweep.coarse.trials + sweep.fine.trials:
        if trial.stop_reason == "completed":
            assert trial.epochs == (coarse_epochs if trial.stage == "coarse" else fine_epochs)
    assert sweep.summary["stages"]["coarse"]["stopped_by_asha"] == len(
        sweep.coarse.stopped_by_asha()
    )

    top = [trial.config for trial in sweep.coarse.ranked()]
    fine = SearchSpace.model_validate(sweep.summary["fine_space"])
    assert fine == derive_fine_space(plan.coarse, top, plan.rules)
    for config in top[: plan.rules.top_n]:
        assert fine.contains(config)
    for key, dimension in fine.items():
        coarse = plan.coarse[key]
        if isinstance(dimension, Choice):
            assert set(dimension.values) <= set(coarse.values)
        else:
            assert coarse.low <= dimension.low < dimension.high <= coarse.high
    for trial in sweep.fine.trials:
        assert fine.contains(trial.config)
    seeded = min(sweep.fine.trials, key=lambda trial: trial.trial_id)  # the first fine trial
    assert seeded.config == top[0]

    best = max(sweep.coarse.ranked() + sweep.fine.ranked(), key=lambda t: t.best_ndcg or 0.0)
    assert sweep.summary["best_val_ndcg_at_10"] == best.best_ndcg
    assert sweep.summary["best_checkpoint"] == best.checkpoint
    saved = checkpoint.load(best.checkpoint)
    assert saved.state.best_epoch == best.best_epoch
    assert saved.state.best_ndcg == pytest.approx(best.best_ndcg)


def test_mlflow_holds_the_sweep_run_with_one_child_run_per_trial(sweep: SimpleNamespace) -> None:
    client = tracking.client(sweep.tracking_uri)
    parent = client.get_run(sweep.summary["mlflow_run_id"])
    assert parent.data.tags[tags.SWEEP_NAME] == NAME
    assert parent.data.tags[tags.BEST_CHECKPOINT_URI] == sweep.summary["best_checkpoint"]
    assert json.loads(parent.data.tags[tags.BEST_CONFIG]) == sweep.summary["best_config"]
    assert parent.info.status == "FINISHED"
    assert promotion.sweep_checkpoint(sweep.tracking_uri, NAME) == sweep.summary["best_checkpoint"]
    trials = sweep.coarse.trials + sweep.fine.trials
    stopped = sum(trial.stop_reason == "early_stopped_by_asha" for trial in trials)
    assert parent.data.metrics["trials_stopped_by_asha"] == stopped
    assert (
        parent.data.metrics["fine_best_val_ndcg_at_10"]
        == sweep.summary["stages"]["fine"]["best_val_ndcg_at_10"]
    )
    plot = Path(client.download_artifacts(parent.info.run_id, report.PLOT, str(sweep.root)))
    png = plot.read_bytes()
    assert png.startswith(PNG_MAGIC) and png[12:16] == b"IHDR" and len(png) > 10_000
    assert struct.unpack(">II", png[16:24]) == learning_curve.PIXELS
    beside = sweep.storage / NAME / report.PLOT  # the same plot beside the sweep
    assert sweep.summary["learning_curve"] == str(beside)
    assert beside.read_bytes() == png

    experiment = parent.info.experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    by_name = {run.data.tags[tracking.RUN_NAME_TAG]: run for run in children}
    assert len(children) == len(by_name) == len(trials)
    for trial in trials:
        run = by_name[trial.run_name]
        assert run.data.tags["negrec.stage"] == trial.stage
        assert run.data.tags[tags.STOP_REASON] == trial.stop_reason
        assert run.info.status == report.RUN_STATUS[trial.stop_reason]
        logged = sorted(
            m.step for m in client.get_metric_history(run.info.run_id, "val_ndcg_at_10")
        )
        epochs = [epoch for epoch, _ in trial.history]
        seen = f"{trial.run_name} ({trial.stop_reason}): MLflow {logged}, Tune {epochs}"
        # MLflow holds every trained epoch once, in order, across the SIGKILL and resume:
        # an epoch is logged before its checkpoint exists. Tune's history may miss an
        # epoch whose report the kill cut off, and a trial ASHA stops may train one more.
        assert logged == list(range(1, len(logged) + 1)), seen
        assert set(epochs) <= set(logged), seen
        assert [epoch for epoch, _ in trial.losses] == epochs, seen  # the loss panel's
        if trial.stop_reason == "completed":
            assert logged[-1] == epochs[-1], seen
            # a trial that ran to the end is a whole training run: it drew its curve
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert learning_curve.FILENAME in artifacts, seen


def test_rerunning_a_finished_sweep_reads_its_summaries(sweep: SimpleNamespace) -> None:
    stage_files = {
        name: (sweep.storage / NAME / f"{name}.json").read_bytes() for name in ("coarse", "fine")
    }
    experiments = sorted(p.name for p in (sweep.storage / NAME).iterdir())
    again = run_sweep(
        TuneJob(
            data=sweep.data,
            storage=str(sweep.storage),
            name=NAME,
            preset="tiny",
            tracking_uri=sweep.tracking_uri,
        )
    )
    assert again.best_checkpoint == sweep.summary["best_checkpoint"]
    assert again.mlflow_run_id == sweep.summary["mlflow_run_id"]
    assert json.loads(again.model_dump_json()) == sweep.summary  # what --json printed
    for name, before in stage_files.items():
        assert (sweep.storage / NAME / f"{name}.json").read_bytes() == before
    assert sorted(p.name for p in (sweep.storage / NAME).iterdir()) == experiments


def test_a_rerun_with_another_preset_is_refused(sweep: SimpleNamespace, capsys: Any) -> None:
    args = _tune_args(sweep.data, sweep.storage, sweep.tracking_uri, preset="laptop")
    assert cli.main(args) == 1
    assert "was started with another preset" in capsys.readouterr().err
