"""Typed configuration: defaults, YAML, --set overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

import negrec
from negrec import recipes
from negrec.config import ConfigError, load_config, parse_overrides


def test_defaults_are_the_reference_architecture_with_cross_entropy() -> None:
    config = load_config()
    assert (config.model.dim, config.model.blocks, config.model.heads) == (128, 2, 1)
    assert (config.model.dropout, config.model.max_len) == (0.5, 200)
    assert config.objective.loss == "ce"  # chosen by measurement: docs/configuration.md
    assert (config.objective.negatives, config.objective.gbce_t) == (256, 0.75)
    assert (config.train.lr, config.train.batch_size) == (1e-3, 128)


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  dim: 64\ntrain:\n  lr: 0.01\n")
    config = load_config(path, ["train.lr=3e-4", "objective.sampling=per_position"])
    assert config.model.dim == 64
    assert config.train.lr == 3e-4
    assert config.objective.sampling == "per_position"
    assert config.model.blocks == 2  # untouched default


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  dimm: 64\n")
    with pytest.raises(ConfigError, match=r"model\.dimm: unknown key") as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_wrong_value_is_named_with_what_was_given() -> None:
    with pytest.raises(ConfigError, match=r"train\.lr: .*greater than 0.*-1"):
        load_config(overrides=["train.lr=-1"])
    with pytest.raises(ConfigError, match=r"objective\.loss"):
        load_config(overrides=["objective.loss=hinge"])
    with pytest.raises(ConfigError, match="heads=3 must divide dim=128"):
        load_config(overrides=["model.heads=3"])


def test_malformed_override_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["model.dim"])
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(overrides=["train.lr=1e-3", "train.lr.x=2"])


RECIPES = recipes.recipe_names()


def test_the_recipes_are_package_data() -> None:
    assert {"demo", "gsasrec", "ml1m"} <= set(RECIPES)
    for name in RECIPES:
        path = recipes.recipe_path(name)
        assert path.parent == Path(negrec.__file__).parent / "recipes"
        assert recipes.recipe_text(name) == path.read_text()


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_shipped_recipe_loads(recipe: str) -> None:
    config = load_config(recipe)
    assert config.model.heads >= 1  # validated: a misspelt key would have raised
    assert load_config(recipes.recipe_path(recipe)) == config  # by name or by path


def test_the_recipes_keep_their_losses() -> None:
    by_name = {name: load_config(name) for name in RECIPES}
    assert by_name["ml1m"].objective.loss == "ce"
    assert by_name["gsasrec"].objective.loss == "gbce"
    assert by_name["gsasrec"].objective.gbce_t == 0.75


def test_a_missing_config_file_lists_the_builtin_recipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot read config file configs/ml1m\.yaml") as error:
        load_config("configs/ml1m.yaml")  # where the recipes were before they were packaged
    assert "built-in recipe (--config NAME: demo, gsasrec, ml1m)" in str(error.value)


def test_a_path_and_a_recipe_name_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("model: {dim: 16}\n")
    assert load_config("demo.yaml").model.dim == 16  # a path: the file
    assert load_config("demo").model.dim == 64  # a name: the built-in recipe
