"""Webhook outbox and delivery on real PostgreSQL against a real HTTP receiver on 127.0.0.1 (no
mocks, no Ray): events are committed through the event store (typed shard events, and settlement
type names as raw rows, which is how the settlement host's events will arrive), the dispatcher fans
them out and POSTs them; signatures verify with ``standardwebhooks.Webhook.verify``; a receiver
answering 500 gets every retry and the delivery lands in the dead-letter list; deliveries pending
when a dispatcher stops (or dies holding a claim) are delivered by the next one on the same
database; redelivery from a seq; party scoping; rotation signs with both secrets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import msgspec
import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook, WebhookVerificationError

from actors.core.webhooks import message_id
from bench.webhooks import allocated_json
from gateway.webhooks.dispatcher import APPLICATION_NAME, DispatchConfig, Dispatcher
from gateway.webhooks.secrets import SecretBox, new_secret
from persistence.event_store import BatchRows
from persistence.migrate import apply_migrations
from persistence.pg_store import PostgresEventStore
from persistence.webhooks import WebhookRepo
from tests.integration.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

SHARD = "IN-GJ.cotton"
FAST = DispatchConfig(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=3, poll_s=0.05)
BOX = SecretBox(Fernet.generate_key())
_ids = iter(range(1, 10**6))


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    yield p
    await p.close()


def allocated(buyer: str, seller: str, n: int) -> str:
    """An ALLOCATED payload as the shard writes it."""
    return allocated_json(n, buyer, seller, SHARD)


def settlement(typ: str, buyer: str, seller: str, **fields: Any) -> str:
    """A settlement-host payload (settlement-interface.md): every one names contract, buyer, seller."""
    return json.dumps({"contract_id": "CT-A-1", "buyer_id": buyer, "seller_id": seller, **fields})


async def commit(store: PostgresEventStore, stream: str, events: list[tuple[str, str]]) -> list[int]:
    """Append ``(type, payload JSON)`` events to ``stream`` through the store's lowest-level append
    (one batch, next seqs, the payload stored as MessagePack like every writer does); returns their seqs."""
    first = await store.max_seq(stream) + 1
    rows = BatchRows(stream)
    ts = 1_762_761_600_000
    for i, (typ, payload) in enumerate(events):
        rows.events.append((stream, first + i, typ, 1, msgspec.msgpack.encode(json.loads(payload)), ts + i))
    rows.last_seq = first + len(events) - 1
    await store.append(rows)
    return list(range(first, first + len(events)))


async def endpoint(repo: WebhookRepo, party: str, url: str, cats: list[str]) -> tuple[str, str]:
    """A registered endpoint: ``(endpoint_id, secret)``."""
    secret = new_secret()
    eid = f"WH-t{next(_ids)}"
    await repo.create(eid, party, url, cats, None, BOX.seal(secret))
    return eid, secret


async def run_until(d: Dispatcher, done: Callable[[], Any], timeout: float = 20.0) -> None:
    """Dispatcher passes until ``done()`` (async or sync) is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await d.run_once()
        r = done()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("dispatcher did not finish in time")


