"""What a sweep leaves in MLflow: each trial run's stop reason, and on the sweep's
parent run the best configuration and checkpoint, per-stage bests, how many trials
ASHA stopped, and a plot of validation NDCG@k and training loss against epochs for
every trial (also written beside the sweep, ``<storage>/<name>/val_ndcg_vs_epochs.png``).

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

from negrec import metrics, storage, tags, tracking
from negrec.distributed import learning_curve
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
    """Validation NDCG@k (above) and training loss (below) per epoch, one line per trial
    coloured by stage; an x ends a trial ASHA stopped, a star marks the best trial's
    best epoch."""
    from matplotlib.lines import Line2D

    k = stages[0].k
    figure, ndcg_axes, loss_axes = learning_curve.two_panels(
        f"Sweep trials: validation NDCG@{k} and training loss per epoch", k
    )
    handles = []
    for stage in stages:
        colour = STAGE_COLOURS[stage.stage]
        handles.append(Line2D([], [], color=colour, marker=".", label=_stage_label(stage)))
        for trial in stage.trials:
            stopped = trial.stop_reason == "early_stopped_by_asha"
            learning_curve.draw(ndcg_axes, trial.history, colour, stopped, alpha=0.7)
            learning_curve.draw(loss_axes, trial.losses, colour, stopped, alpha=0.7)
    handles.append(
        Line2D(
            [],
            [],
            color="black",
            marker=learning_curve.STOP_MARKER,
            markersize=9,
            linestyle="none",
            label="stopped early by ASHA",
        )
    )
    ranked = [t for t in best_first(stages) if t.checkpoint and t.best_epoch is not None]
    if ranked:  # the trial the sweep picks (best_trial)
        best = ranked[0]
        star = learning_curve.mark_best(
            ndcg_axes,
            loss_axes,
            best.best_epoch or 0,
            best.best_ndcg or 0.0,
            f"best: {best.stage} trial {best.trial_id}, epoch {best.best_epoch} "
            f"({best.best_ndcg or 0.0:.4f})",
        )
        handles.append(star)
    ndcg_axes.legend(handles=handles, loc="best", fontsize="small")
    if not any(t.losses for stage in stages for t in stage.trials):
        loss_axes.text(
            0.5,
            0.5,
            "no training loss in these stage summaries",
            ha="center",
            va="center",
            transform=loss_axes.transAxes,
        )
    learning_curve.save(figure, path)


def _stage_label(stage: StageSummary) -> str:
    stopped = len(stage.stopped_by_asha())
    return f"{stage.stage}: {len(stage.trials)} trials, {stopped} stopped by ASHA"


def best_first(stages: Sequence[StageSummary]) -> list[TrialRecord]:
    """Trials that reported a validation NDCG@k over all stages, best first."""
    return sorted(
        (t for stage in stages for t in stage.ranked()),
        key=lambda t: t.best_ndcg or 0.0,
        reverse=True,
    )


def best_trial(stages: Sequence[StageSummary]) -> TrialRecord:
    ranked = [t for t in best_first(stages) if t.checkpoint]
    if not ranked:
        raise NegrecError("no trial of the sweep left a checkpoint; see the trial errors above")
    return ranked[0]


def log_sweep(
    uri: str, parent_run_id: str, stages: Sequence[StageSummary], summary: dict[str, Any]
) -> None:
    """Write the sweep's summary, best trial and plot to its parent run and close it.

    The plot is also written beside the sweep (``<sweep>/val_ndcg_vs_epochs.png``); its
    URI goes into ``summary`` as ``learning_curve`` (and so into ``sweep.json``)."""
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
        summary["learning_curve"] = learning_curve.publish(
            uri, parent_run_id, Path(directory) / PLOT, storage.join(summary["sweep"], PLOT)
        )
    client.log_text(parent_run_id, json.dumps(summary, indent=2), "sweep.json")
    for stage in stages:
        client.log_text(parent_run_id, yaml.safe_dump(stage.space), f"{stage.stage}_space.yaml")
    client.set_terminated(parent_run_id, status="FINISHED")
