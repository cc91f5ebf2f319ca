"""The :class:`persistence.store.EventStore` contract, run on the in-memory and the PostgreSQL store:
atomic append, fencing on (shard_id, seq), reads after a seq, snapshots, the shards registry, and
the values PostgreSQL refuses (NUL) failing the batch as a definite :class:`CommitFailed`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from actors.core.engine import ShardEngine
from bench.shard import make_orders
from persistence.event_store import BatchRows, batch_rows, decode_event, encode_snapshot, event_row
from persistence.store import CommitFailed, CommitOutcomeUnknown, SeqConflict, StoreError


def _batches(region: str, n: int, size: int) -> tuple[ShardEngine, list[BatchRows]]:
    """Real engine batches of ``n`` cotton orders, ``size`` per batch, as rows."""
    eng = ShardEngine(region, "cotton")
    out = []
    cmds = make_orders(region, "cotton", n, seed=11, prefix="c")
    for j in range(0, n, size):
        res = eng.process(cmds[j : j + size])
        out.append(batch_rows(eng.shard_id, res.events))
    return eng, out


def _key(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Events as (seq, type, ts, schema_version, typed payload) read back through the one decoder."""
    return [(r[0], r[1], r[2], r[3], decode_event(r).payload) for r in rows]


def _expected(batches: list[BatchRows]) -> list[tuple[Any, ...]]:
    return [(e[1], e[2], e[5], e[3], decode_event(event_row(e)).payload) for b in batches for e in b.events]


async def test_append_and_read_back(store: Any, region: str) -> None:
    eng, batches = _batches(region, 60, 20)
    sid = eng.shard_id
    assert await store.max_seq(sid) == 0
    assert await store.read_events(sid, 0) == []
    for b in batches:
        assert await store.append(b) == b.last_seq
    assert await store.max_seq(sid) == eng.seq
    rows = await store.read_events(sid, 0)
    assert [r[0] for r in rows] == list(range(1, eng.seq + 1))
    assert _key(rows) == _expected(batches)
    assert await store.append(BatchRows(sid)) == 0  # empty batch: nothing to do


async def test_read_after_seq_with_limit(store: Any, region: str) -> None:
    eng, batches = _batches(region, 40, 10)
    for b in batches:
        await store.append(b)
    got = await store.read_events(eng.shard_id, 10, 5)
    assert [r[0] for r in got] == [11, 12, 13, 14, 15]
    assert await store.read_events(eng.shard_id, eng.seq) == []
    tail = await store.read_events(eng.shard_id, eng.seq - 3)
    assert [r[0] for r in tail] == [eng.seq - 2, eng.seq - 1, eng.seq]


async def test_fencing_rejects_stale_duplicate_and_gap(store: Any, region: str) -> None:
    eng, batches = _batches(region, 60, 20)
    sid = eng.shard_id
    await store.append(batches[0])
    await store.append(batches[1])
    before = await store.read_events(sid, 0)
    # a stale writer re-sends batch 1 glued to batch 2: the overlap fails the whole batch
    stale = BatchRows(sid, events=batches[1].events + batches[2].events, last_seq=batches[2].last_seq)
    with pytest.raises(SeqConflict):
        await store.append(stale)
    with pytest.raises(SeqConflict):  # the very same batch again
        await store.append(batches[1])
    gap = dataclasses.replace(batches[2], events=batches[2].events[1:])
    with pytest.raises(SeqConflict):  # does not follow the committed seq
        await store.append(gap)
    assert await store.read_events(sid, 0) == before
    assert await store.append(batches[2]) == batches[2].last_seq
    assert await store.max_seq(sid) == eng.seq


async def test_concurrent_writers_of_one_seq(store: Any, region: str) -> None:
    """Two instances of a shard write their own batch at the same seq: exactly one wins."""
    eng_a, (a1, *_) = _batches(region, 20, 20)
    _eng_b, (b1, *_) = _batches(region, 10, 10)
    outcome = await asyncio.gather(store.append(a1), store.append(b1), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcome) == ["SeqConflict", "int"]
    winner = a1 if isinstance(outcome[0], int) else b1
    assert _key(await store.read_events(eng_a.shard_id, 0)) == _expected([winner])


async def test_unstorable_batch_fails_definitely_and_writes_nothing(store: Any, region: str) -> None:
    eng, batches = _batches(region, 40, 20)
    sid = eng.shard_id
    await store.append(batches[0])
    b = batches[1]
    sid_, seq, typ, sv, body, ts = b.events[0]
    assert isinstance(body, bytes)  # the payload is binary: a text column refuses NUL, bytea does not
    bad_type = dataclasses.replace(b, events=[(sid_, seq, typ + "\x00", sv, body, ts), *b.events[1:]])
    for bad in (bad_type,):
        with pytest.raises(CommitFailed) as info:
            await store.append(bad)
        assert not isinstance(info.value, SeqConflict)
        assert await store.max_seq(sid) == batches[0].last_seq
    assert await store.append(b) == b.last_seq  # the same seqs are still free


def test_error_kinds() -> None:
    """Definite failures and unknown outcomes are different types under one base."""
    assert issubclass(SeqConflict, CommitFailed) and issubclass(CommitFailed, StoreError)
    assert issubclass(CommitOutcomeUnknown, StoreError) and not issubclass(CommitOutcomeUnknown, CommitFailed)


async def test_snapshots_latest_wins(store: Any, region: str) -> None:
    eng, batches = _batches(region, 40, 20)
    sid = eng.shard_id
    assert await store.latest_snapshot(sid) is None
    await store.append(batches[0])
    first = encode_snapshot(eng.snapshot())
    await store.save_snapshot(sid, batches[0].last_seq, first)
    await store.save_snapshot(sid, batches[0].last_seq, encode_snapshot({"other": 1}))  # no-op
    assert await store.latest_snapshot(sid) == (batches[0].last_seq, first)
    text = json.dumps({"seq": batches[1].last_seq})
    await store.save_snapshot(sid, batches[1].last_seq, text)
    seq, state = await store.latest_snapshot(sid)
    assert seq == batches[1].last_seq and json.loads(state) == {"seq": batches[1].last_seq}


async def test_shards_registry(store: Any, region: str) -> None:
    a, b = f"{region}.cotton", f"{region}.wheat"
    await store.upsert_shard(b, region, "wheat")
    await store.upsert_shard(a, region, "cotton", "ACTIVE", "node-1")
    await store.upsert_shard(a, region, "cotton", "DRAINED")  # node kept when not given
    rows = [r for r in await store.list_shards() if r["shard_id"] in (a, b)]
    assert rows == [
        {"shard_id": a, "region": region, "commodity": "cotton", "status": "DRAINED", "node_id": "node-1"},
        {"shard_id": b, "region": region, "commodity": "wheat", "status": "ACTIVE", "node_id": None},
    ]
