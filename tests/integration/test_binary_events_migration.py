"""Migration 0010 on a database written by the JSON-events code: the schema up to 0008, events inserted
exactly as that code wrote them (``payload`` jsonb from :func:`actors.core.events.payload_to_json`, by
COPY), then the upgrade. The old rows read back as the same typed events, new rows are MessagePack,
a shard recovers from the mixed log to the state of an engine that saw every event live, and the
readers that serve JSON give the old rows' JSON unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.core import events as ev
from actors.core.commands import CancelOrder
from actors.core.engine import ShardEngine
from actors.shard_service import ShardService
from bench.shard import make_orders
from persistence.event_store import (
    batch_rows,
    decode_event,
    event_row,
    payload_json,
)
from persistence.migrate import _config, apply_migrations, current_version
from persistence.pg_store import PostgresEventStore
from persistence.shard_writer import ShardWriter
from tests.conftest import create_database, drop_database
from tests.integration.conftest import unique_region

pytestmark = pytest.mark.integration

JSON_COLS = ("shard_id", "seq", "type", "schema_version", "payload", "ts")  # the 0001..0008 writer's


def _batches(eng: ShardEngine, n: int, prefix: str, ts0: int) -> list[list[ev.Event]]:
    """Batches of real engine events: crossing orders (accepted, allocated), a cancel, a rejection."""
    cmds: list[Any] = list(make_orders(eng.region, "cotton", n, seed=len(prefix), prefix=prefix, ts0=ts0))
    out = []
    for j in range(0, n, 20):
        res = eng.process(cmds[j : j + 20])
        out.append(list(res.events))
    some = next(o for o in eng.snapshot()["orders"] if o["status"] == "OPEN")
    res = eng.process(
        [
            CancelOrder(ts=ts0 + n, party_id=some["party_id"], order_id=some["order_id"]),
            CancelOrder(ts=ts0 + n + 1, party_id="P-nobody", order_id="O-nowhere-1"),
        ]
    )
    out.append(list(res.events))
    return out


@pytest.fixture()
def old_dsn() -> Any:
    from alembic import command

    name, dsn = create_database()
    command.upgrade(_config(dsn), "0008")
    assert current_version(dsn) == 8
    yield dsn
    drop_database(name)


async def test_json_events_survive_the_upgrade(old_dsn: str) -> None:
    import asyncpg

    region = unique_region()
    live = ShardEngine(region, "cotton", "price_time")
    old = _batches(live, 120, "j", 1_767_225_600_000)
    conn = await asyncpg.connect(old_dsn)
    try:  # exactly what the JSON-events code wrote: payload_to_json into the jsonb column, by COPY
        for batch in old:
            rows = [
                (live.shard_id, e.seq, e.type, e.schema_version, ev.payload_to_json(e.payload), e.ts)
                for e in batch
            ]
            await conn.copy_records_to_table("events", records=rows, columns=JSON_COLS)
    finally:
        await conn.close()
    old_events = [e for b in old for e in b]
    assert {e.type for e in old_events} >= {
        ev.ORDER_ACCEPTED,
        ev.ALLOCATED,
        ev.CANCELLED,
        ev.COMMAND_REJECTED,
    }

    assert "0010_binary_events" in apply_migrations(old_dsn)

    pool = await asyncpg.create_pool(old_dsn, min_size=1, max_size=2)
    try:
        store = PostgresEventStore(pool)
        stored = await store.read_events(live.shard_id, 0)
        assert all(isinstance(r[4], str) for r in stored)  # old rows are read as they are, JSON
        assert [decode_event(r) for r in stored] == old_events
        # the JSON readers serve the same data (jsonb keeps its own key order, as before the upgrade)
        assert [json.loads(payload_json(r[4])) for r in stored] == [
            json.loads(ev.payload_to_json(e.payload)) for e in old_events
        ]

        # the same shard goes on writing, now in binary, after the JSON rows
        new = _batches(live, 60, "k", 1_767_225_700_000)
        for batch in new:
            batch_out = batch_rows(live.shard_id, batch)
            await store.append(batch_out)
            assert all(isinstance(t[4], bytes) for t in batch_out.events)
        new_events = [e for b in new for e in b]
        mixed = await store.read_events(live.shard_id, 0)
        assert [type(r[4]) for r in mixed] == [str] * len(old_events) + [bytes] * len(new_events)
        assert [decode_event(r) for r in mixed] == old_events + new_events
        assert [payload_json(r[4]) for r in mixed[len(old_events) :]] == [
            ev.payload_to_json(e.payload) for e in new_events
        ]
        async with pool.acquire() as c:  # one of body and payload per row, never both
            both = await c.fetchval("SELECT count(*) FROM events WHERE (body IS NULL) = (payload IS NULL)")
        assert both == 0
    finally:
        await pool.close()

    # a shard recovering from the mixed log (small pages: JSON and binary pages alike) gets the live state
    writer = ShardWriter(old_dsn)
    try:
        svc = ShardService(region, "cotton", writer, profile="price_time", recovery_page=25)
        assert await svc.start(5.0)
        assert svc.committed_seq == live.seq
        assert await svc.engine_snapshot() == live.snapshot()
    finally:
        await writer.aclose()


def test_event_rows_are_binary() -> None:
    """What the writer stores: MessagePack bodies that decode to the same events."""
    eng = ShardEngine(unique_region(), "cotton")
    events = [e for b in _batches(eng, 40, "b", 1_767_225_600_000) for e in b]
    rows = batch_rows(eng.shard_id, events)
    assert [decode_event(event_row(t)) for t in rows.events] == events
    assert all(isinstance(t[4], bytes) and t[4][:1] != b"{" for t in rows.events)
