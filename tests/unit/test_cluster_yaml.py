"""cluster.yaml passes Ray's own cluster-config schema validation and has the node types operators need."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_ray_schema_validation(config: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(copy.deepcopy(config))  # as written
    validate_config(prepare_config(copy.deepcopy(config)))  # as `ray up` fills it out


def test_schema_rejects_a_broken_config(config: dict[str, Any]) -> None:
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    bad = copy.deepcopy(config)
    bad["available_node_types"]["matching"]["min_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(bad)


def test_node_types_and_custom_resources(config: dict[str, Any]) -> None:
    types = config["available_node_types"]
    assert config["head_node_type"] == "head"
    assert {"head", "matching", "risk", "training"} <= set(types)
    assert types["matching"]["resources"].get("tradedesk_matching", 0) > 0
    assert types["risk"]["resources"].get("tradedesk_risk", 0) > 0
    assert types["training"]["min_workers"] == 0
    assert types["training"]["resources"].get("tradedesk_training", 0) > 0


def test_setup_installs_project_and_head_uses_gcs_fault_tolerance(config: dict[str, Any]) -> None:
    assert any("pip install" in c and "tradedesk" in c for c in config["setup_commands"])
    head = " ".join(config["head_start_ray_commands"])
    assert "RAY_REDIS_ADDRESS=" in head and "ray start --head" in head
    assert "tradedesk serve" in head and "--host 127.0.0.1" in head
    text = CLUSTER_YAML.read_text().lower()
    assert "password" not in text and "secret_access_key" not in text
