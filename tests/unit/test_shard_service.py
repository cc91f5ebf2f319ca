"""The shard service without Ray, on the in-memory event store: recovery after a kill (a new
instance over the same store has the identical state), snapshot + later events, fencing of a stale
instance, a command the store cannot take rejected alone."""

from __future__ import annotations

from typing import Any

import pytest

from actors.shard_outcomes import ShardUnavailable
from actors.shard_service import ShardService
from persistence.event_store import payload_json
from persistence.memory_store import MemoryEventStore
from persistence.storable import UNSTORABLE
from tests.unit.shard_service_helpers import REGION, orders, with_city


async def _service(store: Any, **kw: Any) -> ShardService:
    svc = ShardService(REGION, "cotton", store, **kw)
    assert await svc.start(wait_s=0)
    return svc


async def _feed(svc: ShardService, n: int, size: int, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cmds = orders(n, prefix)
    for j in range(0, n, size):
        out += await svc.submit(cmds[j : j + size])
    return out


async def test_recovery_after_kill_gives_identical_state() -> None:
    store = MemoryEventStore()
    a = await _service(store, snapshot_every=0)
    results = await _feed(a, 90, 15, "k")
    assert sum(bool(r["allocations"]) for r in results) > 5  # the stream really matches
    before = await a.engine_snapshot()
    del a  # "killed": nothing of it survives but the store
    b = await _service(store, snapshot_every=0)
    assert b.info()["recovered_events"] == before["seq"] == await store.max_seq(b.shard_id)
    assert await b.engine_snapshot() == before
    # the new instance goes on where the old one stopped: a retried order answers as before
    again = await b.submit(orders(1, "k"))
    assert again[0]["order_id"] == results[0]["order_id"]
    assert await b.engine_snapshot() == before


async def test_snapshot_plus_later_events_restore_exact_state() -> None:
    store = MemoryEventStore()
    a = await _service(store, snapshot_every=40, snapshot_mode="inline")
    await _feed(a, 100, 10, "s")
    await a.flush()
    snap = await store.latest_snapshot(a.shard_id)
    assert snap is not None and 0 < snap[0] < a.committed_seq
    before = await a.engine_snapshot()
    b = await _service(store, snapshot_every=40, snapshot_mode="inline")
    info = b.info()
    assert info["recovery_source"] == "store"
    assert info["recovered_events"] == before["seq"] - snap[0]  # only the events after the snapshot
    assert await b.engine_snapshot() == before


async def test_stale_instance_is_fenced_and_catches_up() -> None:
    store = MemoryEventStore()
    old = await _service(store)
    await _feed(old, 20, 10, "f")
    new = await _service(store)  # e.g. a restarted actor while the old process still runs
    await new.submit(orders(10, "n", seed=5))
    log_before = await store.read_events(new.shard_id, 0)
    with pytest.raises(ShardUnavailable, match="nothing acknowledged"):
        await old.submit(orders(10, "o", seed=6))
    assert await store.read_events(new.shard_id, 0) == log_before  # nothing of the stale batch
    assert old.info()["failures"] == 1
    # the stale instance recovers before its next batch and then sees the new instance's orders
    await old.submit([])
    assert await old.engine_snapshot() == await new.engine_snapshot()


async def test_unstorable_command_rejected_alone() -> None:
    store = MemoryEventStore()
    svc = await _service(store)
    cmds = orders(30, "u")
    cmds[7] = with_city(cmds[7], "x\u0000")
    cmds[19] = with_city(cmds[19], "\ud800")
    results = await svc.submit(cmds)
    for i in (7, 19):
        r = results[i]
        assert (r["status"], r["reason"], r["order_id"]) == ("REJECTED", UNSTORABLE, None)
        assert r["client_order_id"] == cmds[i].client_order_id and r["detail"].startswith("city ")
    others = [r for i, r in enumerate(results) if i not in (7, 19)]
    assert all(r["order_id"] for r in others) and len(others) == 28
    stored = await store.read_events(svc.shard_id, 0)
    assert len(stored) == svc.committed_seq == svc.engine.seq  # type: ignore[union-attr]
    assert all("\\u0000" not in payload_json(r[4]) for r in stored)
    assert svc.info()["unstorable"] == 2 and svc.info()["failures"] == 0
