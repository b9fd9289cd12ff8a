"""What a sweep leaves in MLflow: each trial run's stop reason, and on the sweep's
parent run the best configuration and checkpoint, per-stage bests, how many trials
ASHA stopped, and a plot of validation NDCG@k against epochs for every trial.

The stop reason is tagged here, by the sweep driver, because a trial that ASHA stops
is killed mid-run and cannot tag (or close) its own MLflow run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from negrec import metrics, tags, tracking
from negrec.errors import NegrecError
from negrec.tuning.results import StageSummary, TrialRecord

PLOT = "val_ndcg_vs_epochs.png"
RUN_STATUS = {"early_stopped_by_asha": "KILLED", "completed": "FINISHED", "error": "FAILED"}
STAGE_COLOURS = {"coarse": "tab:blue", "fine": "tab:orange"}


def tag_trial_runs(uri: str, experiment: str, summary: StageSummary) -> None:
    """Tag every trial run with its stop reason, and give it the matching status: a run
    that ASHA stopped is left RUNNING, or FAILED when the stop reached the train stage
    as an error before the kill."""
    client = tracking.client(uri)
    for trial in summary.trials:
        run_id = tracking.find_run(uri, trial.run_name, experiment)
        if run_id is None:  # the trial failed before it opened its run
            continue
        client.set_tag(run_id, tags.STOP_REASON, trial.stop_reason)
        status = RUN_STATUS[trial.stop_reason]
        if client.get_run(run_id).info.status != status:
            client.set_terminated(run_id, status=status)


def plot_trials(stages: Sequence[StageSummary], path: Path) -> None:
    """Validation NDCG@k per epoch, one line per trial; an x ends a trial ASHA stopped."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for stage in stages:
        colour = STAGE_COLOURS[stage.stage]
        for index, trial in enumerate(stage.trials):
            if not trial.history:
                continue
            epochs, ndcg = zip(*trial.history, strict=True)
            label = f"{stage.stage} ({len(stage.trials)} trials)" if index == 0 else None
            axes.plot(epochs, ndcg, color=colour, alpha=0.7, marker=".", label=label)
            if trial.stop_reason == "early_stopped_by_asha":
                axes.plot(epochs[-1], ndcg[-1], color=colour, marker="x", markersize=9)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial budget (epochs)")
    axes.set_ylabel(f"validation NDCG@{stages[0].k}")
    axes.set_title("Sweep trials (x: stopped early by ASHA)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


def best_trial(stages: Sequence[StageSummary]) -> TrialRecord:
    ranked = sorted(
        (t for stage in stages for t in stage.ranked() if t.checkpoint),
        key=lambda t: t.best_ndcg or 0.0,
        reverse=True,
    )
    if not ranked:
        raise NegrecError("no trial of the sweep left a checkpoint; see the trial errors above")
    return ranked[0]


def log_sweep(
    uri: str, parent_run_id: str, stages: Sequence[StageSummary], summary: dict[str, Any]
) -> None:
    """Write the sweep's summary, best trial and plot to its parent run and close it."""
    client = tracking.client(uri)
    best = best_trial(stages)
    client.set_tag(parent_run_id, tags.BEST_CHECKPOINT_URI, best.checkpoint)
    client.set_tag(parent_run_id, tags.BEST_CONFIG, json.dumps(best.config, sort_keys=True))
    best_name = metrics.best_val_ndcg(stages[0].k)
    logged = {
        best_name: best.best_ndcg or 0.0,
        "trials_stopped_by_asha": sum(len(s.stopped_by_asha()) for s in stages),
    }
    for stage in stages:
        ranked = stage.ranked()
        logged[f"{stage.stage}_{best_name}"] = ranked[0].best_ndcg if ranked else 0.0
        logged[f"{stage.stage}_trials"] = len(stage.trials)
        logged[f"{stage.stage}_trials_stopped_by_asha"] = len(stage.stopped_by_asha())
    tracking.log_metrics(uri, parent_run_id, logged, step=0)
    with tempfile.TemporaryDirectory(prefix="negrec-sweep-") as directory:
        plot_trials(stages, Path(directory) / PLOT)
        client.log_artifact(parent_run_id, str(Path(directory) / PLOT))
    client.log_text(parent_run_id, json.dumps(summary, indent=2), "sweep.json")
    for stage in stages:
        client.log_text(parent_run_id, yaml.safe_dump(stage.space), f"{stage.stage}_space.yaml")
    client.set_terminated(parent_run_id, status="FINISHED")
