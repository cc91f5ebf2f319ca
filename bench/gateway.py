"""``tradedesk bench gateway``: HTTP throughput and latency of the gateway, load from a separate process.

The benchmark process starts a complete server on 127.0.0.1 (local Ray, runtime over a throw-away
PostgreSQL database, Redis, the FastAPI gateway under uvicorn on a free port), creates two trading
parties with API keys, then runs a load-generator **subprocess** (raw HTTP/1.1 keep-alive over
asyncio, only to 127.0.0.1) through these phases, each bounded in count and time:

1. ``baseline``: ``GET /healthz`` closed loop (the cost of HTTP + the framework alone);
2. ``single_max``: single-order ``POST /v1/orders/availabilities|requirements`` closed loop with
   ``--concurrency`` connections: requests/s and p50/p99 latency;
3. ``single_fixed``: the same requests open loop at a fixed offered rate (``--rate``, default
   1,000 req/s): latency is measured from each request's *scheduled* send time, so queueing counts;
4. ``batch``: ``POST /v1/orders/batch`` with ``--batch-size`` orders per request: orders/s;
5. ``direct_shards`` (in the server process, no HTTP): the same orders straight into the shard
   actors in ``gateway_batch_max``-sized calls: the ceiling the gateway sits on.

Orders alternate seller/buyer of two parties at crossing prices (each requirement allocates against
a resting availability), spread over ``--shards`` regions. A batch request is one party, so batches
alternate: ``--batch-size`` availabilities of one party, then the requirements of the other that
cross them (the book is then up to half a batch deep per shard; ``quality`` ranking scores every
candidate, ``price_time`` walks price levels: ``--profile`` selects which the orders ask for).
Durability is the settings' (``sync``: every answer comes after the PostgreSQL commit). Prints one
JSON object with ``--json``.

Targets on a 2-core machine: >= 2,000 single-order req/s, p99 <= 25 ms at 1,000 req/s offered,
>= 20,000 orders/s through batches. Example::

    tradedesk bench gateway --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from actors.core.regions import REGIONS
from bench import BENCH_REGIONS

# ----------------------------------------------------------------------------- load generator


class _Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None, headers: str) -> int:
        """Status code of one request; 599 for a connection error (the connection is reopened)."""
        try:
            return await self._request(method, path, body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            if self.w is not None:
                self.w.close()
            self.r = self.w = None
            return 599

    async def _request(self, method: str, path: str, body: bytes | None, headers: str) -> int:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.r is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.w.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await self.r.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.r.readexactly(length)
        return status


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summary(lat: list[float], elapsed: float, codes: dict[int, int], n: int) -> dict[str, Any]:
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    return {
        "requests": n,
        "ok": ok,
        "codes": {str(k): v for k, v in sorted(codes.items())},
        "elapsed_s": round(elapsed, 3),
        "req_per_s": round(n / elapsed, 1) if elapsed else 0.0,
        "ok_per_s": round(ok / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(_pct(lat, 0.50) * 1000, 2),
        "p99_ms": round(_pct(lat, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
    }


class _Orders:
    """Unique order bodies: even i = availability of party A, odd i = crossing requirement of B."""

    def __init__(self, regions: list[str], tokens: list[str], tag: str, profile: str | None = None) -> None:
        self.profile = profile
        self.regions = regions
        self.heads = [f"Authorization: Bearer {t}\r\n" for t in tokens]
        self.tag = tag
        self.i = 0

    def order(self, i: int) -> tuple[str, dict[str, Any]]:
        region = self.regions[(i // 2) % len(self.regions)]
        lat, lon = REGIONS[region].center
        loc = {"lat": round(lat, 4), "lon": round(lon, 4), "region": region}
        qty = {"value": 1, "unit": "tonne"}
        extra = {"profile": self.profile} if self.profile else {}
        if i % 2 == 0:
            return "SELL", {
                **extra,
                "client_order_id": f"{self.tag}{i}",
                "commodity": "cotton",
                "quantity": qty,
                "price_paise_per_kg": 7000,
                "location": loc,
                "quality": {"micronaire": 4.2},
            }
        return "BUY", {
            **extra,
            "client_order_id": f"{self.tag}{i}",
            "commodity": "cotton",
            "quantity": qty,
            "max_price_paise_per_kg": 7100,
            "location": loc,
            "quality_ranges": {"micronaire": {"min": 3.5, "max": 4.9}},
        }

    def next_single(self) -> tuple[str, bytes, str]:
        i = self.i
        self.i += 1
        side, body = self.order(i)
        path = "/v1/orders/availabilities" if side == "SELL" else "/v1/orders/requirements"
        return path, json.dumps(body).encode(), self.heads[i % 2]

    def next_batch(self, size: int) -> bytes:
        """``size`` orders alternating SELL/BUY (one party: they rest; for the no-HTTP baseline)."""
        orders = []
        for _ in range(size):
            side, body = self.order(self.i)
            self.i += 1
            orders.append({"side": side, **body})
        return json.dumps({"orders": orders}).encode()

    def next_side_batch(self, size: int) -> tuple[bytes, str]:
        """Batches alternate: ``size`` availabilities of party A, then the ``size`` requirements of
        party B that cross them (a batch request is one API key, so one party). Returns (body, auth)."""
        if self.i % 2 == 0 and not getattr(self, "_pending", None):
            self._base = self.i
            idx = [self._base + 2 * m for m in range(size)]
            self._pending = True
            head = self.heads[0]
        else:
            idx = [self._base + 2 * m + 1 for m in range(size)]
            self.i = self._base + 2 * size
            self._pending = False
            head = self.heads[1]
        orders = []
        for i in idx:
            side, body = self.order(i)
            orders.append({"side": side, **body})
        return json.dumps({"orders": orders}).encode(), head


async def _closed_loop(port: int, conc: int, n: int, max_s: float, make: Any) -> dict[str, Any]:
    lat: list[float] = []
    codes: dict[int, int] = {}
    sent = 0
    deadline = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal sent
        c = _Conn(port)
        while sent < n and time.perf_counter() < deadline:
            sent += 1
            method, path, body, head = make()
            t = time.perf_counter()
            code = await c.request(method, path, body, head)
            lat.append(time.perf_counter() - t)
            codes[code] = codes.get(code, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return _summary(lat, time.perf_counter() - t0, codes, len(lat))


async def _open_loop(port: int, rate: float, seconds: float, conns: int, make: Any) -> dict[str, Any]:
    n = int(rate * seconds)
    q: asyncio.Queue[float | None] = asyncio.Queue()
    lat: list[float] = []
    codes: dict[int, int] = {}

    async def worker() -> None:
        c = _Conn(port)
        while True:
            sched = await q.get()
            if sched is None:
                return
            method, path, body, head = make()
            code = await c.request(method, path, body, head)
            lat.append(time.perf_counter() - sched)
            codes[code] = codes.get(code, 0) + 1

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    t0 = time.perf_counter()
    for i in range(n):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        q.put_nowait(at)
    for _ in workers:
        q.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=seconds + 60)
    res = _summary(lat, time.perf_counter() - t0, codes, len(lat))
    res["offered_per_s"] = rate
    return res


async def _load(cfg: dict[str, Any]) -> dict[str, Any]:
    port = cfg["port"]
    orders = _Orders(cfg["regions"], cfg["tokens"], cfg["tag"], cfg.get("profile"))
    out: dict[str, Any] = {}
    health = ("GET", "/healthz", None, "")
    out["baseline_healthz"] = await _closed_loop(
        port, cfg["concurrency"], cfg["baseline_requests"], cfg["max_phase_s"], lambda: health
    )

    def single() -> tuple[str, str, bytes, str]:
        path, body, head = orders.next_single()
        return "POST", path, body, head

    out["warmup"] = await _closed_loop(port, cfg["concurrency"], 400, cfg["max_phase_s"], single)
    out["single_max"] = await _closed_loop(
        port, cfg["concurrency"], cfg["single_requests"], cfg["max_phase_s"], single
    )
    out["single_fixed"] = await _open_loop(port, cfg["rate"], cfg["fixed_seconds"], cfg["open_conns"], single)
    if orders.i % 2:
        orders.i += 1

    def batch() -> tuple[str, str, bytes, str]:
        body, head = orders.next_side_batch(cfg["batch_size"])
        return "POST", "/v1/orders/batch", body, head

    res = await _closed_loop(port, cfg["batch_concurrency"], cfg["batch_requests"], cfg["max_phase_s"], batch)
    res["orders"] = res["ok"] * cfg["batch_size"]
    res["orders_per_s"] = round(res["orders"] / res["elapsed_s"], 1) if res["elapsed_s"] else 0.0
    out["batch"] = res
    out.pop("warmup")
    return out


# ----------------------------------------------------------------------------- server side


def _server(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any]:
    """Start Ray, the runtime and the gateway; returns (stop callable, load config, settings)."""
    import psycopg2
    import ray

    from actors.runtime import start_runtime
    from actors.settings import Settings
    from gateway.app import ServerThread, create_app
    from persistence.api_keys import ensure_admin_key_async

    dbname = f"td_bench_gw_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{dbname}"')
    dsn = args.dsn.rpartition("/")[0] + "/" + dbname
    ns = f"bench-gw-{uuid.uuid4().hex[:6]}"
    started_ray = False
    if not ray.is_initialized():
        ray.init(
            address=args.ray_address,
            namespace=ns,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        started_ray = args.ray_address is None
    s = Settings(
        ray_namespace=ns,
        durability=args.durability,
        rate_limit_per_s=1e6,
        rate_limit_burst=10**7,
        gateway_batch_window_ms=args.window_ms,
        api_batch_max_orders=max(1000, args.batch_size),
    )
    rt = start_runtime(s, dsn, args.redis)
    import tempfile

    key_dir = tempfile.mkdtemp(prefix="tdbench")
    key_file = os.path.join(key_dir, "admin.key")
    asyncio.run(ensure_admin_key_async(dsn, key_file))
    with open(key_file, encoding="utf-8") as f:
        admin_token = f.read().strip()
    app = create_app(s, dsn, args.redis, key_prefix=f"tdbench:{ns}:", directory=rt.directory)
    srv = ServerThread(app)
    base = srv.start()
    import httpx

    tokens = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60) as c:
        for pid in ("BENCH-A", "BENCH-B"):
            c.post("/v1/admin/parties", json={"party_id": pid, "role": "trader", "kyc_status": "VERIFIED"})
            r = c.post("/v1/admin/api-keys", json={"party_id": pid, "roles": ["trader"]})
            r.raise_for_status()
            tokens.append(r.json()["token"])
    regions = BENCH_REGIONS[: args.shards]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60) as c:
        for reg in regions:  # start the shard actors before timing
            c.post("/v1/admin/shards", json={"region": reg, "commodity": "cotton"}).raise_for_status()
    cfg = {
        "port": srv.port,
        "regions": regions,
        "tokens": tokens,
        "trader": tokens[0],
        "tag": uuid.uuid4().hex[:6],
        "profile": args.profile,
        "concurrency": args.concurrency,
        "open_conns": args.open_conns,
        "baseline_requests": args.baseline_requests,
        "single_requests": args.single_requests,
        "rate": args.rate,
        "fixed_seconds": args.fixed_seconds,
        "batch_size": args.batch_size,
        "batch_requests": args.batch_requests,
        "batch_concurrency": args.batch_concurrency,
        "max_phase_s": args.max_phase_s,
    }

    def stop() -> None:
        srv.stop()
        for a in ray.util.list_named_actors(all_namespaces=True):
            if a.get("namespace") == ns:
                with contextlib.suppress(Exception):
                    ray.kill(ray.get_actor(a["name"], namespace=ns), no_restart=True)
        if started_ray:
            ray.shutdown()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()
        with contextlib.suppress(OSError):
            os.unlink(key_file)
            os.rmdir(key_dir)

    cfg["_runtime"] = rt
    return stop, cfg, s


def _direct_shards(rt: Any, regions: list[str], n: int, batch: int, profile: str | None) -> dict[str, Any]:
    """Baseline without HTTP: the same kind of orders submitted straight to the shard actors in
    ``batch``-sized calls (one call in flight per shard), i.e. the ceiling the gateway sits on."""
    import ray

    from gateway.schemas import BatchIn

    per_shard: dict[str, list[list[Any]]] = {r: [] for r in regions}
    ts = int(time.time() * 1000)
    for r in regions:
        orders = _Orders([r], ["", ""], uuid.uuid4().hex[:6] + "d", profile)
        left = n // len(regions)
        while left > 0:
            k = min(batch, left)
            body = BatchIn.model_validate_json(orders.next_batch(k))
            per_shard[r].append(
                [o.to_command(ts, "BENCH-A" if o.side == "SELL" else "BENCH-B") for o in body.orders]
            )
            left -= k
    handles = {r: rt.shard(r, "cotton") for r in regions}
    t0 = time.perf_counter()
    total = 0
    rounds = max(len(v) for v in per_shard.values())
    for i in range(rounds):
        refs = [handles[r].submit.remote(per_shard[r][i]) for r in regions if i < len(per_shard[r])]
        for res in ray.get(refs):
            total += len(res)
    dt = time.perf_counter() - t0
    return {"orders": total, "batch": batch, "elapsed_s": round(dt, 3), "orders_per_s": round(total / dt, 1)}


def add_server_args(ap: argparse.ArgumentParser) -> None:
    """The loopback server's options (``--dsn``, ``--redis``, ``--ray-address``) and the internal
    ``--load`` (run as the load-generator subprocess), shared by the HTTP benchmarks."""
    ap.add_argument(
        "--dsn",
        default=os.environ.get("TRADEDESK_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="admin DSN; a throw-away database is created next to it",
    )
    ap.add_argument("--redis", default=os.environ.get("TRADEDESK_REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--ray-address", default=os.environ.get("TRADEDESK_RAY_ADDRESS"))
    ap.add_argument("--load", default=None, help=argparse.SUPPRESS)  # internal: run as load generator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tradedesk bench gateway", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--shards", type=int, default=2, help="regions (shards) the orders are spread over")
    ap.add_argument("--concurrency", type=int, default=64, help="connections in closed-loop phases")
    ap.add_argument("--open-conns", type=int, default=128, help="connections in the fixed-rate phase")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered req/s in the fixed-rate phase")
    ap.add_argument("--fixed-seconds", type=float, default=5.0)
    ap.add_argument("--baseline-requests", type=int, default=5000)
    ap.add_argument("--single-requests", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--batch-requests", type=int, default=60)
    ap.add_argument("--batch-concurrency", type=int, default=4)
    ap.add_argument("--max-phase-s", type=float, default=20.0, help="time cap per closed-loop phase")
    ap.add_argument("--direct-orders", type=int, default=4000, help="orders in the no-HTTP shard baseline")
    ap.add_argument(
        "--profile",
        choices=["quality", "price_time"],
        default=None,
        help="ranking profile the orders ask for (default: the commodity's, quality for cotton)",
    )
    ap.add_argument("--window-ms", type=float, default=1.5, help="gateway micro-batch window")
    ap.add_argument("--durability", choices=["sync", "async"], default="sync")
    add_server_args(ap)
    args = ap.parse_args(argv)

    if args.load is not None:
        cfg = json.loads(args.load)
        print(json.dumps(asyncio.run(_load(cfg))))
        return 0

    stop, cfg, s = _server(args)
    rt = cfg.pop("_runtime")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.gateway", "--load", json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=4 * args.max_phase_s + args.fixed_seconds + 120,
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        phases = json.loads(proc.stdout.strip().splitlines()[-1])
        phases["direct_shards"] = _direct_shards(
            rt, cfg["regions"], args.direct_orders, s.gateway_batch_max, args.profile
        )
    finally:
        stop()
    res = {
        "benchmark": "gateway",
        "durability": s.durability,
        "shards": args.shards,
        "profile": args.profile or "commodity default (quality)",
        "window_ms": args.window_ms,
        "cpus": os.cpu_count(),
        "single_order_req_per_s": phases["single_max"]["ok_per_s"],
        "single_max_p50_ms": phases["single_max"]["p50_ms"],
        "single_max_p99_ms": phases["single_max"]["p99_ms"],
        "fixed_rate_offered_per_s": args.rate,
        "fixed_rate_achieved_per_s": phases["single_fixed"]["ok_per_s"],
        "fixed_rate_p50_ms": phases["single_fixed"]["p50_ms"],
        "fixed_rate_p99_ms": phases["single_fixed"]["p99_ms"],
        "batch_orders_per_s": phases["batch"]["orders_per_s"],
        "baseline_healthz_req_per_s": phases["baseline_healthz"]["ok_per_s"],
        "baseline_healthz_p99_ms": phases["baseline_healthz"]["p99_ms"],
        "baseline_direct_shard_orders_per_s": phases["direct_shards"]["orders_per_s"],
        "targets": {"single_order_req_per_s": 2000, "fixed_rate_p99_ms": 25, "batch_orders_per_s": 20000},
        "phases": phases,
    }
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            if k != "phases":
                print(f"{k:>28}: {v}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
