"""Sweep inputs without Ray: spaces, presets, the fine-space rules, stage records and
the plan of concurrent trials. Each wrong file must fail with the key that is wrong."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from negrec import recipes
from negrec.config import ConfigError, build_config, load_config, unflatten
from negrec.distributed.resources import plan_trials
from negrec.errors import NegrecError
from negrec.tuning.fine import FineRules, derive_fine_space, seed_points
from negrec.tuning.preset import builtin_presets, load_plan
from negrec.tuning.results import record
from negrec.tuning.space import Choice, LogUniform, SearchSpace, Uniform, load_space
from negrec.tuning.trial import TrialSpec

COARSE = SearchSpace.model_validate(
    {
        "train.lr": {"kind": "loguniform", "low": 1e-4, "high": 1e-2},
        "model.dropout": {"kind": "uniform", "low": 0.0, "high": 0.6},
        "model.dim": {"kind": "choice", "values": [32, 64, 128]},
    }
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- spaces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.lr: {kind: loguniform, low: 1.0e-2, high: 1.0e-4}", "train.lr"),
        ("model.dropout: {kind: uniform, low: 0.3, high: 0.3}", "empty range"),
        ("model.dim: {kind: choice, values: []}", "model.dim"),
        ("model.width: {kind: choice, values: [32]}", "model.width: not a config key"),
        ("train.lr: {kind: loguniform, low: 1.0e-4, hihg: 1.0e-2}", "hihg: unknown key"),
        ("train.lr: {kind: normal, low: 1.0e-4, high: 1.0e-2}", "train.lr"),
        ("model.dim: {kind: uniform, low: 16, high: 64}", "model.dim: a uniform range"),
        ("model.dropout: {kind: uniform, low: 0.1, high: 1.5}", "model.dropout"),
        ("train.lr: {kind: loguniform, low: 0.0, high: 1.0e-2}", "low > 0"),
        (
            "model.dim: {kind: choice, values: [30]}\nmodel.heads: {kind: choice, values: [4]}",
            "heads=4 must divide dim=30",
        ),
    ],
)
def test_a_wrong_space_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"space\.yaml") as error:
        load_space(_write(tmp_path, "space.yaml", text))
    assert message in str(error.value)


def test_fixed_keys_leave_the_space_and_are_applied_when_checking(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "space.yaml",
        "model.dim: {kind: choice, values: [32]}\nmodel.heads: {kind: choice, values: [1, 3]}\n",
    )
    space = load_space(path, fixed={"model.dim": 48})  # 3 divides the fixed 48, not 32
    assert space.keys() == ["model.heads"]
    with pytest.raises(ConfigError, match="heads=3 must divide dim=32"):
        load_space(path)


def test_space_to_tune_samples_inside_its_ranges() -> None:
    param_space = COARSE.to_tune()
    for _ in range(50):
        point = {key: domain.sample() for key, domain in param_space.items()}
        assert COARSE.contains(point)
        build_config(unflatten(point))


# --- presets ------------------------------------------------------------------------


@pytest.mark.parametrize("name", builtin_presets())
def test_builtin_presets_load(name: str) -> None:
    plan = load_plan(name)
    assert plan.preset.fine.epochs >= plan.preset.coarse.epochs
    assert not set(plan.preset.fixed) & set(plan.coarse.keys())


def test_tiny_preset_is_small_and_uses_cross_entropy() -> None:
    plan = load_plan("tiny")
    config = build_config(unflatten(plan.preset.fixed))
    assert config.objective.loss == "ce"
    assert config.model.dim <= 32 and config.model.blocks == 1
    assert plan.preset.coarse.trials >= 6 and plan.preset.fine.trials >= 3
    assert max(plan.preset.coarse.epochs, plan.preset.fine.epochs) <= 4
    assert "objective.gbce_t" not in plan.coarse  # ce ignores it
    assert "objective.negatives" not in plan.coarse  # and samples no negatives


@pytest.mark.parametrize(("preset", "recipe_name"), [("ml1m-ntr", "ml1m"), ("demo-ntr", "demo")])
def test_ntr_preset_is_its_recipe_with_actions(preset: str, recipe_name: str) -> None:
    """A not-to-recommend sweep must train variant (c) of its negative-feedback
    benchmark (the recipe with actions, for the stage's passes) at every weight, only w
    differing."""
    plan = load_plan(preset)
    assert plan.coarse.keys() == ["objective.not_to_recommend_weight"]
    dimension = plan.coarse["objective.not_to_recommend_weight"]
    assert isinstance(dimension, LogUniform) and (dimension.low, dimension.high) == (0.1, 100.0)
    epochs = plan.preset.coarse.epochs
    weight = "objective.not_to_recommend_weight=0.5"
    swept = build_config(unflatten({**plan.preset.fixed, "train.max_epochs": epochs}))
    swept.objective.not_to_recommend_weight = 0.5
    recipe = load_config(recipe_name, ["model.num_actions=2", weight, f"train.max_epochs={epochs}"])
    assert swept == recipe
    assert plan.preset.fine.epochs == epochs
    assert plan.preset.asha.grace_period == epochs - 1  # ASHA decides only at the end


@pytest.mark.parametrize("name", [n for n in builtin_presets() if not n.endswith("-ntr")])
def test_only_the_ntr_presets_search_the_not_to_recommend_weight(name: str) -> None:
    """Every other sweep ranks trials by validation NDCG@10, which the weight trades
    away for fewer rejected items: searched there, it would be chosen by noise."""
    searched = load_plan(name).coarse.keys()
    assert searched and "objective.not_to_recommend_weight" not in searched


def test_make_demo_trains_the_demo_recipes_weight_whether_it_sweeps_or_not() -> None:
    """`negrec demo` sweeps preset `demo` by default and trains recipe `demo` with
    `--preset none`: both must take the weight the generated-log measurement chose."""
    swept = build_config(unflatten(load_plan("demo").preset.fixed))
    recipe = load_config("demo")
    weight = recipe.objective.not_to_recommend_weight
    assert weight > 0
    assert swept.objective.not_to_recommend_weight == weight


PRESET = """
coarse_space: {space}
fine_rules: {rules}
coarse: {{trials: 4, epochs: 3}}
fine: {{trials: 2, epochs: 4}}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("trails: 3", "trails: unknown key"),
        ("asha: {grace_period: 3}", "asha.grace_period (3) must be below coarse.epochs (3)"),
        ("fixed: {model.width: 3}", "fixed.model.width: not a config key"),
        ("fixed: {model.dropout: 2.0}", "model.dropout"),
        ("fixed: {train.max_epochs: 9}", "train.max_epochs is set by each stage"),
        ("max_concurrent_trials: 0", "max_concurrent_trials"),
    ],
)
def test_a_wrong_preset_names_the_key(tmp_path: Path, extra: str, message: str) -> None:
    text = PRESET.format(
        space=recipes.tuning_path("coarse.yaml"), rules=recipes.tuning_path("fine_rules.yaml")
    )
    path = _write(tmp_path, "preset.yaml", text + extra + "\n")
    with pytest.raises(ConfigError) as error:
        load_plan(str(path))
    assert message in str(error.value)


