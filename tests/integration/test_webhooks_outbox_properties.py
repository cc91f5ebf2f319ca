"""Property of the outbox on real PostgreSQL: whatever the interleaving of commits (several streams,
webhook and other event types, any parties) and fan-out passes (any page size), once the outbox has
caught up the delivery rows are exactly one per (endpoint, event) that the endpoint's party and
categories select, and every stream's cursor is at its head."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core.webhooks import CATEGORIES, CATEGORY_TYPES
from gateway.webhooks.secrets import SecretBox, new_secret
from persistence.event_store import BatchRows
from persistence.migrate import apply_migrations
from persistence.pg_store import PostgresEventStore
from persistence.webhooks import WebhookRepo

pytestmark = pytest.mark.integration

PARTIES = ("P0", "P1", "P2", "P3")
TYPES = ("ALLOCATED", "CONFIRMED", "ORDER_ACCEPTED", "INVOICE_ISSUED", "CONTRACT_DEFAULTED", "RESERVED")
BOX = SecretBox(Fernet.generate_key())

event = st.tuples(st.sampled_from(TYPES), st.sampled_from(PARTIES), st.sampled_from(PARTIES))
op = st.one_of(
    st.tuples(st.just("commit"), st.integers(0, 2), st.lists(event, min_size=1, max_size=6)),
    st.tuples(st.just("fan"), st.integers(0, 2), st.integers(1, 5)),
)
endpoint = st.tuples(st.sampled_from(PARTIES), st.sets(st.sampled_from(CATEGORIES), min_size=1))


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


async def _run(dsn: str, endpoints: list[tuple[str, set[str]]], ops: list[Any]) -> None:
    tag = uuid.uuid4().hex[:8]
    streams = [f"S{tag}-{i}" for i in range(3)]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        repo, store = WebhookRepo(pool), PostgresEventStore(pool)
        eps = {}
        for i, (party, cats) in enumerate(endpoints):
            eid = f"WH-{tag}-{i}"
            await repo.create(
                eid, f"{party}{tag}", "http://127.0.0.1:9/x", sorted(cats), None, BOX.seal(new_secret())
            )
            eps[eid] = (f"{party}{tag}", cats)
        committed: list[tuple[str, int, str, str, str]] = []
        heads = dict.fromkeys(streams, 0)
        for o in ops:
            stream = streams[o[1]]
            if o[0] == "fan":
                await repo.fan_out(stream, o[2])
                continue
            rows = BatchRows(stream)
            for typ, b, s in o[2]:
                heads[stream] += 1
                payload = {"buyer_id": f"{b}{tag}", "seller_id": f"{s}{tag}", "contract_id": "CT-x"}
                rows.events.append((stream, heads[stream], typ, 1, msgspec.msgpack.encode(payload), 0))
                committed.append((stream, heads[stream], typ, payload["buyer_id"], payload["seller_id"]))
            rows.last_seq = heads[stream]
            await store.append(rows)
        for stream in streams:
            while await repo.fan_out(stream, 3):
                pass
        expected = {
            (eid, stream, seq)
            for stream, seq, typ, buyer, seller in committed
            for eid, (party, cats) in eps.items()
            if party in (buyer, seller) and any(typ in CATEGORY_TYPES[c] for c in cats)
        }
        got = await pool.fetch(
            "SELECT endpoint_id, stream_id, seq, event_type, status, attempts FROM webhook_deliveries "
            "WHERE endpoint_id = ANY($1::text[])",
            list(eps),
        )
        keys = [(r["endpoint_id"], r["stream_id"], r["seq"]) for r in got]
        assert len(keys) == len(set(keys)) and set(keys) == expected
        types = {(s, q): t for s, q, t, _, _ in committed}
        assert all(r["event_type"] == types[(r["stream_id"], r["seq"])] for r in got)
        assert {(r["status"], r["attempts"]) for r in got} <= {("pending", 0)}
        for stream in streams:
            assert await repo.cursor(stream) == heads[stream]
    finally:
        await pool.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(endpoint, min_size=1, max_size=4), st.lists(op, min_size=1, max_size=12))
def test_fan_out_creates_exactly_the_selected_deliveries(
    dsn: str, endpoints: list[tuple[str, set[str]]], ops: list[Any]
) -> None:
    asyncio.run(_run(dsn, endpoints, ops))
