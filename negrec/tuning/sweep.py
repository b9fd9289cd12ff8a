"""One sweep stage as one Ray Tune experiment: ASHA over trials that each fit a
``TorchTrainer``; a stage interrupted earlier is restored, not started over.

ASHA decides on ``epoch`` (one per epoch report) rather than ``training_iteration``:
the final report, which carries test metrics and no ``epoch``, is then not counted as
another rung. Its ``max_t`` is one below the stage's epochs with
``stop_last_trials=False``, so no rung falls on a trial's last epoch: a trial that
passed every rung always finishes, test evaluation included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from negrec import metrics, storage
from negrec.distributed.resources import TRIAL_DRIVER_CPUS
from negrec.tuning import results
from negrec.tuning.preset import Asha, StageBudget
from negrec.tuning.progress import SweepProgress
from negrec.tuning.space import SearchSpace
from negrec.tuning.trial import TrialSpec, run_trial

if TYPE_CHECKING:
    from negrec.distributed.trainer import RowLayout

STATE_SYNC_S = 15
"""How stale the experiment state in storage may get (Tune's default is 5 minutes):
a re-run restores from it, and would re-run every trial that finished since."""


@dataclass(frozen=True)
class StageRun:
    """Everything one stage's Tune experiment needs."""

    spec: TrialSpec
    space: SearchSpace
    budget: StageBudget
    asha: Asha
    concurrency: int
    seed: int
    sweep_uri: str
    points: list[dict[str, Any]] = field(default_factory=list)


def trial_id(trial: Any) -> str:
    """Trial names and directories are the trial id: short, and what the trial's Train
    run and MLflow run are named after."""
    return str(trial.trial_id)


def _new_tuner(stage: StageRun, trainable: Any, path: str, filesystem: Any) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    scheduler = ASHAScheduler(
        time_attr="epoch",
        max_t=stage.budget.epochs - 1,
        grace_period=stage.asha.grace_period,
        reduction_factor=stage.asha.reduction_factor,
        stop_last_trials=False,
    )
    return tune.Tuner(
        trainable,
        param_space=stage.space.to_tune(),
        tune_config=tune.TuneConfig(
            metric=metrics.best_val_ndcg(stage.spec.eval_k),
            mode="max",
            scheduler=scheduler,
            # The throttle goes to the generator: Tune ignores TuneConfig's
            # max_concurrent_trials when given a BasicVariantGenerator instance (which
            # seeding and points_to_evaluate need), and would start every trial at once.
            search_alg=BasicVariantGenerator(
                points_to_evaluate=stage.points or None,
                max_concurrent=stage.concurrency,
                random_state=stage.seed,
            ),
            num_samples=stage.budget.trials,
            trial_name_creator=trial_id,
            trial_dirname_creator=trial_id,
        ),
        run_config=tune.RunConfig(
            name=stage.spec.stage,
            storage_path=path,
            storage_filesystem=filesystem,
            sync_config=tune.SyncConfig(sync_period=STATE_SYNC_S),
            # Tune's status tables are 150+ characters wide: the sweep draws its own.
            verbose=0 if stage.spec.quiet else None,
            callbacks=[SweepProgress(stage.spec.stage, stage.budget.trials, stage.spec.eval_k)]
            if stage.spec.quiet
            else None,
        ),
    )


def run_stage(stage: StageRun, datasets: Mapping[RowLayout, Any]) -> results.StageSummary:
    """Run the stage's Tune experiment, or restore it if an earlier run was interrupted
    (finished trials stay finished; unfinished ones resume from their checkpoints)."""
    from ray import tune

    filesystem, path = storage.resolve(stage.sweep_uri)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, spec=stage.spec.model_dump(), datasets=dict(datasets)),
        {"cpu": TRIAL_DRIVER_CPUS},
    )
    experiment = f"{path}/{stage.spec.stage}"
    if tune.Tuner.can_restore(experiment, storage_filesystem=filesystem):
        print(f"negrec tune: resuming the {stage.spec.stage} stage from {experiment}", flush=True)
        tuner = tune.Tuner.restore(
            experiment, trainable, resume_errored=True, storage_filesystem=filesystem
        )
    else:
        tuner = _new_tuner(stage, trainable, path, filesystem)
    grid = tuner.fit()
    return results.StageSummary(
        stage=stage.spec.stage,
        epochs=stage.budget.epochs,
        k=stage.spec.eval_k,
        space=stage.space.as_data(),
        trials=[results.record(result, stage.spec) for result in grid],
    )
