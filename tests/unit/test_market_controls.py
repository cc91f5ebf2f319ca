"""Market controls in the core (docs/matching.md, "Market controls"): price bands around the market
reference, operator halt/resume, the circuit breaker (trigger and deterministic auto-resume) and the
per-party kill switch, each asserted as the exact events recorded, plus replay and snapshot."""

from __future__ import annotations

from typing import Any

from actors.core import commands as c
from actors.core import events as ev
from actors.core.engine import ShardEngine
from actors.core.events import Event
from persistence.event_store import decode_snapshot, encode_snapshot
from tests.unit.core_builders import buy, oid, sell

REF = c.SetMarketReference(1, 7000, "agmarknet", "2026-01-30")
MIN = 60_000


def engine(*cmds: Any) -> ShardEngine:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    e.execute(list(cmds))
    return e


def replayed(e: ShardEngine, events: list[Event]) -> ShardEngine:
    r = ShardEngine("IN-GJ", "cotton", profile="price_time")
    for x in events:
        r.apply(Event.from_dict(x.to_dict()))
    return r


def kinds(events: list[Event]) -> list[tuple[str, Any]]:
    return [(x.type, x.payload) for x in events]


# ---- price bands


def test_default_band_is_twenty_percent_around_the_reference_with_the_band_in_the_message() -> None:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    r = e.execute([REF])
    assert kinds(r.events) == [(ev.MARKET_REFERENCE, ev.MarketReference(7000, "agmarknet", "2026-01-30"))]
    assert e.market_status()["price_band"] == {
        "mode": "default",
        "band_bp": 2000,
        "low_paise_per_kg": 5600,
        "high_paise_per_kg": 8400,
        "reference_paise_per_kg": 7000,
        "reference_source": "agmarknet",
        "reference_as_of": "2026-01-30",
    }
    r = e.execute(
        [sell("hi", "A", 1000, 8401, 2), sell("edge", "A", 1000, 8400, 3), buy("lo", "B", 100, 5599, 4)]
    )
    assert [x.type for x in r.events] == [ev.ORDER_REJECTED, ev.ORDER_ACCEPTED, ev.ORDER_REJECTED]
    assert r.events[0].payload == ev.OrderRejected(
        "A",
        "hi",
        "PRICE_OUT_OF_BAND",
        "price 8,401 paise/kg (Rs 8,401/quintal) is outside the price band 5,600..8,400 paise/kg "
        "(Rs/quintal): +/-20% around the reference 7,000 paise/kg (Rs 7,000/quintal) (agmarknet, 2026-01-30)",
    )
    assert r.events[2].payload.reason == "PRICE_OUT_OF_BAND"
    assert [x["reason"] for x in r.results] == ["PRICE_OUT_OF_BAND", None, "PRICE_OUT_OF_BAND"]
    # the same reference again records nothing
    assert e.execute([c.SetMarketReference(5, 7000, "agmarknet", "2026-01-30")]).events == []
    # an amend to a price outside the band is refused; inside it is taken
    r = e.execute([c.AmendOrder(6, "A", oid(3), price=9000), c.AmendOrder(7, "A", oid(3), price=8000)])
    assert r.events[0].type == ev.COMMAND_REJECTED
    assert (r.events[0].payload.reason, r.events[1].type) == ("PRICE_OUT_OF_BAND", ev.AMENDED)


def test_operator_band_overrides_percent_range_off_and_back_to_default() -> None:
    e = engine(REF)
    r = e.execute([c.SetPriceBand(2, "ops", "percent", 1000)])
    assert kinds(r.events) == [(ev.PRICE_BAND_SET, ev.PriceBandSet("ops", "percent", 1000, None, None))]
    assert (e.band, r.results[0]["changed"]) == ((6300, 7700), True)
    r = e.execute([sell("a", "A", 100, 7701, 3), sell("b", "A", 100, 7700, 4)])
    assert [x["reason"] for x in r.results] == ["PRICE_OUT_OF_BAND", None]
    assert "+/-10% around the reference" in r.results[0]["detail"]
    e.execute([c.SetPriceBand(5, "ops", "range", min_price=5000, max_price=9000)])
    assert e.band == (5000, 9000)
    r = e.execute([sell("c", "A", 100, 9001, 6)])
    assert r.results[0]["detail"].endswith(
        "outside the price band 5,000..9,000 paise/kg (Rs/quintal): set by an operator"
    )
    e.execute([c.SetPriceBand(7, "ops", "off")])
    assert e.band is None and e.execute([sell("d", "A", 100, 20000, 8)]).results[0]["status"] == "ACCEPTED"
    e.execute([c.SetPriceBand(9, "ops", "default")])
    assert e.band == (5600, 8400)
    # the same rule again records nothing
    assert e.execute([c.SetPriceBand(10, "ops", "default")]).events == []


