"""The sweep driver of ``negrec tune``: coarse-then-fine search with ASHA (Ray Tune).

Stage 1 samples the preset's coarse space; ASHA stops weak trials after a few epochs.
Stage 2 searches the fine space derived from the best coarse configurations (which it
re-runs first) with a longer budget. Every trial is one ``negrec train`` run (a
``TorchTrainer``) and one MLflow child run of the sweep's parent run, which ends up
holding the best configuration and checkpoint (what ``negrec promote --sweep`` reads).

Everything that can be checked is checked before compute: the preset and its spaces,
the prepared data, the tracking store. Layout under ``--storage``/``--name``::

    plan.json               preset and spaces; re-running the sweep must use the same
    coarse/  fine/          the stages' Ray Tune experiments
    trials/<sweep>-<stage>-<trial id>/   each trial's Ray Train run (checkpoints)
    coarse.json  fine.json  stage summaries, written when a stage finishes

Re-running the same command resumes: a finished stage is read from its summary, an
interrupted one is restored from its Tune experiment (finished trials are kept, the
others resume from their last checkpoints).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from negrec import metrics, storage, tags, tracking
from negrec.config import NegrecConfig
from negrec.console import clip
from negrec.distributed.resources import DEFAULT_CACHE_LIMIT_MIB, plan_trials
from negrec.errors import NegrecError
from negrec.runtime import quiet_ray_requested
from negrec.storage import AbsoluteUri
from negrec.strict import FrozenModel, StrictModel
from negrec.tuning import report, results
from negrec.tuning.fine import derive_fine_space, seed_points
from negrec.tuning.preset import SweepPlan, load_plan
from negrec.tuning.space import Choice, SearchSpace
from negrec.tuning.trial import Stage, TrialSpec

if TYPE_CHECKING:
    from negrec.distributed.trainer import RowLayout

PLAN_FILE = "plan.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
TRIALS_DIR = "trials"


class TuneJob(StrictModel):
    """One sweep: data, where its state lives, its name, and the preset."""

    data: AbsoluteUri = Field(description="URI of a prepared dataset (negrec prepare --out)")
    storage: AbsoluteUri = Field(description="URI under which the sweep keeps its state")
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Sweep name (letters, digits, . _ -): it names directories, Train runs "
        "and MLflow runs; re-running the same name resumes",
    )
    preset: str = Field("laptop", description="tiny, laptop, cluster, or a preset file")
    tracking_uri: str | None = None
    experiment: str = tracking.DEFAULT_EXPERIMENT
    cache_limit_mib: int = Field(
        DEFAULT_CACHE_LIMIT_MIB,
        ge=0,
        description="Hold each training length's rows in the object store up to this "
        "size, shared by every trial (0 = always stream from storage)",
    )


def _check_same_plan(sweep_uri: str, plan: SweepPlan) -> None:
    """A re-run resumes the sweep, so it must be the same sweep: refuse another preset."""
    uri = storage.join(sweep_uri, PLAN_FILE)
    wanted = json.loads(json.dumps(plan.as_data()))
    if not storage.exists(uri):
        storage.write_text(uri, json.dumps(wanted, indent=2))
    elif json.loads(storage.read_text(uri)) != wanted:
        raise NegrecError(
            f"sweep {sweep_uri} was started with another preset or search space (see {uri}); "
            "re-run it with the same --preset, or choose a new --name"
        )


def _choices(space: SearchSpace, fixed: dict[str, Any], key: str, default: Any) -> list[Any]:
    """The values a key takes in a stage: its choices if searched, else the fixed value."""
    if key in space:
        dimension = space[key]
        assert isinstance(dimension, Choice)  # integer and text keys take choices (check_space)
        return list(dimension.values)
    return [fixed.get(key, default)]


def _row_layouts(space: SearchSpace, fixed: dict[str, Any]) -> list[RowLayout]:
    """The row layouts the stage's trials train on (training data is built per layout)."""
    defaults = NegrecConfig()
    return [
        (int(max_len), histories == "windows")
        for max_len in _choices(space, fixed, "model.max_len", defaults.model.max_len)
        for histories in _choices(
            space, fixed, "train.long_histories", defaults.train.long_histories
        )
    ]


