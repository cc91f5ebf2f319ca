"""``tradedesk bench snapshots``: batch latency of one shard with its periodic snapshots taken inline
(in the batch, on its matching loop) vs in the background (the runtime's ``snapshotter`` actor builds
them from the committed log), same run, same machine.

Per round, two new shard actors on the same runtime and PostgreSQL, one after the other: each first
gets ``--resting`` passive orders (priced 4-6 % away from the mid, so they rest: the book whose
snapshot costs), untimed, then ``--orders`` synthetic cotton orders of the ``bench shard`` workload
(+-2 % around the mid: they cross each other, never the resting ones) in batches of ``--batch``
with ``--inflight`` batches outstanding (``sync`` durability), timed:

- ``inline``: ``snapshot_mode="inline"``, a snapshot every ``--snapshot-every`` events in the batch
  that crosses it (the former design, the baseline);
- ``background``: the directory's shard (``snapshot_mode="background"``) while the snapshotter,
  looking every ``--check-s`` seconds, builds a snapshot every ``--snapshot-every`` events.

``--rounds`` rounds alternate which mode goes first (machine load drifts). Per mode, over every
batch call of its rounds (submit -> committed results): ``p50_ms``, ``p99_ms``, ``max_ms``,
``mean_ms``, ``p99_ms_by_round``; ``orders_per_s``; ``snapshots`` stored during the passes;
``shard_rows_s`` (the shard's seconds building rows, where an inline snapshot lands);
``load_avg_1m`` after each pass; for ``background`` the snapshotter's ``builds`` and ``build_s``
(the resting books' builds included) and ``last_build`` (seconds by stage,
:class:`actors.snapshot_builder.Built`). ``p99_ratio`` / ``max_ratio``: inline over background.

Uses ``TRADEDESK_DATABASE_URL`` (or ``--dsn``), else an embedded PostgreSQL, in a throw-away
database. Example::

    tradedesk bench snapshots --orders 30000 --resting 20000 --batch 500 --snapshot-every 10000 --json
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
import uuid
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import typer

from actors.core.ids import shard_id_for
from bench import BENCH_REGIONS, JsonOut, emit
from bench.cleanup import Started
from bench.shard import _dsn, make_orders, percentile


def _snapshot_seqs(dsn: str, shard_id: str) -> list[int]:
    """Seqs of the stored snapshots of ``shard_id``."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT seq FROM snapshots WHERE shard_id = %s ORDER BY seq", (shard_id,))
            return [int(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()


MID = 15_000  # paise/kg, the bench shard workload's mid price


def resting_orders(region: str, n: int, prefix: str = "r") -> list[Any]:
    """``n`` place commands that rest: bids 4-6 % below :data:`MID`, asks 4-6 % above (the timed
    stream trades within 2 % of it), client order ids ``<prefix><i>``."""
    out = []
    for i, c in enumerate(make_orders(region, "cotton", n, seed=20, prefix=prefix, mid_price=MID)):
        away = MID // 25 + i % (MID // 50)
        out.append(dataclasses.replace(c, price=MID - away if c.side == "BUY" else MID + away))
    return out


def _pass(dsn: str, handle: Any, region: str, n: int, batch: int, inflight: int) -> dict[str, Any]:
    """Feed ``n`` orders to ``handle``, ``inflight`` batches outstanding: ``lat`` (ms per batch call),
    ``wall_s``, ``events``, ``book_size``, ``rows_s`` (the shard's), ``snapshots`` stored meanwhile.
    Client order ids ``s-<region>-<i>``: a party's ids are unique over every shard (the shards'
    bounded idempotency finds forgotten ones in the ``client_orders`` projection)."""
    import ray

    cmds = make_orders(region, "cotton", n, seed=21, prefix=f"s-{region}-", mid_price=MID)
    info0 = ray.get(handle.info.remote())
    sid = info0["shard_id"]
    snaps0 = set(_snapshot_seqs(dsn, sid))
    lat: list[float] = []
    window: list[tuple[Any, float]] = []
    t0 = time.perf_counter()
    for j in range(0, n, batch):
        window.append((handle.submit.remote(cmds[j : j + batch]), time.perf_counter()))
        while len(window) >= inflight or (window and j + batch >= n):
            ref, t = window.pop(0)
            ray.get(ref)
            lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    info = ray.get(handle.info.remote())
    return {
        "lat": lat,
        "wall_s": wall,
        "events": info["committed_seq"] - info0["committed_seq"],
        "book_size": info["book_size"],
        "rows_s": info["rows_s"] - info0["rows_s"],
        "snapshots": len(set(_snapshot_seqs(dsn, sid)) - snaps0),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def _summary(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode over its rounds: latency percentiles of every batch call pooled, rate over all."""
    lat = [x for p in passes for x in p["lat"]]
    return {
        "orders_per_s": round(sum(p["orders"] for p in passes) / sum(p["wall_s"] for p in passes), 1),
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat), 2),
        "mean_ms": round(statistics.fmean(lat), 2),
        "p99_ms_by_round": [round(percentile(p["lat"], 99), 2) for p in passes],
        "events_by_round": [p["events"] for p in passes],
        "batches": len(lat),
        "events": sum(p["events"] for p in passes),
        "book_size": passes[-1]["book_size"],
        "shard_rows_s": round(sum(p["rows_s"] for p in passes), 3),
        "snapshots": sum(p["snapshots"] for p in passes),
        "load_avg_1m": [p["load_avg_1m"] for p in passes],
    }


def main(args: SimpleNamespace) -> dict[str, Any]:
    """Run the passes with the options of :func:`command`; the result as a dict."""
    import ray

    from actors.runtime import start_runtime
    from actors.settings import Settings
    from actors.shard_actor import create_shard_actor

    ns = f"td-bench-{uuid.uuid4().hex[:8]}"
    every = args.snapshot_every
    out: dict[str, Any] = {"bench": "snapshots", "snapshot_every": every, "batch": args.batch,
                           "resting": args.resting, "orders": args.orders, "rounds": args.rounds}  # fmt: skip
    passes: dict[str, list[dict[str, Any]]] = {"inline": [], "background": []}
    with Started() as started:
        dsn = _dsn(args, started)
        started.ray(ns)
        settings = Settings(ray_namespace=ns, snapshot_every=every, snapshot_interval_s=0,
                            snapshot_check_s=args.check_s, market_reference="none")  # fmt: skip
        rt = start_runtime(settings, dsn, profile=args.profile)
        s0 = ray.get(rt.snapshotter.ping.remote())
        for r in range(args.rounds):  # inline first in even rounds, background first in odd ones
            regions = {"inline": BENCH_REGIONS[2 * r], "background": BENCH_REGIONS[2 * r + 1]}
            # the inline shard is not in the directory's registry: the snapshotter never sees it
            shards = {
                "inline": create_shard_actor(
                    regions["inline"], "cotton", rt.persistence, namespace=ns, snapshot_every=every,
                    profile=args.profile, market_reference="none", snapshot_mode="inline",
                ),
                "background": rt.shard(regions["background"], "cotton"),
            }  # fmt: skip
            for mode, h in shards.items():  # untimed: the resting book
                rest = resting_orders(regions[mode], args.resting, prefix=f"r-{regions[mode]}-")
                ray.get([h.submit.remote(rest[j : j + 1000]) for j in range(0, len(rest), 1000)])
            ray.get(rt.snapshotter.run_once.remote())  # the resting book's snapshot is not timed
            for mode in ("inline", "background") if r % 2 == 0 else ("background", "inline"):
                p = _pass(dsn, shards[mode], regions[mode], args.orders, args.batch, args.inflight)
                passes[mode].append({**p, "orders": args.orders})
        s1 = ray.get(rt.snapshotter.ping.remote())
    for mode, ps in passes.items():
        out[mode] = _summary(ps)
    b = out["background"]
    b["builds"] = s1["builds"] - s0["builds"]  # the resting books' builds included
    b["build_s"] = round(s1["build_s"] - s0["build_s"], 3)
    last = s1["last"].get(shard_id_for(BENCH_REGIONS[2 * args.rounds - 1], "cotton"), {})
    b["last_build"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in last.items()}
    out["p99_ratio"] = round(out["inline"]["p99_ms"] / b["p99_ms"], 2) if b["p99_ms"] else None
    out["max_ratio"] = round(out["inline"]["max_ms"] / b["max_ms"], 2) if b["max_ms"] else None
    return out


def command(
    orders: Annotated[int, typer.Option(help="orders per pass")] = 30_000,
    resting: Annotated[int, typer.Option(help="passive orders resting in the book first")] = 20_000,
    rounds: Annotated[int, typer.Option(help="rounds, the modes' order alternating")] = 2,
    batch: Annotated[int, typer.Option(help="orders per submit call")] = 500,
    inflight: Annotated[int, typer.Option(help="batches outstanding (pipelining)")] = 2,
    snapshot_every: Annotated[int, typer.Option(help="events between snapshots, both modes")] = 10_000,
    check_s: Annotated[float, typer.Option(help="seconds between the snapshotter's looks")] = 0.5,
    profile: Annotated[Literal["price_time", "quality"], typer.Option(help="ranking")] = "price_time",
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL URL (default TRADEDESK_DATABASE_URL or embedded)")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Batch latency with inline vs background snapshots, same run."""
    args = SimpleNamespace(
        orders=orders,
        resting=resting,
        rounds=rounds,
        batch=batch,
        inflight=inflight,
        snapshot_every=snapshot_every,
        check_s=check_s,
        profile=profile,
        dsn=dsn,
    )
    emit(main(args), json_out)


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