def test_bad_band_commands_are_rejected_and_change_nothing() -> None:
    e = engine(REF)
    bad = [
        c.SetPriceBand(2, "ops", "wide"),
        c.SetPriceBand(3, "ops", "percent"),
        c.SetPriceBand(4, "ops", "percent", 10_000),
        c.SetPriceBand(5, "ops", "range", min_price=9000, max_price=8000),
        c.SetPriceBand(6, "ops", "off", band_bp=100),
        c.SetPriceBand(7, "", "default"),
    ]
    r = e.execute(bad)
    assert [x.payload.reason for x in r.events] == ["INVALID_BAND"] * 5 + ["INVALID_PARTY"]
    assert [x.payload.command for x in r.events] == ["price_band"] * 6
    assert e.band == (5600, 8400) and e.band_rule == ("default", None, None, None)
    r = e.execute([c.SetMarketReference(8, 0, "agmarknet"), c.SetMarketReference(9, 7000, "")])
    assert [x.payload.reason for x in r.events] == ["INVALID_REFERENCE", "INVALID_REFERENCE"]


def test_no_reference_means_no_percentage_band_but_an_explicit_range_applies() -> None:
    e = engine()
    assert e.band is None
    assert e.execute([sell("far", "A", 100, 70_000, 1)]).results[0]["status"] == "ACCEPTED"
    e.execute([c.SetPriceBand(2, "ops", "percent", 500)])
    assert e.band is None  # still no reference: a percentage gives no band
    e.execute([c.SetPriceBand(3, "ops", "range", min_price=6000, max_price=8000)])
    assert e.execute([sell("x", "A", 100, 8001, 4)]).results[0]["reason"] == "PRICE_OUT_OF_BAND"


# ---- operator halt / resume


def test_halt_rejects_new_orders_keeps_the_book_and_takes_cancels_then_resume() -> None:
    e = engine(
        sell("s1", "A", 1000, 7000, 1),
        sell("s2", "A", 1000, 7100, 2),
        buy("n1", "B", 300, 7200, 3, intent="NEGOTIATE"),  # PROPOSED P-...-4 against s1
    )
    book_before = e.depth()
    r = e.execute([c.HaltShard(10, "ops", "fat finger on the screen")])
    assert kinds(r.events) == [
        (ev.SHARD_HALTED, ev.ShardHalted("OPERATOR", "fat finger on the screen", "ops", None, None))
    ]
    assert r.results[0]["market"]["halted"] is True and r.results[0]["market"]["halted_until"] is None
    r = e.execute(
        [
            buy("b1", "B", 500, 7200, 11),
            c.AmendOrder(12, "A", oid(2), price=6900),  # could trade: refused
            c.AmendOrder(13, "A", oid(2), quantity_kg=2000),  # more quantity: refused
            c.AcceptProposal(14, "B", "P-IN-GJ.cotton-4"),
            c.AmendOrder(15, "A", oid(2), quantity_kg=600),  # quantity down: taken
            c.CancelOrder(16, "A", oid(1)),  # cancel: taken
            c.HaltShard(17, "ops", "again"),  # already halted: nothing recorded
        ]
    )
    assert [(x.type, getattr(x.payload, "reason", None)) for x in r.events] == [
        (ev.ORDER_REJECTED, "SHARD_HALTED"),
        (ev.COMMAND_REJECTED, "SHARD_HALTED"),
        (ev.COMMAND_REJECTED, "SHARD_HALTED"),
        (ev.COMMAND_REJECTED, "SHARD_HALTED"),
        (ev.AMENDED, None),
        (ev.CANCELLED, None),
    ]
    assert r.events[0].payload.detail == (
        "shard IN-GJ.cotton is halted (OPERATOR: fat finger on the screen) until an operator resumes it"
    )
    assert r.results[-1] == {**r.results[-1], "status": "OK", "changed": False}
    assert e.orders[oid(2)].open_kg == 600 and e.orders[oid(2)].status == "OPEN"
    assert book_before["asks"][1][0] == 7100 and e.depth()["asks"] == [[7100, 600, 1]]
    r = e.execute([c.ResumeShard(20, "ops"), c.ResumeShard(21, "ops"), buy("b2", "B", 600, 7200, 22)])
    assert kinds(r.events)[0] == (ev.SHARD_RESUMED, ev.ShardResumed("OPERATOR", "ops"))
    assert r.results[1]["changed"] is False
    assert [x.type for x in r.events[1:]] == [ev.ORDER_ACCEPTED, ev.ALLOCATED]


