"""Group commit (actors/shard_commits.py): batches matched while a commit is in flight share the next
transaction; each caller still gets its own results only after that commit, and a failed group
transaction fails every batch in it and leaves nothing of them in the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.shard_outcomes import ShardUnavailable
from actors.shard_service import ShardService
from persistence.memory_store import MemoryEventStore
from persistence.store import CommitFailed
from tests.unit.shard_service_helpers import REGION, FlakyStore, orders


class CountingStore(FlakyStore):
    """Records the events per append call (one call = one transaction); append call number
    ``refuse_call`` (1-based) is refused with nothing written."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[int] = []
        self.refuse_call = 0

    async def append(self, rows: Any) -> int:
        self.appends.append(len(rows.events))
        if len(self.appends) == self.refuse_call:
            raise CommitFailed("refused")
        return await super().append(rows)


async def _service(store: Any) -> ShardService:
    svc = ShardService(REGION, "cotton", store)
    assert await svc.start(wait_s=0)
    return svc


async def test_batches_queued_behind_a_commit_share_one_transaction() -> None:
    store = CountingStore()
    svc = await _service(store)
    batches = [orders(10, f"g{i}", seed=i) for i in range(4)]
    store.delay_s = 0.05
    first = asyncio.create_task(svc.submit(batches[0]))
    await asyncio.sleep(0.01)  # batch 0 is committing
    rest = [asyncio.create_task(svc.submit(b)) for b in batches[1:]]
    await asyncio.sleep(0)
    assert not any(t.done() for t in rest)  # sync durability: nothing answered before its commit
    results = [await first] + [await t for t in rest]
    assert [len(r) for r in results] == [10, 10, 10, 10]
    assert svc.info()["commits"] == len(store.appends) == 2
    events = await store.read_events(svc.shard_id, 0)
    assert store.appends[0] + store.appends[1] == len(events)
    assert [e[0] for e in events] == list(range(1, len(events) + 1))  # gap-free
    control = ShardService(REGION, "cotton", MemoryEventStore())
    await control.start(wait_s=0)
    for b in batches:
        assert await control.submit(b) == results.pop(0)
    assert [tuple(e[:4]) for e in await control.store.read_events(control.shard_id, 0)] == [
        tuple(e[:4]) for e in events
    ]


async def test_a_failed_group_fails_every_batch_in_it_and_writes_none() -> None:
    store = CountingStore()
    svc = await _service(store)
    await svc.submit(orders(10, "a"))
    before = await store.read_events(svc.shard_id, 0)
    store.delay_s = 0.05
    store.refuse_call = 3  # a, b, then the group's transaction
    first = asyncio.create_task(svc.submit(orders(10, "b", seed=2)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(svc.submit(orders(10, f"c{i}", seed=3 + i))) for i in range(3)]
    await first
    for t in rest:
        with pytest.raises(ShardUnavailable, match="nothing acknowledged"):
            await t
    assert svc.info()["failures"] == 3 and svc.info()["commits"] == 2  # a and b; the group failed
    assert len(store.appends) == 3
    assert len(await store.read_events(svc.shard_id, 0)) == len(before) + store.appends[1]
    store.delay_s = 0.0
    again = await svc.submit(orders(10, "c0", seed=3))  # recovers, then takes the batch anew
    assert all(r["status"] == "ACCEPTED" for r in again if r.get("command") == "place")
    assert svc.committed_seq == await store.max_seq(svc.shard_id) == svc.engine.seq  # type: ignore[union-attr]
