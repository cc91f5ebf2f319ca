"""Every rejection reason: a rejected event with a machine-readable code, the book unchanged."""

from __future__ import annotations

import math

import pytest

from actors.core.commands import AmendOrder, CancelOrder
from actors.core.engine import ShardEngine
from tests.unit.core_builders import buy, sell


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (sell("x", "A", 0, 7000, 5), "INVALID_QUANTITY"),
        (sell("x", "A", -10, 7000, 5), "INVALID_QUANTITY"),
        (sell("x", "A", 10**12, 7000, 5), "INVALID_QUANTITY"),
        (sell("x", "A", 1.5, 7000, 5), "INVALID_QUANTITY"),  # type: ignore[arg-type]
        (sell("x", "A", True, 7000, 5), "INVALID_QUANTITY"),
        (sell("x", "A", 100, 0, 5), "INVALID_PRICE"),
        (sell("x", "A", 100, math.nan, 5), "INVALID_PRICE"),  # type: ignore[arg-type]
        (sell("x", "A", 100, 7000, -1), "INVALID_TIMESTAMP"),
        (sell("x", "", 100, 7000, 5), "INVALID_PARTY"),
        (sell("", "A", 100, 7000, 5), "INVALID_CLIENT_ORDER_ID"),
        (sell("x", "A", 100, 7000, 5, loc=(math.nan, 70.0)), "INVALID_LOCATION"),
        (sell("x", "A", 100, 7000, 5, loc=(95.0, 70.0)), "INVALID_LOCATION"),
        (sell("x", "A", 100, 7000, 5, quality={"colour": 1.0}), "UNKNOWN_QUALITY_PARAMETER"),
        (sell("x", "A", 100, 7000, 5, quality={"micronaire": math.inf}), "INVALID_QUALITY"),
        (sell("x", "A", 100, 7000, 5, quality={"micronaire": 99.0}), "INVALID_QUALITY"),
        (buy("x", "A", 100, 7000, 5, quality_ranges={"micronaire": (5.0, 4.0)}), "INVALID_QUALITY"),
        (buy("x", "A", 100, 7000, 5, max_distance_km=-1.0), "INVALID_DISTANCE"),
        (sell("x", "A", 100, 7000, 5, visibility="SECRET"), "INVALID_VISIBILITY"),
        (sell("x", "A", 100, 7000, 5, min_order_kg=101), "INVALID_MIN_QUANTITY"),
        (sell("x", "A", 100, 7000, 5, valid_until=5), "INVALID_VALID_UNTIL"),
        (sell("x", "A", 100, 7000, 5, intent="NEGOTIATE"), "INVALID_INTENT"),
        (buy("x", "A", 100, 7000, 5, intent="HAGGLE"), "INVALID_INTENT"),
        (sell("x", "A", 100, 7000, 5, profile="fastest"), "INVALID_PROFILE"),
    ],
)
def test_invalid_place_is_rejected_with_reason(cmd: object, reason: str) -> None:
    e = ShardEngine("IN-GJ", "cotton")
    e.execute([sell("ok", "Z", 100, 7000, 1)])
    before = e.snapshot()
    res = e.execute([cmd])
    assert res.results[0]["status"] == "REJECTED"
    assert res.results[0]["reason"] == reason
    assert [ev.type for ev in res.events] == ["ORDER_REJECTED"]
    assert res.events[0].payload.reason == reason
    after = e.snapshot()
    assert after["orders"] == before["orders"]


def test_unknown_commodity_and_wrong_shard() -> None:
    e = ShardEngine("IN-GJ", "cotton")
    bad = sell("x", "A", 100, 7000, 5)
    bad.commodity = "unobtainium"
    assert e.execute([bad]).results[0]["reason"] == "UNKNOWN_COMMODITY"
    other = sell("y", "A", 100, 7000, 5)
    other.region = "IN-MH"
    assert e.execute([other]).results[0]["reason"] == "WRONG_SHARD"
    soy = sell("z", "A", 100, 7000, 5)
    soy.commodity = "soyabean"
    assert e.execute([soy]).results[0]["reason"] == "WRONG_SHARD"


def test_garbage_commands_never_raise() -> None:
    e = ShardEngine("IN-GJ", "cotton")
    weird = sell("x", "A", 100, 7000, 5)
    weird.quality = ["not", "a", "dict"]  # type: ignore[assignment]
    res = e.execute([None, 42, "place", weird, CancelOrder(5, ["A"], "O-1"), AmendOrder(5, "A", None)])  # type: ignore[arg-type]
    assert [r["status"] for r in res.results] == ["REJECTED"] * 6
    assert [ev.seq for ev in res.events] == list(range(1, 7))
    assert e.stats()["book_size"] == 0


def test_amend_without_changes_is_rejected() -> None:
    e = ShardEngine("IN-GJ", "cotton")
    e.execute([sell("s", "A", 100, 7000, 1)])
    assert e.execute([AmendOrder(2, "A", "O-IN-GJ.cotton-1")]).results[0]["reason"] == "INVALID_AMEND"
    assert (
        e.execute([AmendOrder(2, "A", "O-IN-GJ.cotton-1", price=-3)]).results[0]["reason"] == "INVALID_PRICE"
    )