class _Sweep:
    """The state one ``run`` shares between its two stages."""

    def __init__(self, job: TuneJob, plan: SweepPlan, prepared: Any, uri: str) -> None:
        import ray

        self.job, self.plan, self.prepared, self.tracking_uri = job, plan, prepared, uri
        self.data = job.data
        self.sweep_uri = storage.join(job.storage, job.name)
        preset = plan.preset
        self.trials = plan_trials(
            preset.workers_per_trial,
            preset.gpu,
            preset.max_concurrent_trials,
            ray.cluster_resources(),
            preset.cpus_per_worker,
        )
        self.datasets: dict[RowLayout, Any] = {}
        self.parent_run_id = tracking.start_or_resume_run(
            uri, f"{job.name}-sweep", job.experiment, tags={tags.SWEEP_NAME: job.name}
        )

    def _spec(self, stage: Stage, epochs: int) -> TrialSpec:
        workers = self.trials.workers
        return TrialSpec(
            sweep=self.job.name,
            stage=stage,
            data=self.data,
            trials_uri=storage.join(self.sweep_uri, TRIALS_DIR),
            tracking_uri=self.tracking_uri,
            experiment=self.job.experiment,
            parent_run_id=self.parent_run_id,
            fixed=self.plan.preset.fixed,
            epochs=epochs,
            workers=workers.num_workers,
            gpu=workers.use_gpu,
            cpus_per_worker=workers.cpus_per_worker,
            quiet=quiet_ray_requested(),
        )

    def stage(
        self, stage: Stage, space: SearchSpace, points: list[dict[str, Any]]
    ) -> results.StageSummary:
        """The stage's summary: read if the stage finished earlier, else run (or resume)."""
        from negrec.distributed.trainer import training_data
        from negrec.tuning.sweep import StageRun, run_stage

        summary_uri = storage.join(self.sweep_uri, f"{stage}.json")
        summary = results.load(summary_uri)
        if summary is not None:
            print(f"negrec tune: the {stage} stage finished earlier; read {summary_uri}")
        else:
            preset = self.plan.preset
            for layout in _row_layouts(space, preset.fixed):
                if layout not in self.datasets:
                    self.datasets[layout] = training_data(
                        self.prepared, layout, self.job.cache_limit_mib
                    )
            budget = getattr(preset, stage)
            run = StageRun(
                spec=self._spec(stage, budget.epochs),
                space=space,
                budget=budget,
                asha=preset.asha,
                concurrency=self.trials.concurrency,
                seed=preset.seed if stage == "coarse" else preset.seed + 1,
                sweep_uri=self.sweep_uri,
                points=points,
            )
            summary = run_stage(run, self.datasets)
            results.save(summary_uri, summary)
        report.tag_trial_runs(self.tracking_uri, self.job.experiment, summary)
        return summary


BEST = "best_val_ndcg"
"""The field that the JSON spells ``best_val_ndcg_at_{k}`` (``metrics.best_val_ndcg``)."""


class StageLine(FrozenModel):
    """One stage of a sweep in its summary."""

    trials: int
    epochs: int
    best_val_ndcg: float | None
    """The stage's best validation NDCG@k (None when no trial reported one)."""
    stopped_by_asha: int
    errors: int

    @classmethod
    def of(cls, summary: results.StageSummary) -> StageLine:
        ranked = summary.ranked()
        return cls(
            trials=len(summary.trials),
            epochs=summary.epochs,
            best_val_ndcg=ranked[0].best_ndcg if ranked else None,
            stopped_by_asha=len(summary.stopped_by_asha()),
            errors=sum(t.stop_reason == "error" for t in summary.trials),
        )


class BestTrial(FrozenModel):
    """Where the sweep's best checkpoint came from."""

    stage: Stage
    trial_id: str
    epoch: int | None


