"""What :func:`negrec.workflow.pipeline.run` returns and ``negrec pipeline --json`` prints.

Apart from the pipeline's steps because it holds the evaluation's result, whose module
imports torch: the pipeline imports this module when it runs, so that reading its
options (``negrec pipeline --help``) stays fast.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from negrec.evaluation.checkpoint_metrics import EvaluationResult
from negrec.serving.promotion import PromotionResult
from negrec.strict import FrozenModel

STEP_SUFFIX = "_s"


class Sample(FrozenModel):
    """The champion's top-k for one test user, as the pipeline's last step shows it."""

    history: str
    """The user's last interactions, ``"item:+ item:-"``."""
    recommended: list[Any]
    """Original item ids, best first."""
    scores: list[float]


class PipelineSummary(FrozenModel):
    """Each step's result and its seconds (``<step>_s``); the JSON holds ``test`` and
    ``promote`` in their own flat forms, and only the steps that ran."""

    root: str
    generate_s: float | None = Field(None, exclude_if=lambda seconds: seconds is None)
    """None when the pipeline was given an event log instead of generating one."""
    prepare_s: float
    tune_s: float | None = Field(None, exclude_if=lambda seconds: seconds is None)
    sweep: dict[str, dict[str, Any]] | None = Field(None, exclude_if=lambda stages: stages is None)
    """The sweep's stages as ``negrec tune --json`` shows them (a tuned pipeline only)."""
    train_s: float | None = Field(None, exclude_if=lambda seconds: seconds is None)
    mlflow_run_id: str
    """The training run, or the sweep's parent run."""
    learning_curve: str | None
    checkpoint: str
    """The checkpoint evaluated and promoted."""
    test: EvaluationResult
    evaluate_s: float
    promote: PromotionResult
    promote_s: float
    sample: Sample
    recommend_s: float

    def timings(self) -> dict[str, float]:
        """Seconds per step that ran, in the order they ran: ``{"prepare": 4.2, ...}``."""
        return {
            key.removesuffix(STEP_SUFFIX): value
            for key, value in self.model_dump().items()
            if key.endswith(STEP_SUFFIX)
        }