# ---- circuit breaker


def _breaker_session() -> tuple[ShardEngine, list[Event], list[Any]]:
    """Reference 7000; asks 7750 and 7800 rest; a bid for 1000 kg lifts 7750 (10.71 % above the
    reference: trips) and does not reach 7800."""
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    log: list[Event] = []
    results: list[Any] = []
    for batch in (
        [REF, sell("s1", "A", 500, 7750, 2), sell("s2", "A", 500, 7800, 3)],
        [buy("b1", "B", 1000, 8000, 4)],
    ):
        r = e.execute(batch)
        log += r.events
        results += r.results
    return e, log, results


def test_circuit_breaker_trips_on_a_trade_far_from_the_reference_with_its_trigger() -> None:
    e, log, results = _breaker_session()
    trip = log[-1]
    assert [x.type for x in log[-3:]] == [ev.ORDER_ACCEPTED, ev.ALLOCATED, ev.SHARD_HALTED]
    assert log[-2].payload.price == 7750 and log[-2].payload.quantity_kg == 500
    assert (trip.seq, trip.ts) == (6, 4)
    assert trip.payload == ev.ShardHalted(
        kind="CIRCUIT_BREAKER",
        reason="trade A-IN-GJ.cotton-5 at 7,750 paise/kg (Rs 7,750/quintal) moved 10.71% from the market "
        "reference 7,000 paise/kg (Rs 7,000/quintal) within 15 min (limit 10%)",
        operator_id=None,
        halted_until=4 + 15 * MIN,
        trigger=ev.BreakerTrigger("A-IN-GJ.cotton-5", 7750, 7000, "market", 1071, 1000, 15 * MIN),
    )
    # the taker's second fill was not made: 500 kg of it rests, the 7800 ask is untouched
    assert e.orders[oid(4)].open_kg == 500 and e.orders[oid(3)].open_kg == 500
    assert results[-1]["allocations"][0]["price"] == 7750 and len(results[-1]["allocations"]) == 1
    assert e.market_status()["trigger"]["allocation_id"] == "A-IN-GJ.cotton-5"


def test_breaker_switched_off_by_the_host_makes_no_halt_and_both_fills() -> None:
    """``breaker_on = False`` (settings ``circuit_breaker``): the same session trades both asks."""
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    e.breaker_on = False
    e.execute([REF, sell("s1", "A", 500, 7750, 2), sell("s2", "A", 500, 7800, 3)])
    r = e.execute([buy("b1", "B", 1000, 8000, 4)])
    assert [x.type for x in r.events] == [ev.ORDER_ACCEPTED, ev.ALLOCATED, ev.ALLOCATED]
    assert [(a["price"], a["quantity_kg"]) for a in r.results[0]["allocations"]] == [(7750, 500), (7800, 500)]
    assert not e.halted


def test_circuit_breaker_resumes_at_the_first_command_at_or_after_halted_until() -> None:
    e, log, _ = _breaker_session()
    until = 4 + 15 * MIN
    r = e.execute([sell("early", "C", 100, 7000, until - 1), c.CancelOrder(until - 1, "A", oid(3))])
    log += r.events
    assert [(x.type, getattr(x.payload, "reason", None)) for x in r.events] == [
        (ev.ORDER_REJECTED, "SHARD_HALTED"),
        (ev.CANCELLED, None),
    ]
    assert f"until {until} (epoch ms)" in r.events[0].payload.detail
    r = e.execute([c.Tick(until + 5_000), sell("late", "C", 100, 7000, until + 6_000)])
    log += r.events
    assert replayed(e, log).snapshot() == e.snapshot()
    assert (r.events[0].type, r.events[0].ts, r.events[0].payload) == (
        ev.SHARD_RESUMED,
        until,
        ev.ShardResumed("AUTO", None),
    )
    assert r.results[1]["status"] == "ACCEPTED" and not e.halted


