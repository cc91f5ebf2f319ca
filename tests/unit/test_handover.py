"""The fenced handover of a live move (actors/handover.py) on the in-memory store, no Ray: a standby
follows the serving host, takes over at exactly the fenced seq, and a stale writer is harmless."""

from __future__ import annotations

import pytest

from actors.handover import catch_up, fence, promote
from actors.shard_outcomes import ShardDraining, ShardUnavailable
from actors.shard_service import ShardService
from persistence.memory_store import MemoryEventStore
from tests.unit.shard_service_helpers import REGION, orders


async def test_standby_follows_then_takes_over_at_the_fenced_seq() -> None:
    store = MemoryEventStore()
    old = ShardService(REGION, "cotton", store)
    assert await old.start(wait_s=0)
    await old.submit(orders(30, "a"))
    standby = ShardService(REGION, "cotton", store)
    standby.draining = True  # what a standby host starts as
    assert await standby.start(wait_s=0)
    assert standby.committed_seq == old.committed_seq
    await old.submit(orders(20, "b", seed=4))  # the old host serves on
    assert await catch_up(standby) == old.committed_seq
    with pytest.raises(ShardDraining):
        await standby.submit(orders(1, "x"))  # a standby takes no commands
    await old.submit(orders(5, "c", seed=5))
    fenced = await fence(old)
    n = fenced["committed_seq"]
    assert fenced["draining"] is True and n == old.committed_seq
    with pytest.raises(ShardDraining):
        await old.submit(orders(1, "late"))  # after the fence: not run, may be sent to the new host
    with pytest.raises(RuntimeError, match="standby at"):
        promote(standby, n)  # not caught up yet: no promotion
    assert await catch_up(standby) == n
    info = promote(standby, n, snapshot_seq=fenced["last_snapshot_seq"])
    assert info["draining"] is False and info["committed_seq"] == n
    assert (await standby.engine_snapshot()) == (await old.engine_snapshot())
    (res,) = await standby.submit(orders(1, "late"))
    assert res["status"] == "ACCEPTED" and res["seqs"][0] == n + 1
    # the old host's retries of orders it already has are duplicates on the new one
    again = await standby.submit(orders(5, "c", seed=5))
    assert all(r["duplicate"] for r in again)


async def test_a_stale_writer_cannot_commit_after_the_handover() -> None:
    store = MemoryEventStore()
    old = ShardService(REGION, "cotton", store)
    assert await old.start(wait_s=0)
    await old.submit(orders(10, "a"))
    new = ShardService(REGION, "cotton", store)
    assert await new.start(wait_s=0)
    n = (await fence(old))["committed_seq"]
    promote(new, await catch_up(new))
    await new.submit(orders(3, "n", seed=9))
    old.draining = False  # a host that somehow kept going after its fence
    with pytest.raises(ShardUnavailable):
        await old.submit(orders(2, "s", seed=11))
    rows = await store.read_events(old.shard_id, 0, 10_000)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))  # one writer's seqs, no gap
    assert len(rows) == new.committed_seq > n
