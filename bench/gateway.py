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
Durability is the settings' (``sync``: every answer comes after the PostgreSQL commit). The gateway
runs as ``--workers`` processes (``python -m gateway.workers``, what ``serve --workers`` runs; 0 = a
thread of the benchmark process); each phase reports the gateway processes' CPU microseconds per
request (per order for batches), the load generator's, and the 1-minute load average, so that runs on
a shared machine can be compared by cost as well as by rate. Prints one JSON object with ``--json``.

Targets on a 2-core machine: >= 2,000 single-order req/s, p99 <= 25 ms at 1,000 req/s offered,
>= 20,000 orders/s through batches. Example::

    tradedesk bench gateway --json
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import typer

from bench import ADMIN_DSN, BENCH_REGIONS, REDIS_URL, AdminDsn, JsonOut, RayAddress, RedisUrl
from bench.cleanup import Started
from bench.load import Orders, closed_loop, open_loop


class _Cpu:
    """CPU seconds (user + system) of the gateway processes and of this load generator."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.me = psutil.Process()

    def now(self) -> tuple[float, float]:
        def cpu(p: Any) -> float:
            try:
                t = p.cpu_times()
            except Exception:  # a worker that exited
                return 0.0
            return float(t.user + t.system)

        return sum(cpu(p) for p in self.procs), cpu(self.me)


async def _measured(cpu: _Cpu, units: str, phase: Any) -> dict[str, Any]:
    """Run ``phase`` (a coroutine giving a load summary); add the gateway's and the load generator's
    CPU microseconds per ``units`` (``ok`` requests, or ``orders`` when set) and the load average."""
    g0, l0 = cpu.now()
    res: dict[str, Any] = await phase
    g1, l1 = cpu.now()
    n = max(1, res.get(units) or res["ok"])
    res["gateway_cpu_us_per_" + units] = round(1e6 * (g1 - g0) / n, 1)
    res["loadgen_cpu_us_per_" + units] = round(1e6 * (l1 - l0) / n, 1)
    res["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return res


async def _load(cfg: dict[str, Any]) -> dict[str, Any]:
    port = cfg["port"]
    orders = Orders(cfg["regions"], cfg["tokens"], cfg["tag"], cfg.get("profile"))
    out: dict[str, Any] = {}
    cpu = _Cpu(cfg["gateway_pids"])
    health = ("GET", "/healthz", None, "")
    out["baseline_healthz"] = await _measured(
        cpu,
        "ok",
        closed_loop(port, cfg["concurrency"], cfg["baseline_requests"], cfg["max_phase_s"], lambda: health),
    )

    def single() -> tuple[str, str, bytes, str]:
        path, body, head = orders.next_single()
        return "POST", path, body, head

    out["warmup"] = await closed_loop(port, cfg["concurrency"], 400, cfg["max_phase_s"], single)
    out["single_max"] = await _measured(
        cpu, "ok", closed_loop(port, cfg["concurrency"], cfg["single_requests"], cfg["max_phase_s"], single)
    )
    out["single_fixed"] = await _measured(
        cpu, "ok", open_loop(port, cfg["rate"], cfg["fixed_seconds"], cfg["open_conns"], single)
    )
    if orders.i % 2:
        orders.i += 1

    def batch() -> tuple[str, str, bytes, str]:
        body, head = orders.next_side_batch(cfg["batch_size"])
        return "POST", "/v1/orders/batch", body, head

    async def batches() -> dict[str, Any]:
        res = await closed_loop(
            port, cfg["batch_concurrency"], cfg["batch_requests"], cfg["max_phase_s"], batch
        )
        res["orders"] = res["ok"] * cfg["batch_size"]
        res["orders_per_s"] = round(res["orders"] / res["elapsed_s"], 1) if res["elapsed_s"] else 0.0
        return res

    out["batch"] = await _measured(cpu, "orders", batches())
    out.pop("warmup")
    return out


# ----------------------------------------------------------------------------- server side


def _server(args: SimpleNamespace, started: Started) -> tuple[dict[str, Any], Any]:
    """Start Ray, the runtime and the gateway, each registered with ``started`` (released on exit);
    returns (load config, settings)."""
    from actors.runtime import start_runtime
    from actors.settings import Settings
    from gateway.app import ServerThread, create_app
    from persistence.api_keys import ensure_admin_key_async

    dsn = started.database(args.dsn, "td_bench_gw")
    ns = f"bench-gw-{uuid.uuid4().hex[:6]}"
    started.ray(ns, args.ray_address)
    s = Settings(
        ray_namespace=ns,
        durability=args.durability,
        rate_limit_per_s=1e6,
        rate_limit_burst=10**7,
        gateway_batch_window_ms=args.window_ms,
        api_batch_max_orders=max(1000, args.batch_size),
    )
    rt = start_runtime(s, dsn, args.redis)
    import shutil
    import tempfile

    key_dir = tempfile.mkdtemp(prefix="tdbench")
    started.add("admin key file", lambda: shutil.rmtree(key_dir, ignore_errors=True))
    key_file = os.path.join(key_dir, "admin.key")
    asyncio.run(ensure_admin_key_async(dsn, key_file))
    with open(key_file, encoding="utf-8") as f:
        admin_token = f.read().strip()
    if args.workers > 0:
        port, gateway_pids = _start_workers(args, started, s, dsn, f"tdbench:{ns}:")
    else:
        app = create_app(s, dsn, args.redis, key_prefix=f"tdbench:{ns}:", directory=rt.directory)
        srv = ServerThread(app)
        srv.start()
        started.add("gateway server thread", srv.stop)
        port, gateway_pids = srv.port, [os.getpid()]
    base = f"http://127.0.0.1:{port}"
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
        "port": port,
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

    cfg["_runtime"] = rt
    cfg["_gateway_pids"] = gateway_pids
    return cfg, s


def _start_workers(
    args: SimpleNamespace, started: Started, s: Any, dsn: str, prefix: str
) -> tuple[int, list[int]]:
    """``args.workers`` gateway processes (``python -m gateway.workers``, as ``serve --workers``) on a
    free port; returns (port, their pids: the process manager and its workers)."""
    import socket
    import urllib.request

    import psutil
    import ray

    from gateway.workers import worker_env

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **worker_env(s, dsn, args.redis, ray.get_runtime_context().gcs_address, prefix)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.workers", "--port", str(port), "--workers", str(args.workers)],
        env=env,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    started.add("gateway worker processes", stop)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the gateway worker processes did not start")
        time.sleep(0.25)
    kids: list[Any] = []
    while args.workers > 1 and len(kids) < args.workers and time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=False)
        time.sleep(0.1)
    return port, [proc.pid, *(k.pid for k in kids)]


def _direct_shards(rt: Any, regions: list[str], n: int, batch: int, profile: str | None) -> dict[str, Any]:
    """Baseline without HTTP: the same kind of orders submitted straight to the shard actors in
    ``batch``-sized calls (one call in flight per shard), i.e. the ceiling the gateway sits on."""
    import ray

    from gateway.schemas import BatchIn

    per_shard: dict[str, list[list[Any]]] = {r: [] for r in regions}
    ts = int(time.time() * 1000)
    for r in regions:
        orders = Orders([r], ["", ""], uuid.uuid4().hex[:6] + "d", profile)
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


def main(args: SimpleNamespace) -> int:
    """Run the benchmark (or, with ``load``, the load generator) with the options of :func:`command`."""

    if args.load is not None:
        cfg = json.loads(args.load)
        print(json.dumps(asyncio.run(_load(cfg))))
        return 0

    with Started() as started:
        cfg, s = _server(args, started)
        rt = cfg.pop("_runtime")
        cfg["gateway_pids"] = cfg.pop("_gateway_pids")
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
    res = {
        "benchmark": "gateway",
        "durability": s.durability,
        "shards": args.shards,
        "profile": args.profile or "commodity default (quality)",
        "window_ms": args.window_ms,
        "workers": args.workers,
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
        "gateway_cpu_us_per_healthz": phases["baseline_healthz"]["gateway_cpu_us_per_ok"],
        "gateway_cpu_us_per_single_order": phases["single_max"]["gateway_cpu_us_per_ok"],
        "gateway_cpu_us_per_batch_order": phases["batch"]["gateway_cpu_us_per_orders"],
        "loadavg_1m": {k: v["loadavg_1m"] for k, v in phases.items() if "loadavg_1m" in v},
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


def command(
    json_out: JsonOut = False,
    shards: Annotated[int, typer.Option(help="regions (shards) the orders are spread over")] = 2,
    concurrency: Annotated[int, typer.Option(help="connections in closed-loop phases")] = 64,
    open_conns: Annotated[int, typer.Option(help="connections in the fixed-rate phase")] = 128,
    rate: Annotated[float, typer.Option(help="offered req/s in the fixed-rate phase")] = 1000.0,
    fixed_seconds: float = 5.0,
    baseline_requests: int = 5000,
    single_requests: int = 10000,
    batch_size: int = 1000,
    batch_requests: int = 60,
    batch_concurrency: int = 4,
    max_phase_s: Annotated[float, typer.Option(help="time cap per closed-loop phase")] = 20.0,
    direct_orders: Annotated[int, typer.Option(help="orders in the no-HTTP shard baseline")] = 4000,
    profile: Annotated[
        Literal["quality", "price_time"] | None,
        typer.Option(
            help="ranking profile the orders ask for (default: the commodity's, quality for cotton)",
        ),
    ] = None,
    window_ms: Annotated[float, typer.Option(help="gateway micro-batch window")] = 1.5,
    workers: Annotated[
        int, typer.Option(help="gateway processes (as serve --workers); 0 = a thread of this process")
    ] = 1,
    durability: Annotated[Literal["sync", "async"], typer.Option()] = "sync",
    dsn: AdminDsn = ADMIN_DSN,
    redis: RedisUrl = REDIS_URL,
    ray_address: RayAddress = None,
    load: Annotated[str | None, typer.Option(hidden=True)] = None,  # internal: run as load generator
) -> None:
    """HTTP end to end on 127.0.0.1: single orders, a fixed rate, batches, vs baselines."""
    raise typer.Exit(
        main(SimpleNamespace(json=json_out, shards=shards, concurrency=concurrency, open_conns=open_conns,
                             rate=rate, fixed_seconds=fixed_seconds, baseline_requests=baseline_requests,
                             single_requests=single_requests, batch_size=batch_size,
                             batch_requests=batch_requests, batch_concurrency=batch_concurrency,
                             max_phase_s=max_phase_s, direct_orders=direct_orders, profile=profile,
                             window_ms=window_ms, workers=workers, durability=durability, dsn=dsn,
                             redis=redis, ray_address=ray_address, load=load))
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
