"""Runtime fixtures for integration tests: a tradedesk runtime (persistence actor + shard directory)
in its own Ray namespace over the module's fresh database, torn down after the module, plus helpers
shared by the runtime tests."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from actors.core.events import Event
from persistence.event_store import decode_event, stored_payload

_EVENT_SQL = (
    "SELECT seq, type, ts, schema_version, body, payload::text FROM events WHERE shard_id = %s ORDER BY seq"
)


_UNUSED_REGIONS: list[str] = []


def unique_region() -> str:
    """A real ISO 3166-2 code (outside India) no other test of the session uses, so shard ids and
    Redis channels stay private to a test."""
    if not _UNUSED_REGIONS:
        from actors.core.regions import REGIONS, iso_subdivision_codes

        codes = sorted(iso_subdivision_codes() - set(REGIONS))
        random.Random(uuid.uuid4().int).shuffle(codes)
        _UNUSED_REGIONS.extend(codes)
    return _UNUSED_REGIONS.pop()


def kill_namespace(namespace: str) -> None:
    """Kill every named actor of ``namespace`` for good."""
    import ray

    for a in ray.util.list_named_actors(all_namespaces=True):
        if a.get("namespace") == namespace:
            with contextlib.suppress(Exception):
                ray.kill(ray.get_actor(a["name"], namespace=namespace), no_restart=True)


def start_test_runtime(dsn: str, redis_url: str | None = None, decider: Any = None, **overrides: Any) -> Any:
    """A runtime in a fresh namespace; ``overrides`` go to :class:`actors.settings.Settings`;
    ``decider`` is the shards' risk decider (None: pass-all).

    The harness opens shards for any real region (``shard_creation="any"``: tests use
    :func:`unique_region`, outside India), never stops idle shards and has room for every shard a
    test module opens; tests of the shard policy override these."""
    from actors.runtime import start_runtime
    from actors.settings import Settings

    fields: dict[str, Any] = {
        "ray_namespace": f"tdt-{uuid.uuid4().hex[:10]}",
        "durability": "sync",
        "snapshot_every": 40,
        "snapshot_check_s": 0.2,
        "shard_creation": "any",
        "max_shards_per_node": 10_000,
        "shard_idle_timeout_s": 0,
    }
    fields.update(overrides)
    return start_runtime(Settings(**fields), dsn, redis_url=redis_url, decider=decider)


@pytest.fixture(scope="module")
def td_runtime(ray_session: None, pg_dsn: str) -> Iterator[Any]:
    """Runtime over the module's database, sync durability, a background snapshot every 40 events
    (the snapshotter looks every 0.2 s), Redis fan-out to the machine's Redis."""
    from tests.conftest import REDIS_URL

    rt = start_test_runtime(pg_dsn, redis_url=REDIS_URL)
    yield rt
    kill_namespace(rt.namespace)


STREAM_BATCH = 10  # orders per batch of :func:`stream_orders`


def stream_orders(
    handle: Any,
    cmds: list[Any],
    acked: dict[str, dict[str, Any]],
    errors: list[str],
    stop_after: float = 120.0,
    pause_s: float = 0.05,
) -> None:
    """Submit ``cmds`` to a shard handle in batches of :data:`STREAM_BATCH`; a failed batch (actor
    died or restarting, store down) is sent again with the same client order ids until acknowledged.
    Results go to ``acked`` by client order id (the first answer kept), each failure to ``errors`` as
    ``"<exception type>: <message>"``; raises the last failure after ``stop_after`` seconds."""
    import ray

    deadline = time.monotonic() + stop_after
    for j in range(0, len(cmds), STREAM_BATCH):
        batch = cmds[j : j + STREAM_BATCH]
        while True:
            try:
                for r in ray.get(handle.submit.remote(batch), timeout=60):
                    acked.setdefault(r["client_order_id"], r)
                break
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause_s)


def db_events(dsn: str, shard_id: str) -> list[Event]:
    """Every committed event of a shard, by seq."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(_EVENT_SQL, (shard_id,))
            return [
                decode_event((s, t, ts, v, stored_payload(None if b is None else bytes(b), p)))
                for s, t, ts, v, b, p in cur.fetchall()
            ]
    finally:
        conn.close()


def db_rows(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query as dicts."""
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, args)
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def replay(region: str, commodity: str, events: list[Event]) -> Any:
    """A fresh engine with the whole log applied."""
    from actors.core.engine import ShardEngine

    eng = ShardEngine(region, commodity)
    for e in events:
        eng.apply(e)
    return eng


