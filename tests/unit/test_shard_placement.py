"""Shards ask for the matching nodes' custom resource only where the cluster has it (cluster.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml

from actors.shard_actor import MATCHING_RESOURCE, matching_placement


def test_shards_pin_to_matching_nodes_when_present() -> None:
    assert matching_placement({"CPU": 8.0, MATCHING_RESOURCE: 200.0}) == {"resources": {MATCHING_RESOURCE: 1}}
    assert matching_placement({"CPU": 2.0}) == {}


def test_cluster_yaml_offers_the_matching_resource() -> None:
    cfg = yaml.safe_load((Path(__file__).parents[2] / "cluster.yaml").read_text())
    offered = [t.get("resources", {}).get(MATCHING_RESOURCE, 0) for t in cfg["available_node_types"].values()]
    assert max(offered) > 0
