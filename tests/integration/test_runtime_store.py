"""The event store and persistence actor against real PostgreSQL: a stale writer of an existing seq
is rejected with nothing written; COPY and executemany write identical event rows; migrations are
idempotent; with no database URL an embedded PostgreSQL (pgserver) is started and used."""

from __future__ import annotations

import pytest
import ray

from actors.core.engine import ShardEngine
from bench.shard import make_orders
from persistence import event_store as es
from persistence.migrate import apply_migrations, current_version
from persistence.pg_store import PostgresEventStore
from tests.integration.conftest import db_rows, unique_region

pytestmark = pytest.mark.integration


def _batches(region: str, n: int, size: int) -> tuple[ShardEngine, list[es.BatchRows]]:
    eng = ShardEngine(region, "cotton")
    out = []
    cmds = make_orders(region, "cotton", n, seed=4, prefix="w")
    for j in range(0, n, size):
        res = eng.process(cmds[j : j + size])
        out.append(es.batch_rows(eng.shard_id, res.events))
    return eng, out


def test_stale_writer_rejected_atomically(td_runtime, pg_dsn):
    region = unique_region()
    eng, batches = _batches(region, 60, 20)
    p = td_runtime.persistence
    assert ray.get(p.append.remote(batches[0])) == batches[0].last_seq
    assert ray.get(p.append.remote(batches[1])) == batches[1].last_seq
    q = "SELECT seq, type FROM events WHERE shard_id = %s ORDER BY 1"
    before = db_rows(pg_dsn, q, eng.shard_id)
    # a stale writer re-sends batch 1 glued to batch 2: the overlap must fail the whole transaction
    stale = es.BatchRows(
        eng.shard_id, events=batches[1].events + batches[2].events, last_seq=batches[2].last_seq
    )
    with pytest.raises(Exception, match="(?i)unique|duplicate|seq conflict"):
        ray.get(p.append.remote(stale))
    assert db_rows(pg_dsn, q, eng.shard_id) == before
    assert ray.get(p.append.remote(batches[2])) == batches[2].last_seq
    assert ray.get(p.max_seq.remote(eng.shard_id)) == eng.seq


async def test_copy_and_executemany_write_the_same(pg_dsn):
    import asyncpg

    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        tables = {}
        for method in ("copy", "executemany"):
            region = unique_region()
            eng, batches = _batches(region, 80, 25)
            store = PostgresEventStore(pool, method)
            for b in batches:
                await store.append(b)
            sid = eng.shard_id
            q_ev = "SELECT seq, type, body, ts FROM events WHERE shard_id=$1 ORDER BY 1"
            async with pool.acquire() as conn:
                ev = await conn.fetch(q_ev, sid)
            tables[method] = [(r[0], r[1], es.payload_json(r[2]).replace(region, "REGION"), r[3]) for r in ev]
            assert len(ev) == eng.seq
            got = await store.read_events(eng.shard_id, 10, 5)
            assert [r[0] for r in got] == [11, 12, 13, 14, 15]
        assert tables["copy"] == tables["executemany"]
    finally:
        await pool.close()


def test_migrations_idempotent(pg_dsn):
    v = current_version(pg_dsn)
    assert v >= 1
    assert apply_migrations(pg_dsn) == []
    assert current_version(pg_dsn) == v


def test_embedded_postgres_when_no_url(tmp_path):
    from actors.settings import Settings
    from persistence.embedded import ensure_database, stop_embedded

    s = Settings(database_url=None, data_dir=tmp_path)
    dsn = ensure_database(s)
    try:
        assert dsn.startswith("postgres")
        assert "0001_core" in apply_migrations(dsn)
        assert ensure_database(s) == dsn  # reused
        assert (
            ensure_database(Settings(database_url="postgresql://x/y", data_dir=tmp_path))
            == "postgresql://x/y"
        )
    finally:
        stop_embedded(tmp_path / "pgdata", delete=True)