def test_an_unknown_preset_lists_the_builtin_ones() -> None:
    with pytest.raises(ConfigError, match="no such preset file; built-in presets: ") as error:
        load_plan("huge")
    assert {"tiny", "laptop", "cluster"} <= set(str(error.value).split(": ")[-1].split(", "))


# --- fine space ---------------------------------------------------------------------

TOP = [
    {"train.lr": 1e-3, "model.dropout": 0.2, "model.dim": 64},
    {"train.lr": 4e-3, "model.dropout": 0.3, "model.dim": 32},
    {"train.lr": 2e-3, "model.dropout": 0.25, "model.dim": 64},
    {"train.lr": 1e-4, "model.dropout": 0.6, "model.dim": 128},  # not among the top 3
]


def test_fine_space_surrounds_the_top_configurations_inside_the_coarse_space() -> None:
    rules = FineRules(top_n=3, widen=1.5, min_width=0.1, seed_points=2)
    fine = derive_fine_space(COARSE, TOP, rules)
    lr, dropout, dim = fine["train.lr"], fine["model.dropout"], fine["model.dim"]
    assert isinstance(lr, LogUniform) and isinstance(dropout, Uniform) and isinstance(dim, Choice)
    assert dim.values == [32, 64]  # 128 was used only outside the top 3
    # Widened by 1.5 about the centre of [1e-3, 4e-3] on the log axis: [1e-3/√2, 4e-3·√2].
    assert lr.low == pytest.approx(1e-3 / math.sqrt(2)) and lr.high == pytest.approx(
        4e-3 * math.sqrt(2)
    )
    assert dropout.low == pytest.approx(0.2 - 0.025) and dropout.high == pytest.approx(0.3 + 0.025)
    for config in TOP[:3]:
        assert fine.contains(config)
    assert not fine.contains(TOP[3])
    for key, dimension in fine.items():
        if not isinstance(dimension, Choice):
            assert COARSE[key].low <= dimension.low < dimension.high <= COARSE[key].high
    assert seed_points(TOP, rules, limit=5) == TOP[:2]
    assert seed_points(TOP, rules, limit=1) == TOP[:1]


def test_fine_range_keeps_a_minimum_width_and_is_clipped_to_the_coarse_range() -> None:
    rules = FineRules(top_n=2, widen=2.0, min_width=0.2, seed_points=1)
    same = [{"train.lr": 1e-2, "model.dropout": 0.0, "model.dim": 32}] * 2
    fine = derive_fine_space(COARSE, same, rules)
    lr, dropout = fine["train.lr"], fine["model.dropout"]
    # All at the coarse maximum: the range spans 10% of the coarse log span, below it.
    assert lr.high == pytest.approx(1e-2) and lr.low == pytest.approx(1e-2 / 10 ** (0.1 * 2))
    assert dropout.low == 0.0 and dropout.high == pytest.approx(0.06)
    assert fine["model.dim"].values == [32]


