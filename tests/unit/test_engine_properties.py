"""Property tests over random command sequences for the contract's invariants (ARCHITECTURE.md):
no over-allocation, no hard-filter violation, quantity conservation, determinism, and
snapshot + later events == apply(all events) == live state. The sequences include the market
controls (docs/matching.md): references that put trades inside or beyond the circuit breaker's
10 %, operator bands, halts, resumes, jumps past a breaker halt's end and kill switches."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from actors.core.commands import (
    AcceptProposal,
    AmendOrder,
    CancelOrder,
    ConfirmReservation,
    HaltShard,
    KillSwitch,
    RejectProposal,
    ReleaseReservation,
    ResumeShard,
    SetMarketReference,
    SetPriceBand,
    Tick,
)
from actors.core.engine import ShardEngine
from actors.core.events import Event
from actors.core.geo import haversine_km
from actors.core.scoring import distance_limit, parties_may_trade, quality_within
from actors.core.state import CLOSED_RETENTION
from tests.unit.core_builders import buy, sell

PARTIES = ["A", "B", "C", "D"]
LOCS = [(22.30, 70.80), (23.02, 72.57), (21.17, 72.83)]

place_op = s.tuples(
    s.just("place"),
    s.sampled_from(["BUY", "SELL"]),
    s.sampled_from(PARTIES),
    s.integers(1, 40).map(lambda x: x * 100),  # kg
    s.integers(6900, 7100).map(lambda p: p - p % 25),  # paise/kg
    s.integers(0, 2),  # location
    s.sampled_from([None, (27.0, 29.0), (28.0, 31.0)]),  # staple range (buy) / value pick (sell)
    s.sampled_from([None, 150.0, 400.0]),
    s.sampled_from([True, True, True, False]),  # allow_partial
    s.sampled_from([0, 0, 500]),  # min order kg
    s.sampled_from(["DIRECT_BUY", "DIRECT_BUY", "NEGOTIATE"]),
    s.sampled_from([None, None, None, 50, 4000]),  # valid for ms
    s.sampled_from([(), (), (), ("B",)]),  # linked parties
    s.sampled_from([False, False, False, True]),  # private with allow-list [C]
)
ref_op = s.tuples(
    s.sampled_from(
        ["cancel", "amend_qty", "amend_price", "accept", "reject", "confirm", "release", "tick"]
        + ["halt", "resume", "resume", "band", "kill", "reference", "reference", "later", "later"]
    ),
    s.integers(0, 10_000),
    s.integers(-300, 300),
)
ops_strategy = s.lists(s.one_of(place_op, place_op, place_op, ref_op), min_size=8, max_size=60)
batching = s.lists(s.integers(1, 8), min_size=1, max_size=60)


_BANDS = [
    lambda ts, delta: SetPriceBand(ts, "ops", "percent", 200 + abs(delta) * 10),
    lambda ts, delta: SetPriceBand(ts, "ops", "range", min_price=6950 + delta // 10, max_price=7150),
    lambda ts, delta: SetPriceBand(ts, "ops", "off"),
    lambda ts, delta: SetPriceBand(ts, "ops", "default"),
]
# reference 6000: trades at ~7000 are > 10 % away (the breaker trips); 7000: they are not
_MARKET_OPS: dict[str, Any] = {
    "halt": lambda ts, pick, delta: HaltShard(ts, "ops", f"drill {pick}"),
    "resume": lambda ts, pick, delta: ResumeShard(ts, "ops"),
    "band": lambda ts, pick, delta: _BANDS[pick % len(_BANDS)](ts, delta),
    "kill": lambda ts, pick, delta: KillSwitch(ts, "ops", PARTIES[pick % len(PARTIES)]),
    "reference": lambda ts, pick, delta: SetMarketReference(ts, 6000 + 1000 * (pick % 2), "agmarknet", "d"),
    "later": lambda ts, pick, delta: Tick(ts + 16 * 60_000),  # past a breaker halt's end
}


def _commands(engine: ShardEngine, ops: list[tuple[Any, ...]], start_ts: int) -> list[Any]:
    """Turn abstract ops into commands, resolving references against the engine's current state."""
    out: list[Any] = []
    ts = start_ts
    for i, op in enumerate(ops):
        ts += 10
        if op[0] == "place":
            _, side, party, qty, price, loc, staple, dist, partial, min_kg, intent, valid, linked, private = (
                op
            )
            kw: dict[str, Any] = {
                "loc": LOCS[loc],
                "allow_partial": partial,
                "min_order_kg": min(min_kg, qty),
                "linked_parties": linked,
                "valid_until": ts + valid if valid else None,
            }
            if private:
                kw["visibility"] = "PRIVATE"
                kw["allow_list"] = ("C",)
            if side == "BUY":
                if staple:
                    kw["quality_ranges"] = {"staple_length_mm": staple}
                kw["max_distance_km"] = dist
                kw["intent"] = intent
                out.append(buy(f"c{ts}-{i}", party, qty, price + 100, ts, **kw))
            else:
                kw["quality"] = {"staple_length_mm": staple[0] + 1.0 if staple else 28.5}
                seller = PARTIES[
                    (PARTIES.index(party) + 2) % len(PARTIES)
                ]  # sellers differ from buyers mostly
                out.append(sell(f"c{ts}-{i}", seller, qty, price, ts, **kw))
            continue
        kind, pick, delta = op
        orders = sorted(engine.orders)
        props = sorted(engine.proposals)
        resv = sorted(engine.reservations)
        if kind == "tick":
            out.append(Tick(ts + abs(delta)))
        elif kind in _MARKET_OPS:
            out.append(_MARKET_OPS[kind](ts, pick, delta))
        elif kind in ("cancel", "amend_qty", "amend_price") and orders:
            o = engine.orders[orders[pick % len(orders)]]
            if kind == "cancel":
                out.append(CancelOrder(ts, o.party_id, o.order_id))
            elif kind == "amend_qty":
                out.append(AmendOrder(ts, o.party_id, o.order_id, quantity_kg=max(1, o.quantity_kg + delta)))
            else:
                out.append(AmendOrder(ts, o.party_id, o.order_id, price=max(1, o.price + delta // 10)))
        elif kind in ("accept", "reject") and props:
            p = engine.proposals[props[pick % len(props)]]
            cls = AcceptProposal if kind == "accept" else RejectProposal
            out.append(cls(ts, p["buyer_id"], p["proposal_id"]))
        elif kind in ("confirm", "release") and resv:
            r = engine.reservations[resv[pick % len(resv)]]
            party = r["seller_id"] if kind == "confirm" or delta > 0 else r["buyer_id"]
            cls2 = ConfirmReservation if kind == "confirm" else ReleaseReservation
            out.append(cls2(ts, party, r["reservation_id"]))
    return out


def _run(
    ops: list[tuple[Any, ...]], sizes: list[int], profile: str, keep: int = CLOSED_RETENTION
) -> tuple[ShardEngine, list[Event], list[dict[str, Any]]]:
    engine = ShardEngine("IN-GJ", "cotton", profile=profile, closed_retention=keep)
    events: list[Event] = []
    snaps: list[dict[str, Any]] = []
    i = 0
    k = 0
    ts = 1_000
    while i < len(ops):
        size = sizes[k % len(sizes)]
        k += 1
        cmds = _commands(engine, ops[i : i + size], ts)
        ts += 10 * size + 1_000
        i += size
        snaps.append(engine.snapshot())
        events.extend(engine.execute(cmds).events)
    return engine, events, snaps


def _check_fills(events: list[Event], profile: str) -> None:
    """Replay events on a shadow engine; before each allocation check the hard filters and quantities."""
    shadow = ShardEngine("IN-GJ", "cotton", profile=profile)
    for ev in events:
        if ev.type == "ALLOCATED":
            p = ev.payload
            b, sl = shadow.orders[p.buy_order_id], shadow.orders[p.sell_order_id]
            q = p.quantity_kg
            assert 0 < q <= b.open_kg and q <= sl.open_kg, "over-allocation"
            assert sl.price <= b.price, "price does not cross"
            resting = sl if p.taker_side == "BUY" else b
            assert p.price == resting.price, "trade not at the resting price"
            assert parties_may_trade(b, sl) and quality_within(b, sl)
            lim = distance_limit(b, sl)
            if lim is not None:
                assert haversine_km(b.lat, b.lon, sl.lat, sl.lon) <= lim
            for o in (b, sl):
                assert q >= o.min_order_kg or q == o.open_kg
        if ev.type == "CONFIRMED":
            p = ev.payload
            r = shadow.reservations[p.reservation_id]
            assert r["status"] == "ACTIVE" and r["quantity_kg"] == p.quantity_kg
        shadow.apply(ev)


def _check_conservation(engine: ShardEngine, events: list[Event]) -> None:
    allocated: dict[str, int] = {}
    for ev in events:
        if ev.type in ("ALLOCATED", "CONFIRMED"):
            for k in ("buy_order_id", "sell_order_id"):
                oid = getattr(ev.payload, k)
                allocated[oid] = allocated.get(oid, 0) + ev.payload.quantity_kg
    for o in engine.orders.values():
        parts = (o.open_kg, o.reserved_kg, o.allocated_kg, o.cancelled_kg, o.expired_kg)
        assert all(x >= 0 for x in parts), (o.order_id, parts)
        assert sum(parts) == o.quantity_kg, (o.order_id, parts, o.quantity_kg)
        assert o.allocated_kg == allocated.get(o.order_id, 0)
    live = {
        o.order_id
        for side in (engine.bids, engine.asks)
        for lvl in side.levels.values()
        for o in lvl.values()
    }
    assert live == {
        o.order_id
        for o in engine.orders.values()
        if o.open_kg > 0 and o.status in ("OPEN", "PARTIALLY_FILLED")
    }


def _check_replay_and_snapshots(
    engine: ShardEngine,
    events: list[Event],
    snaps: list[dict[str, Any]],
    profile: str,
    keep: int = CLOSED_RETENTION,
) -> None:
    """apply(all events) == live state, and snapshot + later events == live state from every
    batch boundary."""
    replayed = ShardEngine("IN-GJ", "cotton", profile=profile, closed_retention=keep)
    for ev in events:
        replayed.apply(Event.from_dict(ev.to_dict()))
    assert replayed.snapshot() == engine.snapshot()
    for snap in snaps:
        restored = ShardEngine.from_snapshot(snap)
        for ev in events[snap["seq"] :]:
            restored.apply(ev)
        assert restored.snapshot() == engine.snapshot()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, sizes=batching, profile=s.sampled_from(["price_time", "quality"]))
def test_invariants_hold_for_random_command_sequences(ops: list[Any], sizes: list[int], profile: str) -> None:
    engine, events, snaps = _run(ops, sizes, profile)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    _check_fills(events, profile)
    _check_conservation(engine, events)

    # determinism: the same commands give the same events
    again, events2, _ = _run(ops, sizes, profile)
    assert [e.to_dict() for e in events2] == [e.to_dict() for e in events]

    _check_replay_and_snapshots(engine, events, snaps, profile)
    # and the restored engine behaves the same afterwards
    restored = ShardEngine.from_snapshot(snaps[len(snaps) // 2])
    for ev in events[snaps[len(snaps) // 2]["seq"] :]:
        restored.apply(ev)
    tail = [sell("tail", "D", 500, 6900, 10**9), buy("tail", "A", 800, 7100, 10**9 + 1)]
    assert [e.to_dict() for e in restored.execute(tail).events] == [
        e.to_dict() for e in engine.execute(tail).events
    ]


def _events_without_pruning(ops: list[Any], sizes: list[int]) -> list[dict[str, Any]]:
    ShardEngine.prune_quality_scan = False
    try:
        return [e.to_dict() for e in _run(ops, sizes, "quality")[1]]
    finally:
        ShardEngine.prune_quality_scan = True


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, sizes=batching)
def test_quality_level_pruning_changes_nothing(ops: list[Any], sizes: list[int]) -> None:
    pruned = [e.to_dict() for e in _run(ops, sizes, "quality")[1]]
    assert pruned == _events_without_pruning(ops, sizes)


def test_quality_level_pruning_on_a_deep_crossed_book() -> None:
    """400 availabilities over 80 price levels, then 200 requirements that cross many levels: the
    pruned scan stops early for most takers and still records exactly the same events."""
    import random

    class Counting(ShardEngine):
        pruned = 0

        def _quality_ranked(self, taker: Any, decide: bool, need_kg: int | None) -> Any:
            out, bound = super()._quality_ranked(taker, decide, need_kg)
            Counting.pruned += bound is not None
            return out, bound

    def run() -> list[dict[str, Any]]:
        rng = random.Random(11)
        eng = Counting("IN-GJ", "cotton", profile="quality")
        cmds: list[Any] = []
        for i in range(400):
            loc = (21.0 + rng.random() * 3, 69.5 + rng.random() * 4)
            cmds.append(
                sell(
                    f"s{i}",
                    f"S{i % 40}",
                    rng.randint(1, 20) * 170,
                    6600 + 10 * rng.randint(0, 80),
                    i,
                    loc=loc,
                )
            )
        for i in range(200):
            loc = (21.0 + rng.random() * 3, 69.5 + rng.random() * 4)
            cmds.append(
                buy(
                    f"b{i}",
                    f"B{i % 30}",
                    rng.randint(1, 30) * 170,
                    6900 + 10 * rng.randint(0, 60),
                    400 + i,
                    loc=loc,
                )
            )
        return [e.to_dict() for k in range(0, 600, 50) for e in eng.execute(cmds[k : k + 50]).events]

    pruned = run()
    assert Counting.pruned > 50
    ShardEngine.prune_quality_scan = False
    try:
        full = run()
    finally:
        ShardEngine.prune_quality_scan = True
    assert sum(1 for e in pruned if e["type"] == "ALLOCATED") > 100
    assert pruned == full
