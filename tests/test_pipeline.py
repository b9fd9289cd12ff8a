"""The pipeline refuses a bad preset or training config before it generates or prepares."""

from __future__ import annotations

from pathlib import Path

import pytest

from negrec.config import ConfigError
from negrec.workflow.pipeline import PipelineConfig, run


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
