"""A failed commit on the in-memory store: the shard rolls back to its state before the batch (from
the memory checkpoint, not the whole log), no credit stays reserved, and an unknown outcome is told
apart from a definite failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.shard_outcomes import CommitUnknown, ShardUnavailable
from actors.shard_service import ShardService
from persistence.memory_store import MemoryEventStore
from persistence.store import CommitFailed, CommitOutcomeUnknown
from tests.unit.shard_service_helpers import REGION, CreditLedger, FlakyStore, orders


async def _service(store: Any, **kw: Any) -> ShardService:
    svc = ShardService(REGION, "cotton", store, **kw)
    assert await svc.start(wait_s=0)
    return svc


async def _control(batches: list[list[Any]], **kw: Any) -> ShardService:
    """A service that ran ``batches`` without any failure."""
    svc = await _service(MemoryEventStore(), **kw)
    for b in batches:
        await svc.submit(b)
    return svc


@pytest.mark.parametrize("shadow", [True, False], ids=["shadow", "checkpoint"])
async def test_failed_commit_rolls_back_to_pre_batch_state_from_memory(shadow: bool) -> None:
    store = FlakyStore()
    svc = await _service(store, snapshot_every=25, snapshot_mode="inline", shadow=shadow)
    first, second, third = orders(40, "a"), orders(30, "b", seed=8), orders(20, "c", seed=9)
    await svc.submit(first)
    await svc.submit(second)
    if svc.shadow is not None:
        await svc.shadow.wait()
        assert svc.shadow.engine is not None and svc.shadow.engine.seq == svc.committed_seq
    before = await svc.engine_snapshot()
    committed = svc.committed_seq
    store.reads.clear()
    store.fail_before.append(CommitFailed("injected"))
    with pytest.raises(ShardUnavailable, match="nothing acknowledged"):
        await svc.submit(third)
    assert svc.engine.seq > committed  # type: ignore[union-attr]  # memory ran ahead of the log
    assert await svc.engine_snapshot() == before  # rolled back before anything else ran
    info = svc.info()
    assert info["recovery_source"] == ("shadow" if shadow else "memory") and info["failures"] == 1
    assert store.reads == [committed]  # one read after the committed seq: not the whole log
    # the shadow is swapped in; without one, the snapshot in memory + the events since it
    assert info["recovered_events"] == (0 if shadow else committed - svc.last_snapshot_seq)
    # the retry (same client order ids) gives exactly what a run without the failure gives
    retried = await svc.submit(third)
    control = await _control([first, second], snapshot_every=25, snapshot_mode="inline")
    if svc.shadow is not None:  # a new shadow is built after the rollback and keeps up
        await svc.shadow.wait()
        assert svc.shadow.engine is not None
        assert svc.shadow.engine.snapshot() == await svc.engine_snapshot()
    assert retried == await control.submit(third)
    assert await svc.engine_snapshot() == await control.engine_snapshot()


async def test_batches_matched_after_a_failed_one_fail_too() -> None:
    store = FlakyStore()
    svc = await _service(store)
    await svc.submit(orders(20, "p"))
    before = await svc.engine_snapshot()
    store.delay_s = 0.02  # the second batch is matched while the first one commits
    store.fail_before.append(CommitFailed("injected"))
    outcome = await asyncio.gather(
        svc.submit(orders(10, "q", seed=2)), svc.submit(orders(10, "r", seed=3)), return_exceptions=True
    )
    assert [type(o) for o in outcome] == [ShardUnavailable, ShardUnavailable]
    assert await store.max_seq(svc.shard_id) == before["seq"]
    assert await svc.engine_snapshot() == before


async def test_failed_commit_leaves_no_credit_reserved() -> None:
    store = FlakyStore()
    ledger = CreditLedger(limit=10**12)
    svc = await _service(store, decider=ledger)
    await svc.submit(orders(30, "x"))
    held = dict(ledger.exposure)
    assert ledger.total() > 0  # allocations hold credit
    store.fail_before.append(CommitFailed("injected"))
    with pytest.raises(ShardUnavailable):
        await svc.submit(orders(40, "y", seed=4))
    assert {b: v for b, v in ledger.exposure.items() if v} == {b: v for b, v in held.items() if v}
    # after a successful retry the exposure is what a run without the failure holds
    await svc.submit(orders(40, "y", seed=4))
    control_ledger = CreditLedger(limit=10**12)
    await _control([orders(30, "x"), orders(40, "y", seed=4)], decider=control_ledger)
    assert ledger.exposure == control_ledger.exposure
    assert {b: v for b, v in control_ledger.exposure.items() if v} != {b: v for b, v in held.items() if v}


async def test_lost_answer_of_a_committed_batch_is_resolved_as_committed() -> None:
    store = FlakyStore()
    svc = await _service(store)
    store.fail_after.append(CommitOutcomeUnknown("connection lost during COMMIT"))
    results = await svc.submit(orders(20, "w"))  # acknowledged: the store has the batch
    assert all(r["order_id"] for r in results)
    assert svc.committed_seq == await store.max_seq(svc.shard_id) == svc.engine.seq  # type: ignore[union-attr]
    assert svc.info()["failures"] == 0 and not svc.info()["dirty"]


async def test_unknown_outcome_not_committed() -> None:
    store = FlakyStore()
    ledger = CreditLedger(limit=10**12)
    svc = await _service(store, decider=ledger)
    await svc.submit(orders(20, "m"))
    held, before = dict(ledger.exposure), await svc.engine_snapshot()
    store.down_on_fail = True
    store.fail_before.append(CommitOutcomeUnknown("timeout during COMMIT"))
    with pytest.raises(CommitUnknown, match="outcome unknown: retry with the same client_order_id"):
        await svc.submit(orders(30, "n", seed=6))
    assert ledger.total() >= sum(held.values())  # kept until the outcome is known
    store.down = False
    await svc.submit([])  # recovery sees the store: the batch is not there
    assert await svc.engine_snapshot() == before
    assert {b: v for b, v in ledger.exposure.items() if v} == {b: v for b, v in held.items() if v}


async def test_unknown_outcome_committed_then_retry_answers_original() -> None:
    store = FlakyStore()
    svc = await _service(store)
    cmds = orders(20, "z")
    store.down_on_fail = True
    store.fail_after.append(CommitOutcomeUnknown("connection lost during COMMIT"))
    with pytest.raises(CommitUnknown):
        await svc.submit(cmds)
    store.down = False
    retried = await svc.submit(cmds)  # same client order ids: the committed orders answer
    committed = await store.read_events(svc.shard_id, 0)
    assert len(committed) == svc.committed_seq == svc.engine.seq  # type: ignore[union-attr]
    assert all(r["duplicate"] for r in retried)
    control = await _control([cmds])
    assert await svc.engine_snapshot() == await control.engine_snapshot()


async def _commit_in_flight() -> tuple[FlakyStore, ShardService, asyncio.Task[Any]]:
    """A shard after one batch, and a second batch matched whose (slow) commit is in flight."""
    store = FlakyStore()
    svc = await _service(store)
    await svc.submit(orders(10, "h"))
    store.delay_s = 0.05
    task = asyncio.create_task(svc.submit(orders(10, "i", seed=2)))
    await asyncio.sleep(0.01)
    return store, svc, task


async def test_a_cancelled_caller_leaves_its_commit_running() -> None:
    store, svc, task = await _commit_in_flight()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(svc.flush(), 2.0)
    assert svc.info()["unknown"] == 0 and svc.info()["failures"] == 0
    assert svc.committed_seq == await store.max_seq(svc.shard_id) == svc.engine.seq  # type: ignore[union-attr]


async def test_commit_cancelled_midway_never_hangs_the_shard() -> None:
    store, svc, task = await _commit_in_flight()
    assert svc._committer is not None
    svc._committer.cancel()  # as at shutdown
    with pytest.raises(CommitUnknown):
        await task
    assert svc.info()["unknown"] == 1
    store.delay_s = 0.0
    await asyncio.wait_for(svc.submit([]), 2.0)  # recovers instead of waiting forever
    assert svc.committed_seq == await store.max_seq(svc.shard_id) == svc.engine.seq  # type: ignore[union-attr]
