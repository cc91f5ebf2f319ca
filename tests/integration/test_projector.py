"""The projector against real PostgreSQL and Ray: killed mid-stream it resumes from its checkpoint
with projections equal to a rebuild from the log (``tradedesk projections rebuild``); a retry of a
client order id the shard has forgotten answers the original result from ``client_orders``."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

import pytest
import ray
from typer.testing import CliRunner

from bench.shard import make_orders
from tests.integration.conftest import assert_projection_matches, db_rows, unique_region, wait_projected

pytestmark = pytest.mark.integration

_TABLES = {
    "orders": "SELECT * FROM orders WHERE shard_id = %s ORDER BY order_id",
    "allocations": "SELECT * FROM allocations WHERE shard_id = %s ORDER BY allocation_id",
    "proposals": "SELECT * FROM proposals WHERE shard_id = %s ORDER BY proposal_id",
    "reservations": "SELECT * FROM reservations WHERE shard_id = %s ORDER BY reservation_id",
    "client_orders": "SELECT * FROM client_orders WHERE shard_id = %s ORDER BY party_id, client_order_id",
}


def _projections(dsn: str, sid: str) -> dict[str, list[dict[str, Any]]]:
    return {t: db_rows(dsn, q, sid) for t, q in _TABLES.items()}


def test_projector_killed_mid_stream_resumes_and_equals_rebuild(td_runtime, pg_dsn):
    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    sid = ray.get(h.info.remote())["shard_id"]
    proj = td_runtime.projector
    first = ray.get(proj.ping.remote())
    cmds = make_orders(region, "cotton", 3000, seed=5, prefix="pk", parties=20)
    done = threading.Event()

    def stream() -> None:
        for j in range(0, len(cmds), 100):
            ray.get(h.submit.remote(cmds[j : j + 100]))
        done.set()

    t = threading.Thread(target=stream)
    t.start()
    # kill the projector once it has projected part of the stream, while the shard keeps writing
    deadline = time.monotonic() + 120
    while not (db_rows(pg_dsn, "SELECT seq FROM projector_checkpoints WHERE shard_id = %s AND seq > 0", sid)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ray.kill(proj, no_restart=False)
    t.join(timeout=300)
    assert done.is_set()
    head = db_rows(pg_dsn, "SELECT max(seq) AS m FROM events WHERE shard_id = %s", sid)[0]["m"]
    wait_projected(pg_dsn, sid)
    after = ray.get(proj.ping.remote())
    assert after["pid"] != first["pid"]  # a new process resumed from the checkpoint
    cp = db_rows(pg_dsn, "SELECT seq FROM projector_checkpoints WHERE shard_id = %s", sid)[0]["seq"]
    assert cp == head
    snap = ray.get(h.engine_snapshot.remote())
    assert_projection_matches(pg_dsn, sid, snap)
    live = _projections(pg_dsn, sid)
    assert len(live["client_orders"]) == len(cmds)
    assert len(live["orders"]) == sum(1 for r in live["client_orders"] if r["status"] == "ACCEPTED")
    assert live["allocations"], "the stream should have traded"

    # the one command rebuilds the shard's projections from the log: the same rows
    res = CliRunner().invoke(_cli(), ["projections", "rebuild", "--shard", sid, "--dsn", pg_dsn, "--json"])
    assert res.exit_code == 0, res.output
    assert f'"{sid}": {head}' in res.output
    rebuilt = _projections(pg_dsn, sid)
    for table, rows in live.items():
        diff = [(a, b) for a, b in zip(rows, rebuilt[table], strict=False) if a != b]
        assert len(rows) == len(rebuilt[table]) and not diff, (table, diff[:2])
    res = CliRunner().invoke(_cli(), ["projections", "rebuild", "--shard", "XX-YY.cotton", "--dsn", pg_dsn])
    assert res.exit_code == 2 and "no shard" in res.output


def _cli() -> Any:
    from gateway.cli import app

    return app


def test_retry_of_a_forgotten_client_order_id_returns_the_original_result(td_runtime, pg_dsn):
    """A shard whose engine has evicted results looks the forgotten keys up in ``client_orders``."""
    from actors.shard_service import ShardService
    from persistence.pg_store import PostgresEventStore
    from persistence.projection_store import init_connection
    from tests.integration.settlement_helpers import project

    region = unique_region()

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        import asyncpg

        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=3, init=init_connection)
        try:
            store = PostgresEventStore(pool)
            svc = ShardService(region, "cotton", store, profile="price_time")
            await store.upsert_shard(svc.shard_id, region, "cotton")
            cmds = make_orders(region, "cotton", 40, seed=8, prefix="ev", parties=4)
            bad = [dataclasses.replace(cmds[0], client_order_id="ev-bad", quantity_kg=0)]
            first = await svc.submit([*cmds, *bad])
            await project(pool, svc.shard_id, region, "cotton")
            eng = svc.engine
            assert eng is not None
            for c in [*cmds, *bad]:  # what eviction leaves: the keys are gone from memory
                del eng.results[(c.party_id, c.client_order_id)]
            eng.evicted_any = True
            retried = await svc.submit([*cmds, *bad])
            fresh = await svc.submit(make_orders(region, "cotton", 2, seed=9, prefix="new", parties=4))
            return first, retried, fresh
        finally:
            await pool.close()

    first, retried, fresh = asyncio.run(run())
    assert [r["duplicate"] for r in retried] == [True] * len(first)
    strip = ("duplicate",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in retried] == [
        {k: v for k, v in r.items() if k not in strip} for r in first
    ]
    assert retried[-1]["status"] == "REJECTED" and retried[-1]["order_id"] is None
    assert [r["duplicate"] for r in fresh] == [False, False]  # unknown keys are placed as new


def test_upgrade_of_a_database_projected_synchronously():
    """A database at 0008 with JSON events and the projection rows the synchronous path wrote: 0009 starts
    its shards at checkpoint 0 and the projector re-projects the log over the old rows (same values)
    and fills ``client_orders``."""
    from alembic import command

    from actors.core import events as ev
    from actors.core.engine import ShardEngine
    from persistence import projections as pj
    from persistence.migrate import _config, apply_migrations
    from persistence.pg_store import PostgresEventStore
    from persistence.projection_store import init_connection
    from persistence.projector import Projector
    from tests.conftest import create_database, drop_database

    name, dsn = create_database()
    region = unique_region()
    try:
        command.upgrade(_config(dsn), "0008")

        async def old_writer() -> str:
            import asyncpg

            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                store = PostgresEventStore(pool)
                eng, mirror = ShardEngine(region, "cotton"), ShardEngine(region, "cotton")
                await store.upsert_shard(eng.shard_id, region, "cotton")
                cmds = make_orders(region, "cotton", 600, seed=12, prefix="up", parties=10)
                for j in range(0, len(cmds), 150):
                    res = eng.process(cmds[j : j + 150])
                    rows = pj.project_page(mirror, res.events)
                    async with pool.acquire() as conn, conn.transaction():  # what 0008's append wrote
                        await conn.copy_records_to_table(
                            "events",
                            records=[
                                (
                                    eng.shard_id,
                                    e.seq,
                                    e.type,
                                    e.schema_version,
                                    ev.payload_to_json(e.payload),
                                    e.ts,
                                )
                                for e in res.events
                            ],
                            columns=("shard_id", "seq", "type", "schema_version", "payload", "ts"),
                        )
                        for table, cols, recs in (
                            ("orders", pj.ORDER_COLS, rows.orders),
                            ("allocations", pj.ALLOCATION_COLS, rows.allocations),
                            ("proposals", pj.PROPOSAL_COLS, rows.proposals),
                            ("reservations", pj.RESERVATION_COLS, rows.reservations),
                        ):
                            marks = ", ".join(f"${i + 1}" for i in range(len(cols)))
                            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols[1:])
                            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"
                            await conn.executemany(
                                f"{sql} ON CONFLICT ({cols[0]}) DO UPDATE SET {sets}", recs
                            )
                return eng.shard_id
            finally:
                await pool.close()

        sid = asyncio.run(old_writer())
        before = {t: db_rows(dsn, q, sid) for t, q in _TABLES.items() if t != "client_orders"}
        assert before["orders"] and before["allocations"]
        assert apply_migrations(dsn) == ["0009_projections", "0010_binary_events"]
        assert db_rows(dsn, "SELECT seq FROM projector_checkpoints WHERE shard_id = %s", sid) == [{"seq": 0}]

        async def project() -> None:
            import asyncpg

            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
            try:
                proj = Projector(pool, page=250)
                while await proj.step():
                    pass
            finally:
                await pool.close()

        asyncio.run(project())
        after = _projections(dsn, sid)
        assert {t: after[t] for t in before} == before
        assert len(after["client_orders"]) == 600
    finally:
        drop_database(name)
