"""Shard placement and policy: shards ask for the matching nodes' custom resource only where the
cluster has it (cluster.yaml); an order opens a shard only where its commodity is traded (the
shipped Agmarknet exports), within a cap per node; idle shards stop after the timeout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actors.shard_actor import MATCHING_RESOURCE, matching_placement


def test_shards_pin_to_matching_nodes_when_present() -> None:
    assert matching_placement({"CPU": 8.0, MATCHING_RESOURCE: 200.0}) == {"resources": {MATCHING_RESOURCE: 1}}
    assert matching_placement({"CPU": 2.0}) == {}


def test_cluster_yaml_offers_the_matching_resource() -> None:
    cfg = yaml.safe_load((Path(__file__).parents[2] / "cluster.yaml").read_text())
    offered = [t.get("resources", {}).get(MATCHING_RESOURCE, 0) for t in cfg["available_node_types"].values()]
    assert max(offered) > 0


# -- shard policy (actors/shard_policy.py) --------------------------------------------------------


def test_traded_regions_are_the_states_of_the_shipped_agmarknet_exports() -> None:
    from actors.core.commodities import COMMODITIES
    from actors.core.regions import region_for_state
    from persistence.agmarknet import default_agmarknet_paths, read_file

    seen: dict[str, set[str]] = {}
    for path in default_agmarknet_paths():
        rows, _ = read_file(path)
        for row in rows:
            region = region_for_state(row.state)
            assert region is not None, row.state
            seen.setdefault(row.commodity, set()).add(region)
    assert set(seen) == {"cotton", "soybean", "mustard", "chana"}
    for name, regions in seen.items():
        assert COMMODITIES[name].traded_in == regions, name
    assert COMMODITIES["wheat"].traded_in == frozenset()  # no export shipped: operators add wheat


def test_traded_policy_opens_only_markets_of_the_commodity() -> None:
    from actors.shard_policy import NoMarket, ShardPolicy

    p = ShardPolicy()
    assert p.creation == "traded"
    p.check_new("IN-GJ", "cotton")
    p.check_new("IN-MP", "soyabean")  # Agmarknet spelling
    with pytest.raises(NoMarket, match="no market for soybean in IN-KL; an admin can add it"):
        p.check_new("IN-KL", "soybean")
    with pytest.raises(NoMarket):
        p.check_new("FR-75", "cotton")
    ShardPolicy(creation="any").check_new("FR-75", "cotton")
    with pytest.raises(NoMarket):
        ShardPolicy(creation="operator").check_new("IN-GJ", "cotton")
    with pytest.raises(ValueError):
        ShardPolicy(creation="everything")  # type: ignore[arg-type]


def test_capacity_and_idle_rules() -> None:
    from actors.shard_policy import CapacityReached, ShardPolicy

    p = ShardPolicy(max_shards_per_node=2, idle_timeout_s=60)
    p.check_capacity(3, nodes=2)
    with pytest.raises(CapacityReached, match="shard capacity reached: 4 shards run on 2 node"):
        p.check_capacity(4, nodes=2)
    with pytest.raises(CapacityReached):
        p.check_capacity(2, nodes=0)  # no node seen: counts as one
    assert not p.is_idle(59.9) and p.is_idle(60.0)
    assert not ShardPolicy(idle_timeout_s=0).is_idle(10**9)  # 0 = never stop


def test_settings_carry_the_policy() -> None:
    from actors.settings import Settings
    from actors.shard_policy import ShardPolicy

    s = Settings(
        shard_creation="operator", max_shards_per_node=3, shard_idle_timeout_s=5, shard_idle_check_s=1
    )
    assert ShardPolicy.from_settings(s) == ShardPolicy("operator", 3, 5.0, 1.0)
    assert ShardPolicy.from_settings(Settings()) == ShardPolicy()