def assert_gap_free(events: list[Event]) -> None:
    """Seqs are exactly 1..n."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


_BEHIND_SQL = (
    "SELECT h.shard_id, h.head, coalesce(c.seq, 0) AS seq FROM (SELECT e.shard_id, max(e.seq) AS head"
    " FROM events e JOIN shards s ON s.shard_id = e.shard_id GROUP BY 1) h"
    " LEFT JOIN projector_checkpoints c ON c.shard_id = h.shard_id"
    " WHERE coalesce(c.seq, 0) < h.head AND (%s::text IS NULL OR h.shard_id = %s)"
)


def wait_projected(dsn: str, shard_id: str | None = None, timeout_s: float = 60.0) -> None:
    """Wait until the projector has passed every committed event of ``shard_id`` (None: of every
    shard); fails the test after ``timeout_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        behind = db_rows(dsn, _BEHIND_SQL, shard_id, shard_id)
        if not behind:
            return
        assert time.monotonic() < deadline, f"projector behind: {behind}"
        time.sleep(0.02)


def assert_projection_matches(dsn: str, shard_id: str, snapshot: dict[str, Any]) -> None:
    """The ``orders`` projection of a shard (once the projector has passed its log) equals the
    engine's orders, field by field (the projection also keeps the closed orders that left the
    engine's retention window)."""
    wait_projected(dsn, shard_id)
    rows = db_rows(
        dsn,
        "SELECT order_id, open_kg, allocated_kg, reserved_kg, cancelled_kg, expired_kg, "
        "status, price, quantity_kg, doc FROM orders WHERE shard_id = %s",
        shard_id,
    )
    by_id = {r["order_id"]: r for r in rows}
    book = {o["order_id"]: o for o in snapshot["orders"]}
    if snapshot.get("retention", {}).get("evicted_any"):
        assert set(book) <= set(by_id)
    else:
        assert set(by_id) == set(book)
    for oid, o in book.items():
        r = by_id[oid]
        for f in (
            "open_kg",
            "allocated_kg",
            "reserved_kg",
            "cancelled_kg",
            "expired_kg",
            "status",
            "price",
            "quantity_kg",
        ):
            assert r[f] == o[f], (oid, f, r[f], o[f])
        assert r["doc"] == o, oid


@pytest.fixture(scope="module")
def gw(ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real gateway (uvicorn thread) over a fresh runtime and the module's database."""
    from tests.conftest import REDIS_URL
    from tests.integration.gateway_server import Gateway

    g = Gateway(pg_dsn, REDIS_URL, tmp_path_factory.mktemp("keys"))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw_risk(ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real gateway over a fresh runtime whose shards ask a real risk pool (Ray Serve, rules
    only: no models registered; BLOCK beyond 7 days past due) over the module's database, with the
    settlement host (no wall-clock sweep: tests sweep through the API); ``gw_risk.risk`` is the
    pool's client."""
    from ray import serve

    from actors.risk_pool import deploy_risk_pool
    from actors.settings import Settings
    from persistence.migrate import apply_migrations
    from tests.conftest import REDIS_URL
    from tests.integration.gateway_server import Gateway

    apply_migrations(pg_dsn)
    app = f"risk-{uuid.uuid4().hex[:6]}"
    prefix = f"tdrk:{uuid.uuid4().hex[:8]}:"
    settings = Settings(risk_min_replicas=1, risk_max_replicas=1, risk_overdue_block_days=7)
    risk = deploy_risk_pool(settings, pg_dsn, REDIS_URL, prefix=prefix, num_cpus=0.25, app_name=app)
    runtime = {"key_prefix": prefix, "settlement_tail_s": 0.1, "settlement_sweep_s": 0}
    g = Gateway(pg_dsn, REDIS_URL, tmp_path_factory.mktemp("keys"), runtime=runtime, decider=risk)
    yield g
    g.stop()
    serve.delete(app)
