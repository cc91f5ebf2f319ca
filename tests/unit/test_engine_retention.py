"""Bounded state (docs/matching.md, "Retention"): closed orders, old results, dead proposals and
reservations leave memory deterministically from the events; a retry whose key left memory gets
its original result through ``remember_result``; the quick place check never accepts what the
full check rejects."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from actors.core import validation as v
from actors.core.commands import AcceptProposal, CancelOrder, ConfirmReservation, Tick
from actors.core.engine import ShardEngine
from actors.core.place_check import place_ok
from tests.unit.core_builders import buy, oid, sell
from tests.unit.test_engine_properties import (
    _check_conservation,
    _check_replay_and_snapshots,
    _run,
    batching,
    ops_strategy,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, sizes=batching, profile=s.sampled_from(["price_time", "quality"]))
def test_a_tiny_window_keeps_replay_snapshots_and_invariants(
    ops: list[Any], sizes: list[int], profile: str
) -> None:
    engine, events, snaps = _run(ops, sizes, profile, keep=2)
    _check_conservation(engine, events)
    closed = [o for o in engine.orders.values() if not o.is_live and o.status != "OPEN"]
    assert len(closed) <= 2
    again, events2, _ = _run(ops, sizes, profile, keep=2)
    assert [e.to_dict() for e in events2] == [e.to_dict() for e in events]
    _check_replay_and_snapshots(engine, events, snaps, profile, keep=2)


def _churn(e: ShardEngine, n: int, ts: int) -> int:
    """``n`` pairs that fill each other at once (2n closed orders); returns the next ts."""
    for i in range(n):
        e.execute([sell(f"cs{ts}-{i}", "S", 100, 7000, ts), buy(f"cb{ts}-{i}", "B", 100, 7000, ts + 1)])
        ts += 2
    return ts


def test_closed_orders_and_their_results_leave_after_the_window() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time", closed_retention=10)
    e.execute([sell("rest", "R", 500, 7500, 1)])  # stays open throughout
    _churn(e, 500, 10)
    assert e.evicted_any is True
    assert len(e.orders) == 1 + 10
    assert len(e.results) == 1 + 10
    assert e.orders[oid(1)].open_kg == 500
    snap = e.snapshot()
    assert len(snap["orders"]) == 11 and len(snap["results"]) == 11
    assert snap["retention"]["evicted_any"] is True and len(snap["retention"]["closed"]) == 10
    restored = ShardEngine.from_snapshot(snap)
    assert restored.closed_retention == 10 and restored.evicted_any is True
    assert restored.snapshot() == snap


def test_a_retry_after_eviction_returns_the_remembered_original_result() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time", closed_retention=4)
    e.execute([sell("s1", "A", 300, 7000, 1)])
    original = e.execute([buy("b1", "C", 300, 7000, 2)]).results[0]
    assert original["status"] == "ACCEPTED" and original["allocations"][0]["quantity_kg"] == 300
    _churn(e, 10, 10)
    retry = buy("b1", "C", 300, 7000, 99)
    assert ("C", "b1") not in e.results and e.evicted_any
    assert e.result_lookups([retry, Tick(99)]) == [("C", "b1")]
    seq = e.seq
    e.remember_result("C", "b1", original)
    res = e.execute([retry])
    assert res.events == [] and e.seq == seq
    assert res.results[0]["duplicate"] is True
    assert {k: x for k, x in res.results[0].items() if k != "duplicate"} == {
        k: x for k, x in original.items() if k != "duplicate"
    }
    # remembered for one batch only: it is not state
    assert e._remembered == {} and ("C", "b1") not in e.results


def test_orders_a_batch_evicts_are_readable_until_the_next_batch() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time", closed_retention=2)
    cmds: list[Any] = []
    for i in range(20):
        cmds += [sell(f"s{i}", "A", 100, 7000, 10 + i), buy(f"b{i}", "C", 100, 7000, 10 + i)]
    res = e.execute(cmds)
    touched = {
        x
        for e_ in res.events
        if e_.type == "ALLOCATED"
        for x in (e_.payload.buy_order_id, e_.payload.sell_order_id)
    }
    assert len(touched) == 40 and len(e.orders) <= 2
    docs = [e.get_order(oid_) for oid_ in sorted(touched)]
    assert all(d is not None and d["status"] == "FILLED" and d["allocated_kg"] == 100 for d in docs)
    e.execute([Tick(100)])
    assert sum(e.get_order(oid_) is not None for oid_ in touched) <= 2


def test_rejections_leave_the_window_too() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time", closed_retention=3)
    first = e.execute([sell("bad", "A", 0, 7000, 1)]).results[0]
    assert first["reason"] == "INVALID_QUANTITY"
    assert e.execute([sell("bad", "A", 100, 7000, 2)]).results[0]["duplicate"] is True
    _churn(e, 3, 10)
    assert ("A", "bad") not in e.results
    assert e.result_lookups([sell("bad", "A", 100, 7000, 50)]) == [("A", "bad")]


def test_dead_proposals_and_reservations_leave_with_their_orders() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time", closed_retention=2)
    e.execute([sell("s1", "A", 1000, 7000, 1)])
    pid = e.execute([buy("b1", "C", 600, 7000, 2, intent="NEGOTIATE")]).results[0]["proposals"][0][
        "proposal_id"
    ]
    rid = e.execute([AcceptProposal(3, "C", pid)]).results[0]["reservation"]["reservation_id"]
    assert e.execute([ConfirmReservation(4, "A", rid)]).results[0]["status"] == "OK"
    e.execute([CancelOrder(5, "A", oid(1))])  # s1: 600 allocated, 400 cancelled -> closed; b1 filled
    assert set(e.proposals) == {pid} and set(e.reservations) == {rid}
    _churn(e, 2, 10)
    assert e.proposals == {} and e.reservations == {} and e._links == {}
    assert e.execute([AcceptProposal(20, "C", pid)]).results[0]["reason"] == "UNKNOWN_PROPOSAL"


def test_near_duplicate_keys_are_swept_behind_the_clock() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    window = e.spec.near_duplicate_window_ms
    for i in range(3000):  # every order a new key, one per 10 minutes: all but the last few are old
        e.execute([sell(f"n{i}", "A", 100 + i, 9000, 1_000 + i * window * 2)])
    assert len(e.near_dups) < 1100
    recent = e.execute([sell("again", "A", 100 + 2999, 9000, 1_000 + 2999 * window * 2 + 1)]).results[0]
    assert recent["near_duplicate_of"] == oid(3000)


def test_expiry_heap_is_compacted_after_eviction() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time", closed_retention=2)
    for i in range(1500):
        e.execute([sell(f"x{i}", "A", 100, 7000, 10 + 2 * i, valid_until=10**12)])
        e.execute([CancelOrder(11 + 2 * i, "A", e.results[("A", f"x{i}")]["order_id"])])
    assert len(e._expiries) <= 2 * len(e.orders) + 1024


def test_window_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        ShardEngine("IN-GJ", "cotton", closed_retention=1)


_BAD_CHANGES: list[dict[str, Any]] = [
    {"quantity_kg": 0},
    {"quantity_kg": 1.5},
    {"quantity_kg": True},
    {"price": math.nan},
    {"price": 10**9},
    {"ts": -1},
    {"party_id": ""},
    {"party_id": "a\x00b"},
    {"party_id": "x" * 129},
    {"client_order_id": "\u0065\u0301"},  # not NFC
    {"lat": math.nan},
    {"lon": 200.0},
    {"lat": True},
    {"side": "HOLD"},
    {"commodity": "Kapas"},  # an alias: valid, but only the full check knows it
    {"region": "IN-MH"},
    {"visibility": "SECRET"},
    {"allow_list": ("",)},
    {"linked_parties": ["B"]},  # valid: linked parties take the full check
    {"min_order_kg": 10**6},
    {"allow_partial": 1},
    {"valid_until": 1},
    {"intent": "HAGGLE"},
    {"profile": "fastest"},
    {"city": "x" * 201},
    {"district": "tab\there"},
    {"max_distance_km": math.inf},
    {"quality": {"colour": 1.0}},
    {"quality": {"micronaire": 99.0}},
    {"quality": ["not", "a", "dict"]},
    {"quality_ranges": {"micronaire": (4.0, 5.0)}},  # a seller states values, not ranges
    {"quality": {"micronaire": math.nan}},
    {"quality": {"micronaire": "4.2"}},
    {"quality": {1: 4.2}},
]
_BAD_BUY_CHANGES: list[dict[str, Any]] = [
    {"quality_ranges": {"micronaire": (5.0, 4.0)}},
    {"quality_ranges": {"micronaire": (4.0, math.inf)}},
    {"quality_ranges": {"micronaire": (math.nan, 5.0)}},
    {"quality_ranges": {"micronaire": (4.0, 4.5, 5.0)}},
    {"quality_ranges": {"colour": (1.0, 2.0)}},
    {"quality_ranges": {"micronaire": "4-5"}},
    {"quality_target": {"staple_length_mm": 28.0}},  # a target needs its range
    {"quality_ranges": {"micronaire": (4.0, 5.0)}, "quality_target": {"micronaire": 5.5}},
    {"quality_ranges": {"micronaire": (4.0, 5.0)}, "quality": {"micronaire": 4.5}},
    {"intent": "HAGGLE"},
]


@pytest.mark.parametrize("change", _BAD_CHANGES)
def test_quick_place_check_never_accepts_what_the_full_check_refuses(change: dict[str, Any]) -> None:
    e = ShardEngine("IN-GJ", "cotton")
    good = sell("ok", "A", 100, 7000, 5, quality={"micronaire": 4.2})
    assert place_ok(good, e.spec, e.region) and v.check_place(good, e.spec, e.region, e.commodity) is None
    cmd = dataclasses.replace(good, **change)
    full = v.check_place(cmd, e._spec_of(cmd.commodity), e.region, e.commodity)
    assert not place_ok(cmd, e.spec, e.region)
    if change in ({"commodity": "Kapas"}, {"linked_parties": ["B"]}):
        assert full is None  # the full check still accepts it
    else:
        assert full is not None


@pytest.mark.parametrize("change", _BAD_BUY_CHANGES)
def test_quick_check_of_a_requirement_never_accepts_what_check_place_refuses(
    change: dict[str, Any],
) -> None:
    e = ShardEngine("IN-GJ", "cotton")
    good = buy("ok", "A", 100, 7000, 5, quality_ranges={"micronaire": (4.0, 5.0)}, intent="NEGOTIATE")
    assert place_ok(good, e.spec, e.region)
    cmd = dataclasses.replace(good, **change)
    assert not place_ok(cmd, e.spec, e.region)
    assert v.check_place(cmd, e.spec, e.region, e.commodity) is not None
