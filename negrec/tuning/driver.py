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
from typing import Any

from pydantic import Field

from negrec import metrics, storage, tags, tracking
from negrec.config import NegrecConfig
from negrec.distributed.resources import DEFAULT_CACHE_LIMIT_MIB, plan_trials
from negrec.errors import NegrecError
from negrec.storage import AbsoluteUri, StorageOptions
from negrec.strict import StrictModel
from negrec.tuning import report, results
from negrec.tuning.fine import derive_fine_space, seed_points
from negrec.tuning.preset import SweepPlan, load_plan
from negrec.tuning.space import Choice, SearchSpace
from negrec.tuning.trial import Stage, TrialSpec

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


def _max_lens(space: SearchSpace, fixed: dict[str, Any]) -> list[int]:
    """Sequence lengths the stage's trials train at (training data is built per length)."""
    if "model.max_len" in space:
        dimension = space["model.max_len"]
        assert isinstance(dimension, Choice)  # integer keys take choices (space.check_space)
        return [int(v) for v in dimension.values]
    return [int(fixed.get("model.max_len", NegrecConfig().model.max_len))]


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
        )
        self.datasets: dict[int, Any] = {}
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
            for max_len in _max_lens(space, preset.fixed):
                if max_len not in self.datasets:
                    self.datasets[max_len] = training_data(
                        self.prepared, max_len, self.job.cache_limit_mib
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


def _stage_line(summary: results.StageSummary) -> dict[str, Any]:
    ranked = summary.ranked()
    return {
        "trials": len(summary.trials),
        "epochs": summary.epochs,
        metrics.best_val_ndcg(summary.k): ranked[0].best_ndcg if ranked else None,
        "stopped_by_asha": len(summary.stopped_by_asha()),
        "errors": sum(t.stop_reason == "error" for t in summary.trials),
    }


def run(job: TuneJob) -> dict[str, Any]:
    """Run (or resume) the sweep; returns its summary (best checkpoint, config, stages)."""
    from negrec.data.loaders import load_prepared
    from negrec.data.manifest import check_evaluation_splits
    from negrec.runtime import ensure_ray

    plan = load_plan(job.preset)
    options = StorageOptions.from_env()
    storage.configure_environment(options)
    prepared = load_prepared(job.data, options)
    check_evaluation_splits(prepared.manifest, job.data, minimum=1)
    uri = tracking.resolve_tracking_uri(job.tracking_uri)
    tracking.check_reachable(uri)
    _check_same_plan(storage.join(job.storage, job.name), plan)
    ensure_ray()

    sweep = _Sweep(job, plan, prepared, uri)
    print(f"negrec tune: {job.name} ({plan.path}): {sweep.trials.describe()}", flush=True)
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
    summary = {
        "name": job.name,
        "sweep": sweep.sweep_uri,
        "mlflow_run_id": sweep.parent_run_id,
        "tracking_uri": storage.redact(uri),
        "best_checkpoint": best.checkpoint,
        "best_config": best.config,
        "k": coarse.k,
        metrics.best_val_ndcg(coarse.k): best.best_ndcg,
        "best_trial": {"stage": best.stage, "trial_id": best.trial_id, "epoch": best.best_epoch},
        "stages": {"coarse": _stage_line(coarse), "fine": _stage_line(fine)},
        "fine_space": fine_space.as_data(),
    }
    report.log_sweep(uri, sweep.parent_run_id, [coarse, fine], summary)
    return summary