def test_no_scored_coarse_trial_is_a_clear_error() -> None:
    with pytest.raises(NegrecError, match="no coarse trial"):
        derive_fine_space(COARSE, [], FineRules())


def test_fine_rules_refuse_more_seed_points_than_top_configurations() -> None:
    with pytest.raises(ValueError, match="seed_points"):
        FineRules(top_n=2, seed_points=3)


# --- stage records ------------------------------------------------------------------

SPEC = TrialSpec(
    sweep="s",
    stage="coarse",
    data="/data",
    trials_uri="s3://bucket/sweeps/s/trials",
    tracking_uri="sqlite:////tmp/m.db",
    experiment="negrec",
    parent_run_id="p",
    fixed={},
    epochs=3,
    workers=1,
    gpu=False,
    cpus_per_worker=1.0,
)


def _result(rows: list[dict[str, Any]], error: Exception | None = None) -> Any:
    return SimpleNamespace(
        metrics_dataframe=pd.DataFrame(rows) if rows else None,
        metrics={**(rows[-1] if rows else {}), "trial_id": "abc_00001"},
        config={"train.lr": 1e-3},
        error=error,
    )


def _epoch(epoch: int, ndcg: float) -> dict[str, Any]:
    return {"epoch": epoch, "val_ndcg_at_10": ndcg, "checkpoint_path": f"bucket/ckpt_{epoch}"}


def test_record_of_a_completed_trial_points_at_its_best_epochs_checkpoint() -> None:
    final = {"epoch": None, "test_ndcg_at_10": 0.3, "val_ndcg_at_10": None, "checkpoint_path": None}
    trial = record(_result([_epoch(1, 0.2), _epoch(2, 0.31), _epoch(3, 0.29), final]), SPEC)
    assert trial.trial_id == "abc_00001" and trial.run_name == "s-coarse-abc_00001"
    assert trial.stop_reason == "completed"
    assert trial.history == [(1, 0.2), (2, 0.31), (3, 0.29)]
    assert (trial.best_epoch, trial.best_ndcg) == (2, 0.31)
    assert trial.checkpoint == "s3://bucket/ckpt_2"


def test_record_tells_asha_stops_from_errors() -> None:
    stopped = record(_result([_epoch(1, 0.1)]), SPEC)
    assert stopped.stop_reason == "early_stopped_by_asha" and stopped.epochs == 1
    failed = record(_result([], RuntimeError("worker died\nOOM")), SPEC)
    assert failed.stop_reason == "error" and failed.error == "RuntimeError: OOM"
    assert failed.best_ndcg is None and failed.checkpoint is None


# --- concurrent trials --------------------------------------------------------------


def test_trials_share_the_cluster_so_each_keeps_a_cpu_for_ray_data() -> None:
    plan = plan_trials(1, None, 2, {"CPU": 8})
    assert (plan.concurrency, plan.workers.cpus_per_worker) == (2, 1.0)
    # 4 CPUs, two trials: 2 x (0.75 worker + 0.25 trial driver) leaves 2 CPUs for data.
    plan = plan_trials(1, None, 4, {"CPU": 4})
    assert (plan.concurrency, plan.workers.cpus_per_worker) == (2, 0.75)
    # Two workers per trial would get under half a CPU each at 2+ trials: run one.
    plan = plan_trials(2, None, 4, {"CPU": 4})
    assert (plan.concurrency, plan.workers.num_workers) == (1, 2)
    plan = plan_trials(2, None, 16, {"CPU": 64, "GPU": 8})
    assert (plan.concurrency, plan.workers.use_gpu) == (4, True)
    with pytest.raises(NegrecError, match="Ray Data"):
        plan_trials(1, None, 2, {"CPU": 1})


def test_a_preset_cpus_per_worker_is_taken_and_bounds_the_trials_at_once() -> None:
    # A local 2-core instance declares 4 CPUs: one trial of 2 (+ 1 data + 0.25 driver).
    plan = plan_trials(1, None, 2, {"CPU": 4}, cpus_per_worker=2.0)
    assert (plan.concurrency, plan.workers.cpus_per_worker) == (1, 2.0)
    plan = plan_trials(1, None, 3, {"CPU": 8}, cpus_per_worker=2.0)
    assert (plan.concurrency, plan.workers.cpus_per_worker) == (2, 2.0)
    with pytest.raises(NegrecError, match="cpus_per_worker=3"):
        plan_trials(1, None, 1, {"CPU": 4}, cpus_per_worker=3.0)
