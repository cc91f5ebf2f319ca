"""Rebalancing plans by measured commands/s (actors/rebalance.py) and shard host names
(actors/placement.py): pure decisions, no Ray."""

from __future__ import annotations

from actors.placement import host_generation, host_name
from actors.rebalance import plan_moves
from gateway.routes_cluster import node_type


def test_a_joined_node_takes_the_shard_that_halves_the_gap() -> None:
    rates = {"a": 300.0, "b": 290.0, "c": 0.0, "d": 0.0, "e": 10.0}
    where = dict.fromkeys(rates, "n1")
    # gap 600 -> the shard nearest 300 moves; the idle ones never do (a count-based plan would)
    assert plan_moves(rates, where, ["n1", "n2"]) == [("a", "n1", "n2")]


def test_load_not_count_decides() -> None:
    # n1 runs one hot shard, n2 four cool ones: balanced enough by load, so nothing moves
    rates = {"hot": 100.0, "c1": 25.0, "c2": 25.0, "c3": 25.0, "c4": 20.0}
    where = {"hot": "n1", "c1": "n2", "c2": "n2", "c3": "n2", "c4": "n2"}
    assert plan_moves(rates, where, ["n1", "n2"]) == []
    # the same shards all on n2 beside an empty n1: the hot one alone crosses
    assert plan_moves(rates, dict.fromkeys(rates, "n2"), ["n1", "n2"]) == [("hot", "n2", "n1")]


def test_several_moves_until_within_the_gap_and_nothing_when_idle() -> None:
    rates = {f"s{i}": 50.0 for i in range(6)}
    moves = plan_moves(rates, dict.fromkeys(rates, "n1"), ["n1", "n2", "n3"])
    dest = [m[2] for m in moves]
    assert len(moves) == 4 and dest.count("n2") == 2 and dest.count("n3") == 2
    assert plan_moves(dict.fromkeys(rates, 0.0), dict.fromkeys(rates, "n1"), ["n1", "n2"]) == []
    assert plan_moves(rates, dict.fromkeys(rates, "n1"), ["n1"]) == []
    assert len(plan_moves(rates, dict.fromkeys(rates, "n1"), ["n1", "n2", "n3"], max_moves=1)) == 1


def test_host_names_and_generations() -> None:
    assert host_name("IN-GJ.cotton", 0) == "shard:IN-GJ.cotton"
    assert host_name("IN-GJ.cotton", 3) == "shard:IN-GJ.cotton@3"
    assert host_generation("shard:IN-GJ.cotton@3", "IN-GJ.cotton") == 3
    assert host_generation("shard:IN-GJ.cotton", "IN-GJ.cotton") == 0
    assert host_generation("shard:IN-GJ.cotton@x", "IN-GJ.cotton") is None
    assert host_generation("shard:IN-MH.cotton@2", "IN-GJ.cotton") is None


def test_node_types_from_resources() -> None:
    assert node_type({"CPU": 8, "tradedesk_head": 1}) == "head"
    assert node_type({"CPU": 8, "tradedesk_matching": 100}) == "matching"
    assert node_type({"CPU": 4, "tradedesk_risk": 100}) == "risk"
    assert node_type({"CPU": 16, "tradedesk_training": 1}) == "training"
    assert node_type({"CPU": 2}) == "other"
