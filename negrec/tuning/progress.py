"""A sweep stage's progress on the driver's console: trials done, running, stopped by
ASHA, failed, and the best validation NDCG@k so far.

Why a Tune callback: Ray Tune calls it in the driver process for every trial result and
end, so the display needs no polling; it replaces Tune's own wide status tables, which
are off unless ``--verbose`` (``negrec.console`` draws it).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from negrec import metrics
from negrec.console import StageProgress


class SweepProgress(Callback):
    """One :class:`StageProgress` over the stage's ``trials``."""

    def __init__(self, stage: str, trials: int, k: int) -> None:
        self.stage, self.trials, self.k = stage, trials, k
        self.best: float | None = None
        self.ended: dict[str, str] = {}  # trial id -> completed | stopped | failed
        self.progress: StageProgress | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Tune saves its run config (callbacks included) with the experiment; the
        display holds a console and locks, which stay in this process."""
        return {**self.__dict__, "progress": None}

    def setup(self, **info: Any) -> None:
        self.progress = StageProgress(f"tune {self.stage}", self.trials, "trials")
        self.progress.start()

    def _status(self, trials: list[Any]) -> str:
        running = sum(t.status == "RUNNING" for t in trials)
        stopped = sum(reason == "stopped" for reason in self.ended.values())
        failed = sum(reason == "failed" for reason in self.ended.values())
        best = f"{self.best:.4f}" if self.best is not None else "-"
        return (
            f"{running} running, {stopped} stopped by ASHA, {failed} failed; "
            f"best val ndcg@{self.k} {best}"
        )

    def _show(self, trials: list[Any]) -> None:
        if self.progress is not None:
            self.progress.update(len(self.ended), self._status(trials))

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
    ) -> None:
        score = result.get(metrics.best_val_ndcg(self.k))
        if score is not None:
            self.best = max(self.best or score, score)
        if self.progress is not None and self.progress.live:  # plain: a line per trial end
            self._show(trials)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        finished = metrics.test_ndcg(self.k) in (trial.last_result or {})
        self.ended[trial.trial_id] = "completed" if finished else "stopped"
        self._show(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ended[trial.trial_id] = "failed"
        self._show(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
