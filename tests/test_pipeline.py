"""The pipeline refuses a bad preset or training config before it generates or prepares,
and its summary keeps the JSON that ``negrec pipeline --json`` always printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from negrec.config import ConfigError
from negrec.evaluation.checkpoint_metrics import EvaluationResult
from negrec.serving.promotion import PromotionResult
from negrec.workflow.pipeline import PipelineConfig, run
from negrec.workflow.summary import PipelineSummary, Sample


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"preset": "bogus"}, "--preset bogus: no such preset file"),
        ({"overrides": ["model.dimm=3"]}, "model.dimm: unknown key"),
    ],
    ids=["preset", "train-config"],
)
def test_bad_settings_fail_before_any_stage_runs(
    tmp_path: Path, settings: dict, message: str
) -> None:
    root = tmp_path / "store"
    steps: list[str] = []
    with pytest.raises(ConfigError, match=message):
        run(PipelineConfig(root=str(root), **settings), log=steps.append)
    assert steps == []  # not even the first step's banner
    assert not root.exists()  # nothing generated or prepared


def test_summary_json_keeps_its_keys_and_only_the_steps_that_ran() -> None:
    """``negrec pipeline --json`` of a training run on a given event log: no generate,
    tune or sweep keys; ``test`` and ``promote`` in their own flat forms; it reads back."""
    test = EvaluationResult(
        split="test", k=10, rows=40, metrics={"ndcg@10": 0.4}, popular={"ndcg@10": 0.1}
    )
    promote = PromotionResult(
        model_name="negrec",
        version="1",
        model_uri="models:/negrec/1",
        promoted=True,
        forced=False,
        decision="version 1 is the first champion (none was set)",
        champion_version="1",
        previous_champion_version=None,
        k=10,
        previous_champion_test=None,
        test={"ndcg@10": 0.4, "recall@10": 0.6},
        checkpoint="/store/runs/ckpt",
        data="/store/prepared",
        mlflow_run_id="run",
        tracking_uri="sqlite:///mlflow.db",
    )
    summary = PipelineSummary(
        root="/store",
        prepare_s=4.2,
        train_s=30.0,
        mlflow_run_id="run",
        learning_curve=None,
        checkpoint="/store/runs/ckpt",
        test=test,
        evaluate_s=1.5,
        promote=promote,
        promote_s=2.0,
        sample=Sample(history="7:+ 3:-", recommended=[5, 9], scores=[0.9, 0.8]),
        recommend_s=0.5,
    )
    flat = summary.model_dump()
    assert list(flat) == [
        *("root", "prepare_s", "train_s", "mlflow_run_id", "learning_curve", "checkpoint"),
        *("test", "evaluate_s", "promote", "promote_s", "sample", "recommend_s"),
    ]
    assert flat["test"] == test.model_dump() and flat["promote"] == promote.model_dump()
    assert flat["promote"]["test_ndcg@10"] == 0.4
    assert summary.timings() == {
        "prepare": 4.2,
        "train": 30.0,
        "evaluate": 1.5,
        "promote": 2.0,
        "recommend": 0.5,
    }
    assert PipelineSummary.model_validate_json(json.dumps(flat)) == summary
