"""``tradedesk bench shard``: durable throughput of shard actors on Ray with PostgreSQL.

Drives synthetic cotton orders straight into K shard actors in batches (``sync`` durability: a batch
returns only after its events are committed), one client thread per shard with ``--inflight``
batches outstanding (the shard matches batch N+1 while batch N commits), and reports per run:

- ``orders_per_s``, ``events_per_s``: durable orders/events per second over all shards;
- ``p50_ms``, ``p99_ms``: latency of one batch call (submit -> committed results);
- ``baseline_orders_per_s``: the old design in the same run, one transaction per order (engine
  in-process, no Ray hop, single-row inserts of each order's events and projection rows;
  ``--baseline-orders`` orders);
- ``copy_events_per_s`` / ``executemany_events_per_s``: the append path alone, COPY vs executemany;
- ``recovery_s`` and ``recovery_events``: a shard whose log holds ``--recovery-events`` events
  (written straight through the event store, snapshot every ``--snapshot-every``) is started, then
  killed and restarted; ``recovery_s`` is the restarted actor's load time (snapshot + later events),
  ``recovery_restart_wall_s`` the client-side time from kill to first answered call;
- ``shard_match_s`` / ``shard_rows_s`` / ``shard_commit_s``: where each shard spent its time;
- ``core_orders_per_s``: the in-memory core alone on the same commands in the same run, and
  ``durable_vs_core`` the durable rate over it; ``matching_orders_per_s``: orders over the busiest
  shard's matching seconds; ``acked_orders_per_s``: until the last answer (with ``--durability
  async`` the answers come before the commits; ``orders_per_s`` always counts until all committed);
- ``cpu_us_per_order``: CPU microseconds per durable order, summed over the shard processes (which
  now hold the writers) and the writers' PostgreSQL backends (``application_name``
  ``td-writer:<shard>``), split as ``cpu_us_per_order_shard`` / ``_postgres`` (psutil);
- ``half_load``: the same run offered at half the measured rate, open loop (latency from each
  batch's scheduled send time); ``one_shard`` and ``scaling_*``: with ``--shards K > 1``, one shard
  on its own first, in the same run;
- ``event_payload_bytes`` / ``events_table_bytes_per_event``: stored size of the run's events (costs
  and recovery parts: ``bench/costs.py``, ``bench/recovery.py``; the order stream, the baselines and
  the projector's lag: ``bench/shard_orders.py``, ``bench/shard_baselines.py``,
  ``bench/shard_projector_lag.py``).

Uses ``TRADEDESK_DATABASE_URL`` (or ``--dsn``), else an embedded PostgreSQL in a temporary directory;
each run creates and drops its own database, and stops and deletes the embedded server
(:class:`bench.cleanup.Started`: also on an error, Ctrl-C or SIGTERM). Example::

    tradedesk bench shard --shards 2 --orders 200000 --batch 1000 --json
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import typer

from actors.core.ids import shard_id_for
from bench import BENCH_REGIONS, JsonOut
from bench.cleanup import Started
from bench.costs import core_rate, cpu_s, event_bytes, writer_backends
from bench.recovery import recovery
from bench.shard_baselines import append_methods, baseline
from bench.shard_orders import T0 as T0
from bench.shard_orders import make_orders as make_orders
from bench.shard_orders import percentile as percentile
from bench.shard_projector_lag import LagSampler


def _dsn(args: SimpleNamespace, started: Started) -> str:
    """DSN of a fresh database (dropped on exit): on ``--dsn`` / ``TRADEDESK_DATABASE_URL``, else on a
    throw-away embedded PostgreSQL (stopped and deleted on exit)."""
    base = args.dsn or os.environ.get("TRADEDESK_DATABASE_URL") or started.embedded_postgres()
    return started.database(base)


def _throughput(
    rt: Any,
    k: int,
    n: int,
    batch: int,
    inflight: int = 2,
    *,
    dsn: str | None = None,
    rate: float = 0.0,
    profile: str = "price_time",
    tag: str = "b",
    first_region: int = 0,
    projector: str = "live",
) -> dict[str, Any]:
    """Drive ``n`` orders over ``k`` shards. ``rate``: offered orders/s over all shards (0 = as fast
    as answered; else batches leave on schedule and latency counts from the scheduled send time).
    With ``dsn``: CPU seconds of the shard processes and their writers' PostgreSQL backends.
    ``projector``: ``live`` (projecting during the run, sharing the machine) or ``after`` (paused
    during the run, then timed catching up alone)."""
    import ray

    regions = list(BENCH_REGIONS[first_region : first_region + k])
    handles = [rt.shard(r, "cotton") for r in regions]
    infos0 = ray.get([h.info.remote() for h in handles])
    per = n // k
    streams = [make_orders(r, "cotton", per, seed=i, prefix=tag) for i, r in enumerate(regions)]
    lat: list[list[float]] = [[] for _ in range(k)]
    events = [0] * k
    ray.get([h.submit.remote([]) for h in handles])  # the writers' pools are open before timing
    shard_pids = [int(i["pid"]) for i in infos0]
    pg_pids = writer_backends(dsn, [i["shard_id"] for i in infos0]) if dsn else []
    cpu0 = cpu_s(shard_pids + pg_pids)
    per_shard_rate = rate / k if rate else 0.0

    failures: list[BaseException] = []

    def drive(i: int, t_start: float) -> None:
        try:
            drive_shard(i, t_start)
        except Exception as exc:  # raised in the main thread after join (an interrupted run ends quietly)
            failures.append(exc)

    def drive_shard(i: int, t_start: float) -> None:
        # up to ``inflight`` batches outstanding per shard; answers come back in submission order
        h, cmds = handles[i], streams[i]
        window: list[tuple[Any, float]] = []
        for j in range(0, len(cmds), batch):
            t_send = time.perf_counter()
            if per_shard_rate:
                t_send = t_start + j / per_shard_rate
                wait = t_send - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            window.append((h.submit.remote(cmds[j : j + batch]), t_send))
            if len(window) >= inflight:
                ref, t = window.pop(0)
                res = ray.get(ref)
                lat[i].append((time.perf_counter() - t) * 1000)
                events[i] += sum(len(r["seqs"]) for r in res)
        for ref, t in window:
            res = ray.get(ref)
            lat[i].append((time.perf_counter() - t) * 1000)
            events[i] += sum(len(r["seqs"]) for r in res)

    lag = LagSampler(rt.dsn, [shard_id_for(r, "cotton") for r in regions])
    proj0 = ray.get(rt.projector.ping.remote())
    if projector == "after":
        ray.get(rt.projector.pause.remote())
    else:
        lag.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=drive, args=(i, t0), daemon=True) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    acked = time.perf_counter() - t0
    ray.get([h.flush.remote() for h in handles])  # async durability: the commits count too
    wall = time.perf_counter() - t0
    if projector == "after":
        lag.start()
        ray.get(rt.projector.resume.remote())
    lag.stop_when_caught_up()
    proj1 = ray.get(rt.projector.ping.remote())
    proj_events = proj1["events"] - proj0["events"]
    proj_s = proj1["project_s"] - proj0["project_s"]
    wall_proj = wall if projector == "live" else 0.0
    pg_pids = sorted(set(pg_pids) | set(writer_backends(dsn, [i["shard_id"] for i in infos0]) if dsn else ()))
    cpu1 = cpu_s(shard_pids + pg_pids)
    all_lat = [x for xs in lat for x in xs]
    infos = ray.get([h.info.remote() for h in handles])
    shard_cpu = sum(cpu1.get(p, 0.0) - cpu0.get(p, 0.0) for p in shard_pids)
    pg_cpu = sum(cpu1.get(p, 0.0) - cpu0.get(p, 0.0) for p in pg_pids)
    core = core_rate(streams, batch, profile)
    orders = per * k
    return {
        "projector": projector,
        "projector_events": proj_events,
        "projector_busy_events_per_s": round(proj_events / proj_s, 1) if proj_s > 0 else None,
        "projector_wall_events_per_s": round(proj_events / lag.caught_up_s, 1) if lag.caught_up_s else None,
        "projector_caught_up_after_s": round(lag.caught_up_s - wall_proj, 3) if lag.caught_up_s else None,
        "projector_lag_events_max": lag.max_events,
        "projector_lag_s_max": round(lag.max_s, 3),
        "projector_lag_s_p50": round(percentile(lag.samples, 50), 3),
        "shard_match_s": [
            round(i["match_s"] - i0["match_s"], 3) for i, i0 in zip(infos, infos0, strict=True)
        ],
        "shard_rows_s": [round(i["rows_s"] - i0["rows_s"], 3) for i, i0 in zip(infos, infos0, strict=True)],
        "shard_commit_s": [
            round(i["commit_s"] - i0["commit_s"], 3) for i, i0 in zip(infos, infos0, strict=True)
        ],
        "shards": k,
        "orders": orders,
        "batch": batch,
        "inflight": inflight,
        "offered_orders_per_s": rate or None,
        "wall_s": round(wall, 3),
        "orders_per_s": round(orders / wall, 1),
        "acked_orders_per_s": round(orders / acked, 1),
        "events_per_s": round(sum(events) / wall, 1),
        "matching_orders_per_s": round(
            orders
            / max(max(i["match_s"] - i0["match_s"] for i, i0 in zip(infos, infos0, strict=True)), 1e-9),
            1,
        ),
        "core_orders_per_s": round(core, 1),
        "durable_vs_core": round(orders / wall / core, 3) if core else None,
        "cpu_us_per_order": round((shard_cpu + pg_cpu) / orders * 1e6, 1),
        "cpu_us_per_order_shard": round(shard_cpu / orders * 1e6, 1),
        "cpu_us_per_order_postgres": round(pg_cpu / orders * 1e6, 1),
        "postgres_backends": len(pg_pids),
        "p50_ms": round(percentile(all_lat, 50), 2),
        "p99_ms": round(percentile(all_lat, 99), 2),
        "mean_ms": round(statistics.fmean(all_lat), 2) if all_lat else 0.0,
    }


def main(args: SimpleNamespace) -> int:
    """Run the benchmark with the options of :func:`command`; print a JSON object or a table. Returns 0."""

    from actors.runtime import start_runtime
    from actors.settings import Settings

    ns = f"td-bench-{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {"bench": "shard", "durability": args.durability}
    out["commit_thread"] = args.commit_thread
    with Started() as started:
        dsn = _dsn(args, started)
        started.ray(ns)
        settings = Settings(
            ray_namespace=ns,
            durability=args.durability,
            snapshot_every=args.snapshot_every,
            commit_thread=args.commit_thread,
        )
        rt = start_runtime(settings, dsn, profile=args.profile)
        out["profile"] = args.profile
        run = {"dsn": dsn, "profile": args.profile, "projector": args.projector}
        if args.shards > 1:  # one shard in the same run, on a region the K-shard pass does not use
            one = _throughput(
                rt,
                1,
                args.orders // args.shards,
                args.batch,
                args.inflight,
                first_region=args.shards,
                tag="o",
                **run,
            )
            out["one_shard"] = one
        out.update(_throughput(rt, args.shards, args.orders, args.batch, args.inflight, **run))
        if args.shards > 1:
            base = out["one_shard"]
            out["scaling_orders_per_s"] = round(out["orders_per_s"] / base["orders_per_s"], 2)
            out["scaling_acked_orders_per_s"] = round(
                out["acked_orders_per_s"] / base["acked_orders_per_s"], 2
            )
            out["scaling_matching_orders_per_s"] = round(
                out["matching_orders_per_s"] / base["matching_orders_per_s"], 2
            )
        if args.half_load:  # latency at half the rate just measured, open loop
            half = _throughput(
                rt,
                args.shards,
                args.orders,
                args.batch,
                args.inflight,
                rate=out["orders_per_s"] / 2,
                tag="h",
                **run,
            )
            out["half_load"] = {
                k: half[k]
                for k in ("offered_orders_per_s", "orders_per_s", "p50_ms", "p99_ms", "cpu_us_per_order")
            }
        if args.baseline_orders:
            out.update(baseline(dsn, args.baseline_orders))
            out["speedup_vs_baseline"] = round(out["orders_per_s"] / out["baseline_orders_per_s"], 1)
        if args.method_orders:
            out.update(append_methods(dsn, args.method_orders, args.batch))
        if args.recovery_events:
            out.update(recovery(rt, dsn, args.recovery_events, args.snapshot_every, args.batch))
        out.update(event_bytes(dsn))
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:28s} {v}")
    return 0


def command(
    shards: Annotated[int, typer.Option(help="shard actors driven in parallel (K)")] = 1,
    orders: Annotated[int, typer.Option(help="orders in total over all shards (N)")] = 50_000,
    batch: Annotated[int, typer.Option(help="orders per submit call")] = 1000,
    inflight: Annotated[int, typer.Option(help="batches outstanding per shard (pipelining)")] = 2,
    durability: Annotated[
        Literal["sync", "async"], typer.Option(help="acknowledge after/before commit")
    ] = "sync",
    half_load: Annotated[bool, typer.Option(help="also measure latency at half the measured rate")] = True,
    baseline_orders: Annotated[int, typer.Option(help="orders through the 1-per-txn baseline")] = 2000,
    method_orders: Annotated[int, typer.Option(help="orders for COPY vs executemany")] = 20_000,
    recovery_events: Annotated[int, typer.Option(help="events for the recovery test (0 = skip)")] = 0,
    snapshot_every: Annotated[int, typer.Option(help="events between snapshots")] = 100_000,
    profile: Annotated[Literal["price_time", "quality"], typer.Option(help="ranking")] = "price_time",
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL URL (default TRADEDESK_DATABASE_URL or embedded)")
    ] = None,
    projector: Annotated[
        Literal["live", "after"],
        typer.Option(help="live: projections built during the run; after: paused, then timed alone"),
    ] = "live",
    commit_thread: Annotated[
        bool, typer.Option(help="writers append in their own thread (off: on the shard's loop, the baseline)")
    ] = True,
    json_out: JsonOut = False,
) -> None:
    """Shard actors with their PostgreSQL commit vs the in-memory core and a one-order-per-transaction
    baseline, all in the same run."""
    raise typer.Exit(
        main(SimpleNamespace(shards=shards, orders=orders, batch=batch, inflight=inflight,
                             durability=durability, half_load=half_load,
                             baseline_orders=baseline_orders, method_orders=method_orders,
                             recovery_events=recovery_events, snapshot_every=snapshot_every,
                             profile=profile, dsn=dsn, projector=projector,
                             commit_thread=commit_thread, json=json_out))
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
