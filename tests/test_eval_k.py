"""``train.eval_k`` is the one cut-off: training, checkpoints, the sweep and promotion all
rank on NDCG@eval_k, whatever it is, under names derived in ``negrec.metrics``.

With the cut-off hard-coded at 10 anywhere on the way, a sweep at ``eval_k=20`` would
leave Ray Train's checkpoint ranking, ASHA or the registry without their metric.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from negrec import checkpoint, metrics, recipes, registry, tags, tracking
from negrec.serving import promotion
from negrec.tuning.driver import TuneJob, run

pytestmark = pytest.mark.slow

K = 20


def _preset(tmp_path: Path) -> Path:
    """A two-trial sweep of the tiny preset's model, ranked at NDCG@20."""
    tiny = recipes.preset_path("tiny").read_text()
    preset = (
        tiny.replace("../coarse.yaml", str(recipes.tuning_path("coarse.yaml")))
        .replace("../fine_rules.yaml", str(recipes.tuning_path("fine_rules.yaml")))
        .replace("coarse: {trials: 6, epochs: 3}", "coarse: {trials: 2, epochs: 2}")
        .replace("fine: {trials: 3, epochs: 4}", "fine: {trials: 1, epochs: 2}")
        .replace("fixed:\n", f"fixed:\n  train.eval_k: {K}\n")
    )
    assert f"train.eval_k: {K}" in preset and "trials: 2, epochs: 2" in preset
    path = tmp_path / "eval_k.yaml"
    path.write_text(preset)
    return path


def test_a_sweep_at_eval_k_20_trains_checkpoints_tunes_and_promotes_on_ndcg_at_20(
    small_prepared: str, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    summary = run(
        TuneJob(
            data=small_prepared,
            storage=str(tmp_path / "sweeps"),
            name="k20",
            preset=str(_preset(tmp_path)),
            tracking_uri=uri,
        )
    )
    assert summary.k == K
    best = summary.best_val_ndcg
    assert best is not None and 0 < best <= 1
    assert summary.model_dump()[metrics.best_val_ndcg(K)] == best  # the JSON spells k

    client = tracking.client(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT).experiment_id]
    )
    trial_runs = [r for r in runs if tags.STAGE in r.data.tags]
    assert len(trial_runs) == 3  # two coarse trials and one fine trial, each a Train run
    completed = [r for r in trial_runs if r.data.tags.get(tags.STOP_REASON) == "completed"]
    assert completed  # the fine trial at least runs to its end (ASHA may stop a coarse one)
    for trial in trial_runs:
        logged = trial.data.metrics
        assert metrics.val_ndcg(K) in logged  # every epoch of every trial
        assert metrics.val_ndcg(10) not in logged  # nothing ranked at the old cut-off
    for trial in completed:  # only a trial that ran to its end is tested
        assert metrics.test_ndcg(K) in trial.data.metrics

    saved = checkpoint.load(summary.best_checkpoint)
    assert saved.config.train.eval_k == K
    assert metrics.val_ndcg(K) in saved.metrics  # what Ray Train ranked checkpoints on
    assert saved.state.best_ndcg == pytest.approx(best)

    promoted = promotion.run(sweep="k20", tracking_uri=uri)
    assert promoted.k == K and promoted.promoted
    version = client.get_model_version(promoted.model_name, promoted.version)
    score = registry.version_metric(version, metrics.ndcg(K))
    assert score == pytest.approx(promoted.test[metrics.ndcg(K)])
    assert tags.test_metric(metrics.ndcg(10)) not in version.tags