def test_breaker_compares_with_the_trade_price_one_window_earlier() -> None:
    """After trading, the anchor is the last trade at or before ts - 15 min, not the reference."""
    e = engine(REF, sell("s1", "A", 100, 7000, 2), buy("b1", "B", 100, 7000, 3))
    t = 3 + 20 * MIN
    # 7600 is 8.6 % above the trade 20 min ago: no halt
    r = e.execute([sell("s2", "A", 100, 7600, t), buy("b2", "B", 100, 7600, t + 1)])
    assert [x.type for x in r.events] == [ev.ORDER_ACCEPTED, ev.ORDER_ACCEPTED, ev.ALLOCATED]
    # 8000 at t + 16 min: the trade 15 min earlier is 7600 (5.3 %): no halt ...
    t2 = t + 16 * MIN
    r = e.execute([sell("s3", "A", 100, 8000, t2), buy("b3", "B", 100, 8000, t2 + 1)])
    assert r.events[-1].type == ev.ALLOCATED
    # ... and 8400 two minutes later is 10.5 % above 7600, still the price 15 min before: halt
    t3 = t2 + 2 * MIN
    r = e.execute([sell("s4", "A", 100, 8400, t3), buy("b4", "B", 100, 8400, t3 + 1)])
    assert r.events[-1].type == ev.SHARD_HALTED
    assert r.events[-1].payload.trigger == ev.BreakerTrigger(
        r.events[-2].payload.allocation_id, 8400, 7600, "trade", 1052, 1000, 15 * MIN
    )


# ---- kill switch


def test_kill_switch_cancels_every_open_order_of_the_party_and_nothing_else() -> None:
    e = engine(
        sell("a1", "A", 1000, 7000, 1),
        sell("a2", "A", 400, 7100, 2),
        sell("c1", "C", 300, 7000, 3),
        buy("b1", "B", 600, 7000, 4),  # fills 600 of a1 (time priority before c1)
        sell("a3", "A", 200, 6900, 5),
        buy("b2", "B", 200, 7000, 6),  # fills a3 completely
    )
    r = e.execute([c.KillSwitch(10, "ops", "A")])
    assert kinds(r.events) == [
        (ev.KILL_SWITCH, ev.KillSwitchPulled("A", "ops", 2, 800)),
        (ev.CANCELLED, ev.Cancelled(oid(1), 400)),
        (ev.CANCELLED, ev.Cancelled(oid(2), 400)),
    ]
    assert r.results[0] == {
        "command": "kill_switch",
        "status": "OK",
        "party_id": "A",
        "cancelled_orders": 2,
        "cancelled_kg": 800,
        "order_ids": [oid(1), oid(2)],
        "seqs": [r.events[0].seq, r.events[1].seq, r.events[2].seq],
    }
    assert e.orders[oid(3)].open_kg == 300 and e.depth()["asks"] == [[7000, 300, 1]]
    assert e.orders[oid(1)].allocated_kg == 600 and e.orders[oid(1)].status == "CANCELLED"
    # again: nothing left to cancel, the operator's action is still on the record
    r = e.execute([c.KillSwitch(11, "ops", "A"), c.KillSwitch(12, "ops", "")])
    assert kinds(r.events)[0] == (ev.KILL_SWITCH, ev.KillSwitchPulled("A", "ops", 0, 0))
    assert r.events[1].payload.reason == "INVALID_PARTY"


# ---- replay and snapshots


def test_replay_and_snapshot_restore_the_market_state_and_behave_the_same() -> None:
    e, log, _ = _breaker_session()
    log += e.execute([c.SetPriceBand(10, "ops", "percent", 1500), c.KillSwitch(11, "ops", "A")]).events
    r = replayed(e, log)
    assert r.snapshot() == e.snapshot()
    assert r.snapshot()["market"]["halt"]["kind"] == "CIRCUIT_BREAKER"
    restored = ShardEngine.from_snapshot(decode_snapshot(encode_snapshot(e.snapshot())))  # as stored
    assert restored.snapshot() == e.snapshot()
    after = [
        c.Tick(4 + 15 * MIN),
        sell("x", "C", 100, 8100, 4 + 15 * MIN + 1),
        sell("y", "C", 100, 8000, 4 + 16 * MIN),
    ]
    assert [x.to_dict() for x in restored.execute(after).events] == [
        x.to_dict() for x in e.execute(after).events
    ]
    assert restored.snapshot() == e.snapshot()
    # a snapshot written before market controls (no "market" key) restores with no controls
    old = e.snapshot()
    del old["market"]
    plain = ShardEngine.from_snapshot(old)
    assert (plain.halted, plain.band, plain.reference) == (False, None, None)