def _renamed(values: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``values`` with the key ``old`` spelt ``new``, in the same place."""
    return {new if key == old else key: value for key, value in values.items()}


class SweepSummary(FrozenModel):
    """What :func:`run` returns and ``negrec tune --json`` prints (and ``sweep.json`` on
    the parent run holds).

    The best validation NDCG@k is ``best_val_ndcg`` here, on the sweep and on each
    stage; the JSON spells it with its cut-off, ``best_val_ndcg_at_{k}``
    (``negrec.metrics.best_val_ndcg``), as it always did.
    """

    name: str
    sweep: str
    """URI of the sweep's state (``--storage``/``--name``)."""
    mlflow_run_id: str
    """The sweep's parent run."""
    tracking_uri: str
    best_checkpoint: str
    best_config: dict[str, Any]
    k: int
    """The cut-off the trials were ranked on (``train.eval_k``)."""
    best_val_ndcg: float | None
    best_trial: BestTrial
    stages: dict[Stage, StageLine]
    fine_space: dict[str, Any]
    learning_curve: str | None = Field(None, exclude_if=lambda uri: uri is None)
    """URI of the sweep's learning-curve plot, when the report wrote one."""

    @model_validator(mode="before")
    @classmethod
    def _unspell_k(cls, values: Any) -> Any:
        """The JSON form back into the model: ``best_val_ndcg_at_{k}`` -> ``best_val_ndcg``."""
        if not isinstance(values, dict) or "k" not in values:
            return values
        spelt = metrics.best_val_ndcg(int(values["k"]))
        values = _renamed(values, spelt, BEST)
        stages = values.get("stages")
        if isinstance(stages, dict):
            values["stages"] = {
                name: _renamed(line, spelt, BEST) if isinstance(line, dict) else line
                for name, line in stages.items()
            }
        return values

    @model_serializer(mode="wrap")
    def _spell_k(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        spelt = metrics.best_val_ndcg(self.k)
        data = _renamed(data, BEST, spelt)
        stages = data["stages"]
        data["stages"] = {name: _renamed(line, BEST, spelt) for name, line in stages.items()}
        return data


def run(job: TuneJob) -> SweepSummary:
    """Run (or resume) the sweep; returns its summary (best checkpoint, config, stages)."""
    from negrec.distributed.trainer import open_inputs
    from negrec.runtime import ensure_ray

    plan = load_plan(job.preset)
    prepared, uri = open_inputs(job.data, job.tracking_uri)
    _check_same_plan(storage.join(job.storage, job.name), plan)
    ensure_ray()

    sweep = _Sweep(job, plan, prepared, uri)
    print(clip(f"negrec tune: {job.name}: {sweep.trials.describe()}"), flush=True)
    client = tracking.client(uri)
    client.update_run(sweep.parent_run_id, status="RUNNING")
    tracking.log_params(
        uri,
        sweep.parent_run_id,
        {"preset": str(plan.path), "data": job.data, "storage": job.storage},
    )
    try:
        coarse = sweep.stage("coarse", plan.coarse, [])
        top = [trial.config for trial in coarse.ranked()]
        fine_space = derive_fine_space(plan.coarse, top, plan.rules)
        points = seed_points(top, plan.rules, plan.preset.fine.trials)
        fine = sweep.stage("fine", fine_space, points)
        best = report.best_trial([coarse, fine])
    except Exception:
        client.set_terminated(sweep.parent_run_id, status="FAILED")
        raise
    summary = SweepSummary(
        name=job.name,
        sweep=sweep.sweep_uri,
        mlflow_run_id=sweep.parent_run_id,
        tracking_uri=storage.redact(uri),
        best_checkpoint=best.checkpoint,
        best_config=best.config,
        k=coarse.k,
        best_val_ndcg=best.best_ndcg,
        best_trial=BestTrial(stage=best.stage, trial_id=best.trial_id, epoch=best.best_epoch),
        stages={"coarse": StageLine.of(coarse), "fine": StageLine.of(fine)},
        fine_space=fine_space.as_data(),
    )
    logged = summary.model_dump(mode="json")
    report.log_sweep(uri, sweep.parent_run_id, [coarse, fine], logged)  # adds learning_curve
    return summary.model_copy(update={"learning_curve": logged.get("learning_curve")})
