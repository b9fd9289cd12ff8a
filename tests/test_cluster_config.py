"""cluster.yaml validates against Ray's own cluster-config schema, as `ray up` checks it."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"


@pytest.fixture()
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_ray_validation(config: dict) -> None:
    validate_config(prepare_config(copy.deepcopy(config)))


def test_every_node_has_an_explicit_instance_profile(config: dict) -> None:
    for name, node in config["available_node_types"].items():
        assert "IamInstanceProfile" in node["node_config"], name
    assert config["available_node_types"]["head"]["resources"] == {"GPU": 0}
    assert config["available_node_types"]["gpu"]["min_workers"] == 0


def test_validation_rejects_an_unknown_key(config: dict) -> None:
    config["available_node_types"]["gpu"]["max_wrkers"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_wrkers"):
        validate_config(prepare_config(config))


def test_setup_pins_the_versions_negrec_was_tested_with(config: dict) -> None:
    commands = " ".join(config["setup_commands"])
    assert "torch==2.13.0" in commands and "ray[default,train,tune,data]==2.60.0" in commands
