"""``tradedesk bench hosting``: the two shard hosting modes side by side (actors/shard_hosting.py).

On the local Ray node, for each mode in turn (``process``: one worker process per shard;
``commodity``: every shard of one commodity in one host process), the same ``--shards`` cotton
shards (one per real region, :data:`bench.BENCH_REGIONS`) are opened over a fresh database, each
given ``--orders`` orders (a resting book plus the fills), then every shard takes ``--rounds`` rounds
of one ``--batch``-order batch, all shards at once. Reported per mode:

- ``open_s``: opening every shard (process start or host open, recovery of an empty log);
- ``memory``: RSS, PSS (shared pages split between the processes that map them) and USS (private)
  in MiB, summed over the processes hosting the shards, ``idle`` (books filled, no traffic) and
  ``busy`` (after the rounds), the same per shard, ``memory_one_empty_shard`` (the first shard
  alone, before its book: the process's own cost) and ``memory_marginal_per_shard`` (what each
  further shard with its book adds);
- ``batch_ms``: p50/p99/max of one shard's batch round trip while every shard takes one at once,
  and ``orders_per_s`` over the rounds;
- ``shards_per_24gb_node``: how many such shards fit in 24 GiB after a 2 GiB reserve (raylet,
  object store, OS), by busy PSS per shard;
- ``cpu_s``: CPU seconds of the hosting processes over the rounds (a shared host runs on one core);
- ``steady``: then a steady load, ``--steady-rate`` batches/s per shard for ``--steady-s`` seconds,
  the sends spread evenly (round robin): the batch round trip's p50/p99/max when shards are not all
  hit at the same instant, and the orders/s offered and achieved.

Example: ``tradedesk bench hosting --shards 24 --json``.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Annotated, Any, cast

import typer

from bench import ADMIN_DSN, BENCH_REGIONS, AdminDsn, JsonOut, emit
from bench.cleanup import Started
from bench.costs import cpu_s, memory_mib

NODE_BYTES = 24 * 1024**3
NODE_RESERVE_BYTES = 2 * 1024**3  # raylet, object store, OS
MODES = ("process", "commodity")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)


def _steady(
    handles: list[Any], regions: list[str], batch: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Every shard takes ``rate`` batches/s of ``batch`` orders for ``seconds``, the shards' sends
    spread evenly over each period (a steady load, not a burst). Returns the round trips' p50/p99/max
    in ms and the orders/s offered and achieved."""
    import ray

    from bench.shard import T0, make_orders

    gap = 1.0 / (rate * len(handles))  # seconds between two sends (round robin over the shards)
    sent: dict[Any, float] = {}
    lat: list[float] = []
    t0 = time.perf_counter()
    t_end, next_send, k = t0 + seconds, t0, 0
    while time.perf_counter() < t_end or sent:
        now = time.perf_counter()
        if next_send <= now < t_end:
            i = k % len(handles)
            ts0 = T0 + 2 * 10**9 + k * batch
            cmds = make_orders(regions[i], "cotton", batch, seed=k, prefix=f"s{k}-", ts0=ts0)
            sent[handles[i].submit.remote(cmds)] = now
            k += 1
            next_send += gap
            continue
        timeout = max(0.0, next_send - now) if now < t_end else 1.0
        if not sent:
            time.sleep(timeout)
            continue
        done, _ = ray.wait(list(sent), num_returns=1, timeout=timeout)
        for ref in done:
            ray.get(ref)
            lat.append(time.perf_counter() - sent.pop(ref))
    return {
        "batches_per_s_per_shard": rate,
        "offered_orders_per_s": round(rate * len(handles) * batch, 1),
        "achieved_orders_per_s": round(k * batch / (time.perf_counter() - t0), 1),
        "batch_ms": {"p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99), "max": _pct(lat, 1.0)},
    }


def _one(
    started: Started,
    admin_dsn: str,
    mode: str,
    shards: int,
    orders: int,
    rounds: int,
    batch: int,
    steady: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    import ray

    from actors.runtime import start_runtime
    from actors.settings import Settings
    from bench.shard import T0, make_orders

    regions = list(BENCH_REGIONS[:shards])
    ns = f"td-host-{uuid.uuid4().hex[:8]}"
    dsn = started.database(admin_dsn)
    started.ray(ns)  # a local Ray of its own, shut down (with every actor) on exit
    s = Settings(
        ray_namespace=ns,
        shard_hosting=dict.fromkeys(["*"], cast(Any, mode)),
        shard_creation="any",
        shard_idle_timeout_s=0,
        max_shards_per_node=10_000,
        market_reference="none",
    )
    rt = start_runtime(s, dsn)
    t0 = time.perf_counter()
    first = rt.shard(regions[0], "cotton")
    one = memory_mib([ray.get(first.info.remote(), timeout=600)["pid"]])
    handles = [first] + [rt.shard(r, "cotton") for r in regions[1:]]
    infos = ray.get([h.info.remote() for h in handles], timeout=600)
    open_s = time.perf_counter() - t0
    pids = sorted({i["pid"] for i in infos})
    fills = [make_orders(r, "cotton", orders, seed=k, prefix=f"m{k}-") for k, r in enumerate(regions)]
    ray.get([h.submit.remote(c) for h, c in zip(handles, fills, strict=True)], timeout=600)
    idle = memory_mib(pids)
    lat: list[float] = []
    cpu0, w0 = sum(cpu_s(pids).values()), time.perf_counter()
    for j in range(rounds):
        ts0 = T0 + 10**9 + j * batch
        cmds = [make_orders(r, "cotton", batch, seed=j, prefix=f"r{j}-", ts0=ts0) for r in regions]
        start = time.perf_counter()
        pending = {h.submit.remote(c): k for k, (h, c) in enumerate(zip(handles, cmds, strict=True))}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=600)
            for ref in done:
                ray.get(ref)
                lat.append(time.perf_counter() - start)
                pending.pop(ref)
    wall, cpu = time.perf_counter() - w0, sum(cpu_s(pids).values()) - cpu0
    steady_out = _steady(handles, regions, batch, *steady) if steady[0] > 0 and steady[1] > 0 else None
    busy = memory_mib(pids)
    per_shard = {k: round(v / shards, 1) for k, v in busy.items()}
    return {
        "mode": mode,
        "shards": shards,
        "processes": len(pids),
        "open_s": round(open_s, 2),
        "memory_idle": idle,
        "memory_busy": busy,
        "memory_per_shard_idle": {k: round(v / shards, 1) for k, v in idle.items()},
        "memory_per_shard_busy": per_shard,
        "memory_one_empty_shard": one,
        "memory_marginal_per_shard": {k: round((busy[k] - one[k]) / max(1, shards - 1), 1) for k in busy},
        "shards_per_24gb_node": int((NODE_BYTES - NODE_RESERVE_BYTES) / (per_shard["pss"] * 2**20)),
        "batch_ms": {"p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99), "max": _pct(lat, 1.0)},
        "orders_per_s": round(rounds * batch * shards / wall, 1),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_order": round(cpu / (rounds * batch * shards) * 1e6, 1),
        "steady": steady_out,
    }


def main(
    shards: int,
    orders: int,
    rounds: int,
    batch: int,
    admin_dsn: str,
    steady_rate: float = 0.0,
    steady_s: float = 0.0,
) -> dict[str, Any]:
    """Run both modes (each on a fresh database and Ray instance); returns the result dict."""
    if not 1 <= shards <= len(BENCH_REGIONS):
        raise typer.BadParameter(f"--shards must be 1..{len(BENCH_REGIONS)} (one per region)")
    out: dict[str, Any] = {"bench": "hosting", "load_avg_1m": round(os.getloadavg()[0], 2), "runs": []}
    for mode in MODES:
        with Started() as started:
            steady = (steady_rate, steady_s)
            out["runs"].append(_one(started, admin_dsn, mode, shards, orders, rounds, batch, steady))
    proc, shared = out["runs"]
    out["memory_ratio_pss"] = round(
        proc["memory_per_shard_busy"]["pss"] / shared["memory_per_shard_busy"]["pss"], 1
    )
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return out


def command(
    shards: Annotated[int, typer.Option(help="cotton shards, one per region")] = 24,
    orders: Annotated[int, typer.Option(help="orders placed in each shard before measuring")] = 2000,
    rounds: Annotated[int, typer.Option(help="rounds of one batch per shard, all shards at once")] = 20,
    batch: Annotated[int, typer.Option(help="orders per batch")] = 20,
    steady_rate: Annotated[float, typer.Option(help="steady phase: batches/s per shard (0 = none)")] = 2.0,
    steady_s: Annotated[float, typer.Option(help="steady phase: seconds")] = 15.0,
    admin_dsn: AdminDsn = ADMIN_DSN,
    json_out: JsonOut = False,
) -> None:
    """Memory, latency and CPU of N shards in their own processes vs shared host processes."""
    emit(main(shards, orders, rounds, batch, admin_dsn, steady_rate, steady_s), json_out)
