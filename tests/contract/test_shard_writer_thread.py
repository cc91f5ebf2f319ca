"""The shard writer's commit thread (persistence/shard_writer.py): appends run on a loop of their
own, started by the first append and ended by ``aclose``; a writer used after ``aclose`` starts a
new one. Real PostgreSQL (the contract suite's database)."""

from __future__ import annotations

import threading
from typing import Any

from bench.shard import make_orders
from persistence.event_store import batch_rows
from persistence.shard_writer import ShardWriter
from tests.integration.conftest import unique_region


async def _events(region: str, n: int, seed: int) -> list[Any]:
    from actors.core.engine import ShardEngine

    eng = ShardEngine(region, "cotton", profile="price_time")
    return eng.execute(make_orders(region, "cotton", n, seed=seed)).events


async def test_appends_run_in_the_commit_thread_until_aclose(contract_dsn: str) -> None:
    region = unique_region()
    events = await _events(region, 40, 1)
    sid = f"{region}.cotton"
    half = len(events) // 2
    writer = ShardWriter(contract_dsn, name="td-writer:thread-test")
    assert writer._thread is None  # nothing started before the first append
    await writer.append(batch_rows(sid, events[:half]))
    first = writer._thread
    assert first is not None and first.thread.is_alive() and first.thread is not threading.current_thread()
    assert first.thread.name == "commit:td-writer:thread-test"
    await writer.aclose()
    first.thread.join(5)
    assert not first.thread.is_alive() and writer._thread is None
    await writer.append(batch_rows(sid, events[half:]))  # after aclose: a new thread, same log
    assert writer._thread is not None and writer._thread is not first
    stored = await writer.read_events(sid, 0)
    assert [r[0] for r in stored] == [e.seq for e in events]
    await writer.aclose()
