"""One sweep trial: a Ray Tune function trainable that fits one ``TorchTrainer``.

Why a function trainable (not ``Tuner(TorchTrainer)``, which Ray deprecated): the trial
calls the training driver itself (``negrec.distributed.trainer.run``), so a trial is
exactly a training run (same checkpoints, same MLflow logging) and
``TuneReportCallback`` forwards each epoch's report to Tune, where ASHA sees it. The
trial's MLflow run is opened here first, as a child of the sweep's run with its stage
tag; the driver then finds it by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from negrec import tags, tracking
from negrec.config import NegrecConfig, build_config, unflatten
from negrec.strict import FrozenModel

if TYPE_CHECKING:
    from negrec.distributed.trainer import RowLayout

Stage = Literal["coarse", "fine"]


class TrialSpec(FrozenModel):
    """What the trials of one stage share; plain data, because Tune ships it to them."""

    sweep: str
    stage: Stage
    data: str
    trials_uri: str
    tracking_uri: str
    experiment: str
    parent_run_id: str
    fixed: dict[str, Any]
    epochs: int
    workers: int
    gpu: bool
    cpus_per_worker: float
    quiet: bool = False
    """The sweep draws its trials (Ray's output is off): trials print nothing per epoch."""

    def run_name(self, trial_id: str) -> str:
        """The trial's Ray Train run and MLflow run name (stable across a resume)."""
        return f"{self.sweep}-{self.stage}-{trial_id}"

    @property
    def eval_k(self) -> int:
        """The cut-off every trial of the sweep is ranked on (``train.eval_k`` is fixed
        for a sweep: trials scored at different cut-offs cannot be compared)."""
        return self.config({}).train.eval_k

    def config(self, sampled: Mapping[str, Any]) -> NegrecConfig:
        values = {**self.fixed, **sampled, "train.max_epochs": self.epochs}
        return build_config(unflatten(values), f"{self.stage} trial")


def run_trial(
    config: dict[str, Any], spec: dict[str, Any], datasets: Mapping[RowLayout, Any]
) -> None:
    """Tune entry point; ``datasets`` maps each row layout to the shared training data."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from negrec.distributed import trainer

    trial = TrialSpec.model_validate(spec)
    trial_id = tune.get_context().get_trial_id()
    name = trial.run_name(trial_id)
    job = trainer.TrainJob(
        data=trial.data,
        storage=trial.trials_uri,
        name=name,
        config=trial.config(config),
        workers=trial.workers,
        gpu=trial.gpu,
        cpus_per_worker=trial.cpus_per_worker,
        tracking_uri=trial.tracking_uri,
        experiment=trial.experiment,
        parent_run_id=trial.parent_run_id,
        progress="none" if trial.quiet else "epoch_lines",
    )
    tracking.start_or_resume_run(
        trial.tracking_uri,
        name,
        trial.experiment,
        tags={tags.STAGE: trial.stage, tags.TRIAL_ID: trial_id},
        parent_run_id=trial.parent_run_id,
    )
    trainer.run(
        job,
        callbacks=[TuneReportCallback()],
        train_data=datasets.get(trainer.row_layout(job.config)),
    )
