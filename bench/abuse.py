"""``tradedesk bench abuse``: does a client sending bad orders hurt a valid client? (issue 10)

Starts the same loopback server as ``bench/gateway.py`` (local Ray, runtime over a throw-away
PostgreSQL database, Redis, the gateway under uvicorn) and runs a load-generator subprocess with two
open-loop phases of ``--seconds`` each (bounded):

1. ``alone``: the valid client alone: single orders at ``--rate`` req/s, alternating availabilities
   and crossing requirements of two parties on one shard;
2. ``abused``: the same valid client while a second client sends ``--bad-rate`` bad orders/s to the
   same shard: NUL (``\\u0000``) and lone surrogates in text fields, bad numbers (``true``, strings,
   negative, huge), unknown regions.

Latency is measured from each request's scheduled send time (queueing counts). Prints one JSON
object: the valid client's error rate, p50 and p99 in both phases, the p99 ratio, the bad client's
status codes and the shard's counters (failed commits, commands refused as unstorable, recoveries).
Targets: error rate 0 in both phases, p99 under abuse within 2x of alone. Example::

    tradedesk bench abuse --json
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from bench import ADMIN_DSN, REDIS_URL, AdminDsn, JsonOut, RayAddress, RedisUrl
from bench.cleanup import Started
from bench.gateway import _server
from bench.load import Orders, open_loop

BAD_KINDS = (
    "nul_city",
    "nul_client_order_id",
    "surrogate_city",
    "price_true",
    "price_string",
    "quantity_negative",
    "quantity_huge",
    "unknown_region",
)


def bad_order(orders: Orders, i: int) -> tuple[str, bytes]:
    """The ``i``-th bad request: (path, raw JSON body). Cycles through :data:`BAD_KINDS`."""
    kind = BAD_KINDS[i % len(BAD_KINDS)]
    side, body = orders.order(2 * i)  # an availability on the valid client's shard
    body["client_order_id"] = f"bad-{orders.tag}-{i}"
    loc = body["location"]
    if kind == "nul_city":
        loc["city"] = "x\u0000"
    elif kind == "nul_client_order_id":
        body["client_order_id"] += "\u0000"
    elif kind == "price_true":
        body["price_paise_per_kg"] = True
    elif kind == "price_string":
        body["price_paise_per_kg"] = "7000"
    elif kind == "quantity_negative":
        body["quantity"] = {"value": -5, "unit": "tonne"}
    elif kind == "quantity_huge":
        body["quantity"] = {"value": 10**30, "unit": "tonne"}
    elif kind == "unknown_region":
        loc["region"] = "ZZ-QQQQQQQQ"
    raw = json.dumps(body)
    if kind == "surrogate_city":  # json.dumps cannot emit a lone surrogate as itself: splice it in
        raw = raw.replace('"location": {', '"location": {"city": "\\ud800", ', 1)
    return "/v1/orders/availabilities", raw.encode()


def _phase_summary(res: dict[str, Any]) -> dict[str, Any]:
    n = res["requests"]
    return {
        "requests": n,
        "errors": n - res["ok"],
        "error_rate": round((n - res["ok"]) / n, 4) if n else None,
        "p50_ms": res["p50_ms"],
        "p99_ms": res["p99_ms"],
        "codes": res["codes"],
    }


async def _load(cfg: dict[str, Any]) -> dict[str, Any]:
    port, secs = cfg["port"], cfg["seconds"]
    valid = Orders(cfg["regions"], cfg["tokens"], cfg["tag"])
    bad = Orders(cfg["regions"], cfg["tokens"], cfg["tag"] + "x")
    bad_i = 0

    def single() -> tuple[str, str, bytes, str]:
        path, body, head = valid.next_single()
        return "POST", path, body, head

    def abuse() -> tuple[str, str, bytes, str]:
        nonlocal bad_i
        path, body = bad_order(bad, bad_i)
        bad_i += 1
        return "POST", path, body, bad.heads[1]

    await open_loop(port, cfg["rate"], 2.0, cfg["conns"], single)  # warm up shards and connections
    alone = await open_loop(port, cfg["rate"], secs, cfg["conns"], single)
    abused, attacker = await asyncio.gather(
        open_loop(port, cfg["rate"], secs, cfg["conns"], single),
        open_loop(port, cfg["bad_rate"], secs, 8, abuse),
    )
    return {"alone": alone, "abused": abused, "attacker": attacker}


def main(args: SimpleNamespace) -> int:
    """Run both phases with the options of :func:`command` (or, with ``load``, the load generator)."""
    if args.load is not None:
        print(json.dumps(asyncio.run(_load(json.loads(args.load)))))
        return 0

    server_args = SimpleNamespace(
        dsn=args.dsn,
        redis=args.redis,
        ray_address=args.ray_address,
        durability="sync",
        window_ms=args.window_ms,
        batch_size=1,
        shards=1,
        profile=None,
        concurrency=1,
        open_conns=args.conns,
        baseline_requests=0,
        single_requests=0,
        rate=args.rate,
        fixed_seconds=args.seconds,
        batch_requests=0,
        batch_concurrency=1,
        max_phase_s=args.seconds,
    )
    with Started() as started:
        cfg, _settings = _server(server_args, started)
        rt = cfg.pop("_runtime")
        cfg.update(seconds=args.seconds, bad_rate=args.bad_rate, conns=args.conns)
        proc = subprocess.run(
            [sys.executable, "-m", "bench.abuse", "--load", json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=3 * args.seconds + 180,
        )
        keys = ("shard_id", "failures", "unknown", "unstorable", "recoveries", "committed_seq")
        shards = [{k: i.get(k) for k in keys} for i in rt.list_shards() if isinstance(i, dict)]
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return 1
    phases = json.loads(proc.stdout.strip().splitlines()[-1])
    alone, abused = _phase_summary(phases["alone"]), _phase_summary(phases["abused"])
    res = {
        "benchmark": "abuse",
        "seconds_per_phase": args.seconds,
        "valid_rate_per_s": args.rate,
        "bad_rate_per_s": args.bad_rate,
        "cpus": os.cpu_count(),
        "valid_alone": alone,
        "valid_abused": abused,
        "p99_ratio": round(abused["p99_ms"] / alone["p99_ms"], 2) if alone["p99_ms"] else None,
        "p50_ratio": round(abused["p50_ms"] / alone["p50_ms"], 2) if alone["p50_ms"] else None,
        "bad_client": {"requests": phases["attacker"]["requests"], "codes": phases["attacker"]["codes"]},
        "bad_kinds": list(BAD_KINDS),
        "shards": shards,  # failed commits, unknown outcomes, refused commands, recoveries
        "targets": {"valid_error_rate": 0, "p99_ratio_max": 2.0},
    }
    print(json.dumps(res) if args.json else json.dumps(res, indent=2))
    return 0


def command(
    json_out: JsonOut = False,
    rate: Annotated[float, typer.Option(help="valid client's offered req/s")] = 50.0,
    bad_rate: Annotated[float, typer.Option(help="bad client's offered req/s")] = 20.0,
    seconds: Annotated[float, typer.Option(help="length of each phase (s)")] = 20.0,
    conns: Annotated[int, typer.Option(help="valid client's connections")] = 16,
    window_ms: Annotated[float, typer.Option(help="gateway micro-batch window")] = 1.5,
    dsn: AdminDsn = ADMIN_DSN,
    redis: RedisUrl = REDIS_URL,
    ray_address: RayAddress = None,
    load: Annotated[str | None, typer.Option(hidden=True)] = None,  # internal: run as load generator
) -> None:
    """A valid client alone, then beside a client sending bad orders: error rate and p50/p99."""
    raise typer.Exit(
        main(SimpleNamespace(json=json_out, rate=rate, bad_rate=bad_rate, seconds=seconds, conns=conns,
                             window_ms=window_ms, dsn=dsn, redis=redis, ray_address=ray_address, load=load))
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
