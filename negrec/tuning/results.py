"""Stage summaries: what each trial of a stage did, persisted as a small JSON file.

Why persist: the fine stage, the MLflow summary and the plot need only this, and a
re-run of the same sweep reads a finished stage's summary instead of running or even
restoring its Tune experiment again.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import Field

from negrec import metrics, storage
from negrec.distributed.learning_curve import TRAIN_LOSS
from negrec.strict import StrictModel
from negrec.tuning.trial import Stage, TrialSpec

StopReason = Literal["early_stopped_by_asha", "completed", "error"]
CHECKPOINT_PATH = "checkpoint_path"
"""Where ``TuneReportCallback`` puts the path of the checkpoint reported with a result."""


class TrialRecord(StrictModel):
    trial_id: str
    stage: Stage
    run_name: str
    config: dict[str, Any]
    history: list[tuple[int, float]]
    """(epoch, validation NDCG@k) per epoch reported."""
    losses: list[tuple[int, float]] = Field(default_factory=list)
    """(epoch, training loss) per epoch reported; empty in a summary written before the
    loss was recorded."""
    best_ndcg: float | None
    best_epoch: int | None
    checkpoint: str | None
    """URI of the checkpoint written at the best epoch (it holds that epoch's weights)."""
    stop_reason: StopReason
    error: str | None = None

    @property
    def epochs(self) -> int:
        return max((epoch for epoch, _ in self.history), default=0)


class StageSummary(StrictModel):
    stage: Stage
    epochs: int
    k: int
    """The cut-off of the NDCG the trials were ranked on (``train.eval_k``)."""
    space: dict[str, Any]
    trials: list[TrialRecord]

    def ranked(self) -> list[TrialRecord]:
        """Trials that reported a validation NDCG@k, best first."""
        scored = [t for t in self.trials if t.best_ndcg is not None]
        return sorted(scored, key=lambda t: t.best_ndcg or 0.0, reverse=True)

    def stopped_by_asha(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.stop_reason == "early_stopped_by_asha"]


def _error_line(error: BaseException | None) -> str | None:
    if error is None:
        return None
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def record(result: Any, spec: TrialSpec) -> TrialRecord:
    """A ``ray.tune.Result`` as a record. The trial id comes from its metrics (Tune sets
    it even before a first report), not its directory, which a restore may rename."""
    trial_id = str(result.metrics["trial_id"])
    val_ndcg = metrics.val_ndcg(spec.eval_k)
    # Only the final report (after the last epoch) carries test metrics, so a trial
    # without it and without an error was stopped by ASHA.
    final = metrics.test_ndcg(spec.eval_k)
    frame = result.metrics_dataframe
    epochs: dict[int, tuple[float, str | None]] = {}
    losses: dict[int, float] = {}
    if frame is not None and "epoch" in frame:
        for row in frame[frame["epoch"].notna()].to_dict("records"):
            path = row.get(CHECKPOINT_PATH)
            epochs[int(row["epoch"])] = (
                float(row[val_ndcg]),
                path if isinstance(path, str) else None,
            )
            loss = row.get(TRAIN_LOSS)
            if isinstance(loss, int | float) and not math.isnan(loss):
                losses[int(row["epoch"])] = float(loss)
    history = sorted((epoch, ndcg) for epoch, (ndcg, _) in epochs.items())
    best_epoch = max(epochs, key=lambda e: (epochs[e][0], -e)) if epochs else None
    best_path = epochs[best_epoch][1] if best_epoch is not None else None
    if result.error is not None:
        reason: StopReason = "error"
    elif final in result.metrics:
        reason = "completed"
    else:
        reason = "early_stopped_by_asha"
    return TrialRecord(
        trial_id=trial_id,
        stage=spec.stage,
        run_name=spec.run_name(trial_id),
        config=dict(result.config),
        history=history,
        losses=sorted(losses.items()),
        best_ndcg=epochs[best_epoch][0] if best_epoch is not None else None,
        best_epoch=best_epoch,
        checkpoint=storage.uri_for(spec.trials_uri, best_path) if best_path else None,
        stop_reason=reason,
        error=_error_line(result.error),
    )


def save(uri: str, summary: StageSummary) -> None:
    storage.write_text(uri, summary.model_dump_json(indent=2))


def load(uri: str) -> StageSummary | None:
    """The summary at ``uri``, or None when the stage has not finished."""
    if not storage.exists(uri):
        return None
    return StageSummary.model_validate(json.loads(storage.read_text(uri)))
