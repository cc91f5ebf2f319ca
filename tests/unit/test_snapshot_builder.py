"""Background snapshots on the in-memory store: the due rule (size, time, nothing new), a
background-mode shard takes no snapshot in its batches while an inline one does, the builder's
snapshot equals the shard engine's at that seq, and the shard moves its rollback checkpoint onto it."""

from __future__ import annotations

from typing import Any

import pytest

from actors.shard_outcomes import ShardUnavailable
from actors.shard_service import ShardService
from actors.snapshot_builder import SnapshotBuilder, snapshot_due
from persistence.event_store import decode_snapshot
from persistence.memory_store import MemoryEventStore
from persistence.store import CommitFailed, SnapshotPosition
from tests.unit.shard_service_helpers import REGION, FlakyStore, orders


class Clock:
    """A settable epoch-seconds clock for the memory store."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _service(store: Any, **kw: Any) -> ShardService:
    svc = ShardService(REGION, "cotton", store, **kw)
    assert await svc.start(wait_s=0)
    await store.upsert_shard(svc.shard_id, REGION, "cotton")
    return svc


async def _feed(svc: ShardService, cmds: list[Any], size: int) -> dict[int, dict[str, Any]]:
    """Submit ``cmds`` in batches; the engine snapshot after each batch, by committed seq."""
    live: dict[int, dict[str, Any]] = {}
    for j in range(0, len(cmds), size):
        await svc.submit(cmds[j : j + size])
        live[svc.committed_seq] = await svc.engine_snapshot()
    return live


def test_due_rule_by_size_or_time() -> None:
    def pos(snap: int, head: int, since: float | None) -> SnapshotPosition:
        return SnapshotPosition("IN-GJ.cotton", REGION, "cotton", snap, head, since)

    assert snapshot_due(pos(0, 0, None), 50, 60) is None  # no event at all
    assert snapshot_due(pos(100, 149, 59.9), 50, 60) is None  # 49 new events, 59.9 s
    assert snapshot_due(pos(100, 150, 0.0), 50, 60) == "size"
    assert snapshot_due(pos(100, 101, 60.0), 50, 60) == "time"
    assert snapshot_due(pos(100, 100, 1e9), 50, 60) is None  # nothing new: never, however old
    assert snapshot_due(pos(0, 10, 61.0), 50, 60) == "time"  # no snapshot yet: since the first event
    assert snapshot_due(pos(100, 10_000, 1e9), 0, 0) is None  # both rules off
    assert snapshot_due(pos(100, 10_000, 0.0), 0, 60) is None  # size rule off
    assert snapshot_due(pos(100, 101, 1e9), 50, 0) is None  # time rule off


async def test_builder_due_rule_on_the_memory_store() -> None:
    store = MemoryEventStore()
    store.clock = clock = Clock()
    svc = await _service(store, snapshot_every=0)
    builder = SnapshotBuilder(store, every=50, interval_s=60.0)
    assert await builder.run_once() == []  # registered, no event yet
    await svc.submit(orders(10, "t"))
    (p,) = await store.snapshot_positions()
    assert (p.snapshot_seq, p.head_seq, p.since_s) == (0, svc.committed_seq, 0.0)
    assert 0 < p.new_events < 50 and builder.due(p) is None
    assert await builder.run_once() == []
    clock.now += 60.0  # the time rule: 60 s since the first event, fewer than 50 events
    (by_time,) = await builder.run_once()
    assert (by_time.reason, by_time.seq, by_time.base_seq) == ("time", svc.committed_seq, 0)
    clock.now += 3600.0  # nothing new since: however long, no snapshot
    assert await builder.run_once() == []
    await svc.submit(orders(5, "u", seed=2))  # then one batch, an hour after the last snapshot: due
    (late,) = await builder.run_once()
    assert (late.reason, late.seq, late.base_seq) == ("time", svc.committed_seq, by_time.seq)
    n = 0
    while (await store.snapshot_positions())[0].new_events < 50:  # the size rule, with no time passing
        assert await builder.run_once() == []
        n += 1
        await svc.submit(orders(10, f"s{n}-", seed=n))
    (by_size,) = await builder.run_once()
    assert (by_size.reason, by_size.seq, by_size.base_seq) == ("size", svc.committed_seq, late.seq)
    p = (await store.snapshot_positions())[0]
    assert (p.snapshot_seq, p.new_events, p.since_s) == (svc.committed_seq, 0, 0.0)
    assert builder.info()["builds"] == 3 and builder.info()["errors"] == 0


@pytest.mark.parametrize("mode", ["background", "inline"])
async def test_background_shard_takes_no_snapshot_in_its_batches(mode: str) -> None:
    store = MemoryEventStore()
    svc = await _service(store, snapshot_every=30, snapshot_mode=mode)
    await _feed(svc, orders(120, "b"), 10)
    await svc.flush()
    taken = sorted(store.snapshots.get(svc.shard_id, {}))
    if mode == "background":
        assert taken == [] and svc.info()["last_snapshot_seq"] == 0
        assert svc.info()["snapshot_mode"] == "background"
    else:
        assert len(taken) >= 3 and svc.last_snapshot_seq == taken[-1]
    # snapshot_now (drain, handover, shutdown) writes one in either mode
    assert await svc.snapshot_now() == svc.committed_seq
    assert max(store.snapshots[svc.shard_id]) == svc.committed_seq


async def test_builder_snapshot_equals_the_shard_engine_and_becomes_its_checkpoint() -> None:
    store = FlakyStore()
    svc = await _service(store, snapshot_every=60)  # background: the shard looks every 30 events
    builder = SnapshotBuilder(store, every=60, interval_s=0)
    live = await _feed(svc, orders(60, "a"), 10)
    (first,) = await builder.run_once()
    assert decode_snapshot(store.snapshots[svc.shard_id][first.seq]) == live[first.seq]
    live.update(await _feed(svc, orders(60, "b", seed=7), 10))
    await svc.flush()  # the shard has read the builder's snapshot back
    assert svc.info()["last_snapshot_seq"] == first.seq
    assert svc._checkpoint is not None and svc._checkpoint.seq == first.seq
    assert [r[0] for r in svc._checkpoint.rows] == list(range(first.seq + 1, svc.committed_seq + 1))
    (second,) = await builder.run_once()  # from the first snapshot plus the events after it
    assert (second.base_seq, second.seq) == (first.seq, svc.committed_seq)
    assert decode_snapshot(store.snapshots[svc.shard_id][second.seq]) == live[second.seq]
    # a failed commit rolls back from the checkpoint on the builder's snapshot, not the whole log
    before, committed = await svc.engine_snapshot(), svc.committed_seq
    store.fail_before.append(CommitFailed("injected"))
    with pytest.raises(ShardUnavailable):
        await svc.submit(orders(10, "c", seed=9))
    await svc.submit([])
    info = svc.info()
    assert info["recovery_source"] == "memory"
    assert info["recovered_events"] == committed - first.seq
    assert await svc.engine_snapshot() == before
    # a new instance recovers from the builder's latest snapshot plus nothing
    again = await _service(store, snapshot_every=60)
    assert again.info()["last_snapshot_seq"] == second.seq == committed
    assert again.info()["recovered_events"] == 0
    assert await again.engine_snapshot() == before