async def test_signed_deliveries_reach_only_the_parties_of_each_event(
    pool: asyncpg.Pool, receiver: Receiver
) -> None:
    repo, store = WebhookRepo(pool), PostgresEventStore(pool)
    buyer_ep, buyer_secret = await endpoint(repo, "WB1", receiver.url("/b1"), ["allocation", "invoice"])
    seller_ep, _ = await endpoint(repo, "WS1", receiver.url("/s1"), ["allocation"])
    other_ep, _ = await endpoint(
        repo, "WX1", receiver.url("/x1"), list(("allocation", "contract", "invoice"))
    )
    seqs = await commit(store, SHARD, [("ALLOCATED", allocated("WB1", "WS1", 1)), ("ORDER_ACCEPTED", "{}")])
    st = await commit(
        store,
        "settlement",
        [
            ("CONTRACT_OPENED", settlement("CONTRACT_OPENED", "WB1", "WS1", quantity_kg=1700)),
            (
                "INVOICE_ISSUED",
                settlement("INVOICE_ISSUED", "WB1", "WS1", invoice_id="INV-1", amount=1190000),
            ),
        ],
    )
    d = Dispatcher(pool, BOX, FAST)
    try:
        await run_until(d, lambda: len(receiver.got("/b1")) >= 2 and len(receiver.got("/s1")) >= 1)
        await d.run_once()
    finally:
        await d.stop()
    b1 = receiver.got("/b1")
    assert sorted(json.loads(r.body)["type"] for r in b1) == ["ALLOCATED", "INVOICE_ISSUED"]
    for r in b1:
        body = Webhook(buyer_secret).verify(r.body, r.headers)
        stream, seq = body["data"]["stream"], body["data"]["seq"]
        assert r.headers["webhook-id"] == message_id(stream, seq, buyer_ep)
        assert r.headers["content-type"] == "application/json"
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
        if body["type"] == "ALLOCATED":
            assert (stream, seq) == (SHARD, seqs[0])
            assert body["timestamp"] == "2025-11-10T08:00:00.000Z"
            assert body["data"]["categories"] == ["allocation"]
            assert body["data"]["event"]["allocation_id"] == f"A-{SHARD}-1"
            assert body["data"]["event"]["quantity_kg"] == 1700
        else:
            assert (stream, seq) == ("settlement", st[1])
            assert body["data"]["event"]["amount"] == 1190000
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(b1[0].body, b1[0].headers)
    # the seller subscribed to allocations only: no invoice; CONTRACT_OPENED went to nobody subscribed
    assert [json.loads(r.body)["type"] for r in receiver.got("/s1")] == ["ALLOCATED"]
    assert receiver.got("/x1") == []  # party scoping: WX1 is no party of these events
    rows = await repo.deliveries(other_ep, None, 0, 100)
    assert rows == []
    delivered = await repo.deliveries(seller_ep, "delivered", 0, 100)
    assert [(x["stream_id"], x["seq"], x["attempts"], x["last_status"]) for x in delivered] == [
        (SHARD, seqs[0], 1, 204)
    ]
    assert await repo.cursor(SHARD) == seqs[-1] and await repo.cursor("settlement") == st[-1]


async def test_a_failing_receiver_gets_every_retry_then_the_dead_letter_list(
    pool: asyncpg.Pool, receiver: Receiver
) -> None:
    repo, store = WebhookRepo(pool), PostgresEventStore(pool)
    receiver.status["/fail"] = 500
    eid, secret = await endpoint(repo, "WB2", receiver.url("/fail"), ["payment"])
    (seq,) = await commit(
        store, "settlement", [("PAYMENT_RECEIVED", settlement("PAYMENT_RECEIVED", "WB2", "WS2", amount=500))]
    )
    d = Dispatcher(pool, BOX, FAST)

    async def dead() -> bool:
        return bool(await repo.deliveries(eid, "dead", 0, 10))

    try:
        await run_until(d, dead)
        for _ in range(5):  # nothing more is tried once dead
            await d.run_once()
            await asyncio.sleep(0.06)
    finally:
        await d.stop()
    got = receiver.got("/fail")
    assert len(got) == FAST.max_attempts == 3
    assert {r.headers["webhook-id"] for r in got} == {message_id("settlement", seq, eid)}
    for r in got:
        Webhook(secret).verify(r.body, r.headers)
    (row,) = await repo.deliveries(eid, "dead", 0, 10)
    assert (row["seq"], row["attempts"], row["last_status"], row["last_error"]) == (seq, 3, 500, "HTTP 500")
    assert row["next_attempt_at"] is None and row["delivered_at"] is None
    assert await repo.deliveries(eid, "pending", 0, 10) == []


