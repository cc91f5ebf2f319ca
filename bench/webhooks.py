"""``tradedesk bench webhooks``: committed events to signed webhook deliveries, end to end.

One endpoint of one party on a local receiver (aiohttp on 127.0.0.1, answering 204, in the same
process and event loop as the dispatcher); ``--events`` ALLOCATED events naming the party are
committed through the event store in batches of ``--batch`` while a dispatcher runs (fan-out,
claim, sign, POST, record: every delivery's state in PostgreSQL). Reports:

- ``deliveries_per_s``: events / (last receipt - first commit);
- ``p50_ms`` / ``p99_ms``: latency from an event's commit to its receipt;
- ``cpu_ms_per_delivery``: process CPU time (dispatcher, receiver and committer) per delivery;
- ``baseline_*``: the same number of signed POSTs sent straight by the same HTTP client with the
  same concurrency, no database, measured in the same run: what the outbox's state machine costs.

Example::

    tradedesk bench webhooks --events 2000 --json
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Annotated, Any

import msgspec
import typer

from bench import JsonOut, emit
from bench.cleanup import Started
from bench.shard import _dsn, percentile

STREAM = "IN-GJ.cotton"
PARTY = "BENCH-B"


def allocated_json(n: int, buyer: str = PARTY, seller: str = "BENCH-S", stream: str = STREAM) -> str:
    """The JSON payload of the ``n``-th ALLOCATED event of ``stream`` as a shard writes it: 1,700 kg
    at 7,000 paise/kg between ``buyer`` and ``seller``."""
    from actors.core import events as ev

    return ev.payload_to_json(
        ev.Allocated(
            buy_order_id=f"O-{stream}-{2 * n}",
            sell_order_id=f"O-{stream}-{2 * n + 1}",
            buyer_id=buyer,
            seller_id=seller,
            taker_order_id=f"O-{stream}-{2 * n}",
            taker_side="BUY",
            taker_command="place",
            quantity_kg=1700,
            price=7000,
            score=1.0,
            breakdown={"price": 1.0},
            risk={"outcome": "PASS"},
            allocation_id=f"A-{stream}-{n}",
        )
    )


async def _receiver(arrivals: dict[int, float]) -> tuple[Any, str]:
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        arrivals.setdefault(int(body["data"]["seq"]), time.perf_counter())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook"


async def _run(dsn: str, n: int, batch: int) -> dict[str, Any]:
    import asyncpg
    from cryptography.fernet import Fernet

    from gateway.webhooks.dispatcher import DispatchConfig, Dispatcher, sign
    from gateway.webhooks.secrets import SecretBox, new_secret
    from persistence.event_store import BatchRows
    from persistence.pg_store import PostgresEventStore
    from persistence.webhooks import WebhookRepo

    box = SecretBox(Fernet.generate_key())
    cfg = DispatchConfig(poll_s=0.02)
    arrivals: dict[int, float] = {}
    runner, url = await _receiver(arrivals)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    out: dict[str, Any] = {"bench": "webhooks", "events": n, "batch": batch, "concurrency": cfg.concurrency}
    try:
        secret = new_secret()
        await WebhookRepo(pool).create("WH-bench", PARTY, url, ["allocation"], None, box.seal(secret))
        store = PostgresEventStore(pool)
        payloads = [msgspec.msgpack.encode(json.loads(allocated_json(i))) for i in range(1, n + 1)]
        committed: dict[int, float] = {}
        d = Dispatcher(pool, box, cfg)
        await d.start()
        cpu0 = time.process_time()
        for j in range(0, n, batch):
            rows = BatchRows(STREAM)
            for i in range(j, min(n, j + batch)):
                rows.events.append((STREAM, i + 1, "ALLOCATED", 1, payloads[i], 1_762_761_600_000 + i))
            rows.last_seq = min(n, j + batch)
            await store.append(rows)
            now = time.perf_counter()
            for i in range(j, min(n, j + batch)):
                committed[i + 1] = now
        deadline = time.monotonic() + 600
        while len(arrivals) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu0
        await d.stop()
        lat = [(arrivals[s] - committed[s]) * 1000 for s in arrivals]
        span = max(arrivals.values()) - min(committed.values())
        out.update(
            delivered=len(arrivals),
            deliveries_per_s=round(len(arrivals) / span, 1),
            p50_ms=round(percentile(lat, 50), 1),
            p99_ms=round(percentile(lat, 99), 1),
            cpu_ms_per_delivery=round(cpu * 1000 / max(1, len(arrivals)), 3),
        )
        # baseline: the same signed POSTs straight from the same kind of client, no database
        arrivals.clear()
        client = d.client()
        sem = asyncio.Semaphore(cfg.concurrency)
        base_lat: list[float] = []

        async def post(i: int) -> None:
            body = json.dumps({"type": "ALLOCATED", "data": {"seq": i, "event": json.loads(payloads[i - 1])}})
            async with sem:
                t = time.perf_counter()
                headers = sign([secret], f"msg_{i}", datetime.now(UTC), body)
                r = await client.post(
                    url, content=body, headers={**headers, "content-type": "application/json"}
                )
                r.raise_for_status()
                base_lat.append((time.perf_counter() - t) * 1000)

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(1, n + 1)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await client.aclose()
        out.update(
            baseline_posts_per_s=round(n / elapsed, 1),
            baseline_p50_ms=round(percentile(base_lat, 50), 2),
            baseline_p99_ms=round(percentile(base_lat, 99), 2),
            baseline_cpu_ms_per_post=round(cpu * 1000 / n, 3),
        )
        out["ratio_vs_baseline"] = round(out["deliveries_per_s"] / out["baseline_posts_per_s"], 2)
    finally:
        await pool.close()
        await runner.cleanup()
    return out


def main(args: SimpleNamespace) -> int:
    """Run with the options of :func:`command`; print a JSON object or a table. Returns 0."""
    from persistence.migrate import apply_migrations

    with Started() as started:
        dsn = _dsn(args, started)
        apply_migrations(dsn)
        out = asyncio.run(_run(dsn, args.events, args.batch))
    emit(out, args.json)
    return 0


def command(
    events: Annotated[int, typer.Option(help="events committed (one delivery each)", min=1)] = 2000,
    batch: Annotated[int, typer.Option(help="events per committed batch", min=1)] = 100,
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL URL (default TRADEDESK_DATABASE_URL or embedded)")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Committed events to signed webhook deliveries vs the same POSTs without the outbox."""
    raise typer.Exit(main(SimpleNamespace(events=events, batch=batch, dsn=dsn, json=json_out)))


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