async def test_deliveries_pending_at_a_restart_are_delivered_by_the_next_dispatcher(
    dsn: str, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    repo, store = WebhookRepo(pool), PostgresEventStore(pool)
    receiver.status["/down"] = 503
    eid, secret = await endpoint(repo, "WB3", receiver.url("/down"), ["allocation"])
    first = await commit(store, SHARD, [("ALLOCATED", allocated("WB3", "WS3", n)) for n in (10, 11, 12)])
    patient = DispatchConfig(max_attempts=50, backoff_initial_s=0.01, backoff_max_s=0.05, poll_s=0.05)
    old = Dispatcher(pool, BOX, patient)
    await old.start()  # the background task, as in the gateway
    deadline = time.monotonic() + 20
    while len(receiver.got("/down")) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await old.stop()
    assert len(receiver.got("/down")) >= 3
    assert {r["status"] for r in await repo.deliveries(eid, None, 0, 10)} == {"pending"}
    # committed while no dispatcher runs
    later = await commit(store, SHARD, [("CONFIRMED", allocated("WB3", "WS3", 13))])
    # a dispatcher that claims a delivery and dies before recording it (lease 1 s)
    await commit(store, SHARD, [("ALLOCATED", allocated("WB3", "WS3", 14))])
    await repo.fan_out(SHARD)
    await asyncio.sleep(0.2)  # the first three fall due again (backoff <= 0.06 s)
    held = [c for c in await repo.claim(100, lease_s=1.0) if c.endpoint_id == eid]
    assert sorted(c.seq for c in held) == [*first, later[0], later[0] + 1]
    receiver.status["/down"] = 200
    before = len(receiver.got("/down"))
    new_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    new = Dispatcher(new_pool, BOX, patient)
    try:
        await new.start()
        assert await asyncio.to_thread(receiver.wait_for, "/down", before + 5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = await repo.deliveries(eid, None, 0, 10)
            if {r["status"] for r in rows} == {"delivered"}:
                break
            await asyncio.sleep(0.05)
    finally:
        await new.stop()
        await new_pool.close()
    rows = await repo.deliveries(eid, None, 0, 10)
    assert [(r["seq"], r["status"]) for r in rows] == [
        (s, "delivered") for s in [*first, *later, later[0] + 1]
    ]
    ok = receiver.got("/down")[before:]
    assert {r.headers["webhook-id"] for r in ok} == {message_id(SHARD, r["seq"], eid) for r in rows}
    for r in ok:
        Webhook(secret).verify(r.body, r.headers)
    # the dead dispatcher's lease cannot record anything now
    assert not await repo.delivered(held[0], 200)


async def test_redelivery_from_a_seq_and_rotation_signs_with_both_secrets(
    pool: asyncpg.Pool, receiver: Receiver
) -> None:
    repo, store = WebhookRepo(pool), PostgresEventStore(pool)
    eid, old_secret = await endpoint(repo, "WB4", receiver.url("/r4"), ["invoice", "overdue"])
    seqs = await commit(
        store,
        "settlement",
        [
            ("INVOICE_ISSUED", settlement("INVOICE_ISSUED", "WB4", "WS4", invoice_id="INV-4a")),
            ("INVOICE_OVERDUE", settlement("INVOICE_OVERDUE", "WB4", "WS4", invoice_id="INV-4a")),
            ("CONTRACT_DEFAULTED", settlement("CONTRACT_DEFAULTED", "WB4", "WS4", invoice_id="INV-4a")),
            ("INVOICE_ISSUED", settlement("INVOICE_ISSUED", "WB9", "WS4", invoice_id="INV-9")),
        ],
    )
    d = Dispatcher(pool, BOX, FAST)
    try:
        await run_until(d, lambda: len(receiver.got("/r4")) >= 3)
        await d.run_once()
        first = receiver.got("/r4")
        assert sorted(json.loads(r.body)["data"]["seq"] for r in first) == seqs[:3]
        new_secret_ = new_secret()
        assert await repo.rotate(eid, "WX4", BOX.seal(new_secret_), 3600) is None  # not the owner
        rotated = await repo.rotate(eid, "WB4", BOX.seal(new_secret_), 3600)
        assert rotated is not None and rotated["previous_expires_at"] is not None
        out = await repo.redeliver(await repo.get(eid, "WB4") or {}, "settlement", seqs[1], 100)
        assert out == {"queued": 2, "through_seq": seqs[3], "more": False}
        await run_until(d, lambda: len(receiver.got("/r4")) >= 5)
    finally:
        await d.stop()
    again = receiver.got("/r4")[3:]
    assert sorted(json.loads(r.body)["data"]["seq"] for r in again) == seqs[1:3]
    assert {r.headers["webhook-id"] for r in again} == {message_id("settlement", s, eid) for s in seqs[1:3]}
    for r in again:
        assert len(r.headers["webhook-signature"].split(" ")) == 2
        Webhook(old_secret).verify(r.body, r.headers)
        Webhook(new_secret_).verify(r.body, r.headers)
    # CONTRACT_DEFAULTED is both contract and overdue: this endpoint has it through overdue
    cats = {json.loads(r.body)["type"]: json.loads(r.body)["data"]["categories"] for r in again}
    assert cats == {"INVOICE_OVERDUE": ["overdue"], "CONTRACT_DEFAULTED": ["contract", "overdue"]}


async def test_two_dispatchers_on_one_database_send_each_event_once(
    dsn: str, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """As with several gateway processes: the stream cursors and the claims are shared through row
    locks, so neither fans out or sends what the other did."""
    repo, store = WebhookRepo(pool), PostgresEventStore(pool)
    eid, secret = await endpoint(repo, "WB5", receiver.url("/two"), ["allocation", "payment"])
    other_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    a, b = Dispatcher(pool, BOX, FAST), Dispatcher(other_pool, BOX, FAST)
    seqs: list[int] = []
    try:
        await a.start()
        await b.start()
        for n in range(20, 30):
            seqs += await commit(store, SHARD, [("ALLOCATED", allocated("WB5", "WS5", n)) for _ in range(4)])
            await commit(store, "settlement", [("PAYMENT_RECEIVED", settlement("", "WB5", "WS5", amount=n))])
        assert len(await asyncio.to_thread(receiver.wait_for, "/two", 50)) >= 50
        await asyncio.sleep(0.5)  # time for a duplicate, were there one
    finally:
        await a.stop()
        await b.stop()
        await other_pool.close()
    got = receiver.got("/two")
    ids = [r.headers["webhook-id"] for r in got]
    assert len(ids) == len(set(ids)) == 50
    assert {message_id(SHARD, s, eid) for s in seqs} <= set(ids)
    rows = await repo.deliveries(eid, None, 0, 100)
    assert len(rows) == 50 and {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
    for r in got[:3]:
        Webhook(secret).verify(r.body, r.headers)


async def test_the_dispatcher_carries_on_after_its_database_connections_are_killed(
    dsn: str, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    repo, store = WebhookRepo(pool), PostgresEventStore(pool)
    eid, secret = await endpoint(repo, "WB6", receiver.url("/kill"), ["delivery"])
    d = await Dispatcher.open(dsn, BOX, FAST)
    try:
        (s1,) = await commit(store, "settlement", [("DELIVERY_RECORDED", settlement("", "WB6", "WS6"))])
        assert len(await asyncio.to_thread(receiver.wait_for, "/kill", 1)) == 1
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = $1",
            APPLICATION_NAME,
        )
        assert killed >= 1
        (s2,) = await commit(store, "settlement", [("DELIVERY_RECORDED", settlement("", "WB6", "WS6"))])
        got = await asyncio.to_thread(receiver.wait_for, "/kill", 2)
    finally:
        await d.stop()
    assert [json.loads(r.body)["data"]["seq"] for r in got] == [s1, s2]
    for r in got:
        Webhook(secret).verify(r.body, r.headers)
