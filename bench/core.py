"""Benchmark of the pure matching core: ``tradedesk bench core --profile P --orders N --json``.

A seeded workload of place (60%), cancel (25%) and amend (15%) commands on a cotton shard with a
resting book of about ``--resting`` orders per side; new orders are priced around the mid so about a
third of them cross. Commands run in batches (``--batch``) through :meth:`ShardEngine.execute`;
command generation is outside the timed region. Prints throughput and per-command latency
percentiles (batch time / batch size) and, measured in the same run on the same commands, a
baseline: a straightforward list-scan book (scan every resting order, filter, sort, fill) with no
events, validation or risk (it shares the core's hard filters and order building).
``orders_per_cpu_s`` divides by the thread's CPU time instead of wall time: on a machine shared
with other work it shows the code's own cost. ``--memory``: see :mod:`bench.core_memory`.
"""

from __future__ import annotations

import json
import random
import time
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import typer

from actors.core.commands import AmendOrder, CancelOrder, PlaceOrder
from actors.core.engine import ShardEngine
from actors.core.orders import Order
from actors.core.scoring import hard_filters
from actors.gc_tuning import tune_gc_for_matching
from bench import JsonOut, core_memory

REGION = "IN-GJ"
MID = 7_000  # paise/kg, about the Gujarat kapas modal price in the Agmarknet data (Rs 7,000/quintal)
TARGETS = {"price_time": 120_000, "quality": 60_000}  # issue 13 (ahead of PyLOB, a pure-Python book)


class Workload:
    """Seeded command generator that tracks which of its orders are still live."""

    def __init__(self, seed: int, profile: str):
        self.rng = random.Random(seed)
        self.profile = profile
        self.n = 0
        self.ts = 1_700_000_000_000

    def place(self, side: str | None = None, spread: int = 300, cross_at: int | None = None) -> PlaceOrder:
        """A new order; passive (priced away from the mid) unless ``cross_at`` gives the best
        opposite price to cross by up to 30 paise/kg."""
        r = self.rng
        self.n += 1
        self.ts += 1
        side = side or r.choice(("BUY", "SELL"))
        if cross_at is not None:
            price = cross_at + r.randint(0, 30) if side == "BUY" else cross_at - r.randint(0, 30)
        elif side == "SELL":
            price = MID + r.randint(1, spread)
        else:
            price = MID - r.randint(1, spread)
        lat = 21.0 + r.random() * 3.0
        lon = 69.5 + r.random() * 4.0
        kw: dict[str, Any] = {}
        if self.profile == "quality":
            staple = r.uniform(26.0, 31.0)
            mic = r.uniform(3.4, 4.9)
            strength = r.uniform(26.0, 32.0)
            if side == "SELL":
                kw["quality"] = {
                    "staple_length_mm": round(staple, 1),
                    "micronaire": round(mic, 2),
                    "strength_gtex": round(strength, 1),
                }
            else:
                kw["quality_ranges"] = {
                    "staple_length_mm": (round(staple - 1.5, 1), round(staple + 1.5, 1)),
                    "micronaire": (round(mic - 0.6, 2), round(mic + 0.6, 2)),
                }
                kw["max_distance_km"] = 400.0
        return PlaceOrder(
            ts=self.ts,
            party_id=f"P{r.randint(1, 200)}",
            client_order_id=f"c{self.n}",
            side=side,
            commodity="cotton",
            region=REGION,
            quantity_kg=r.choice((1700, 3400, 8500, 17000)),
            price=price,
            lat=lat,
            lon=lon,
            **kw,
        )

    def batch(self, engine: ShardEngine, size: int, target: int) -> list[Any]:
        """``size`` commands: 60% place, 25% cancel, 15% amend (70% quantity down, 30% price move).
        The share of crossing places rises with the book above ``target`` orders per side, so the
        resting book stays near its target size."""
        r = self.rng
        out: list[Any] = []
        resting = _sample_resting(engine, r, size)
        fullness = (len(engine.bids) + len(engine.asks)) / (2 * target)
        p_cross = min(0.95, max(0.05, 0.35 + 1.5 * (fullness - 1.0)))
        best_bid, best_ask = engine.bids.best_price(), engine.asks.best_price()
        for _ in range(size):
            x = r.random()
            if x < 0.60 or not resting:
                side = r.choice(("BUY", "SELL"))
                opp = best_ask if side == "BUY" else best_bid
                cross = opp is not None and r.random() < p_cross
                out.append(self.place(side=side, cross_at=opp if cross else None))
                continue
            o = resting.pop()
            self.ts += 1
            if x < 0.85:
                out.append(CancelOrder(self.ts, o.party_id, o.order_id))
            elif r.random() < 0.7:
                out.append(
                    AmendOrder(self.ts, o.party_id, o.order_id, quantity_kg=max(1, o.quantity_kg - 100))
                )
            else:
                out.append(AmendOrder(self.ts, o.party_id, o.order_id, price=o.price + r.choice((-20, 20))))
        return out


def _sample_resting(engine: ShardEngine, rng: random.Random, k: int) -> list[Order]:
    pool: list[Order] = []
    for side in (engine.bids, engine.asks):
        for lvl in side.levels.values():
            pool.extend(lvl.values())
    rng.shuffle(pool)
    return pool[: k // 2]


class ListScanBook:
    """Baseline: resting orders in two plain lists; every taker scans the whole opposite list."""

    def __init__(self) -> None:
        self.bids: list[Order] = []
        self.asks: list[Order] = []
        self.by_key: dict[tuple[str, str], Order] = {}
        self.ids: dict[str, Order] = {}

    def place(self, cmd: PlaceOrder, engine_like: ShardEngine, oid: str, prio: int) -> None:
        o = engine_like._order_from_command(cmd, oid, prio, None)
        opp = self.asks if o.side == "BUY" else self.bids
        cands = []
        for r in opp:
            buy, sell = (o, r) if o.side == "BUY" else (r, o)
            if hard_filters(buy, sell) is not None:
                cands.append(r)
        cands.sort(key=lambda r: (r.price if o.side == "BUY" else -r.price, r.priority))
        for r in cands:
            q = min(o.open_kg, r.open_kg)
            o.open_kg -= q
            r.open_kg -= q
            if r.open_kg == 0:
                opp.remove(r)
            if o.open_kg == 0:
                break
        if o.open_kg:
            (self.bids if o.side == "BUY" else self.asks).append(o)
            self.ids[oid] = o

    def cancel(self, oid: str) -> None:
        o = self.ids.pop(oid, None)
        if o is not None and o.open_kg:
            side = self.bids if o.side == "BUY" else self.asks
            if o in side:
                side.remove(o)


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def run(profile: str, orders: int, resting: int, batch_size: int, seed: int) -> dict[str, Any]:
    """Run the benchmark and return the figures (see module docstring)."""
    engine = ShardEngine(REGION, "cotton", profile=profile)
    wl = Workload(seed, profile)
    # Warm-up: fill the book to about `resting` orders per side with non-crossing orders.
    id_map: dict[str, str] = {}
    while len(engine.bids) < resting or len(engine.asks) < resting:
        side = "BUY" if len(engine.bids) < len(engine.asks) else "SELL"
        cmd = wl.place(side=side, spread=300)
        r0 = engine.execute([cmd]).results[0]
        id_map[r0["order_id"]] = cmd.client_order_id
    batches: list[list[Any]] = []
    per_cmd_us: list[float] = []
    batch_ms: list[float] = []
    done = 0
    events = 0
    allocations = 0
    t_total = 0.0
    cpu_total = 0.0
    while done < orders:
        size = min(batch_size, orders - done)
        cmds = wl.batch(engine, size, resting)
        batches.append(cmds)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        res = engine.execute(cmds)
        dt = time.perf_counter() - t0
        cpu_total += time.thread_time() - c0
        t_total += dt
        batch_ms.append(dt * 1e3)
        per_cmd_us.append(dt * 1e6 / size)
        for c, r in zip(cmds, res.results, strict=True):
            if type(c) is PlaceOrder and r.get("order_id"):
                id_map[r["order_id"]] = c.client_order_id
        events += len(res.events)
        allocations += sum(1 for e in res.events if e.type == "ALLOCATED")
        done += size
    out: dict[str, Any] = {
        "benchmark": "core",
        "profile": profile,
        "orders": done,
        "batch_size": batch_size,
        "orders_per_s": round(done / t_total),
        "orders_per_cpu_s": round(done / cpu_total),
        "p50_us": round(_pct(per_cmd_us, 50), 2),
        "p99_us": round(_pct(per_cmd_us, 99), 2),
        "batch_p50_ms": round(_pct(batch_ms, 50), 3),
        "batch_p99_ms": round(_pct(batch_ms, 99), 3),
        "events": events,
        "allocations": allocations,
        "resting_bids": len(engine.bids),
        "resting_asks": len(engine.asks),
        "target_orders_per_s": TARGETS[profile],
    }
    out["baseline"] = _baseline(profile, resting, batches, seed, id_map)
    return out


def _baseline(
    profile: str, resting: int, batches: list[list[Any]], seed: int, id_map: dict[str, str]
) -> dict[str, Any]:
    """Replay the same commands through the list-scan baseline (cancel/amend as cancel-by-id)."""
    book = ListScanBook()
    helper = ShardEngine(REGION, "cotton", profile=profile)
    wl = Workload(seed, profile)
    prio = 0
    while len(book.bids) < resting or len(book.asks) < resting:
        side = "BUY" if len(book.bids) < len(book.asks) else "SELL"
        prio += 1
        cmd = wl.place(side=side, spread=300)
        book.place(cmd, helper, cmd.client_order_id, prio)
    per_cmd_us: list[float] = []
    t_total = 0.0
    cpu_total = 0.0
    n = 0
    for cmds in batches:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        for c in cmds:
            prio += 1
            if type(c) is PlaceOrder:
                book.place(c, helper, c.client_order_id, prio)
            else:
                book.cancel(id_map.get(c.order_id, ""))
        dt = time.perf_counter() - t0
        cpu_total += time.thread_time() - c0
        t_total += dt
        n += len(cmds)
        per_cmd_us.append(dt * 1e6 / len(cmds))
    return {
        "name": "list_scan",
        "orders_per_s": round(n / t_total) if t_total else 0,
        "orders_per_cpu_s": round(n / cpu_total) if cpu_total else 0,
        "p50_us": round(_pct(per_cmd_us, 50), 2),
        "p99_us": round(_pct(per_cmd_us, 99), 2),
        "resting_bids": len(book.bids),
        "resting_asks": len(book.asks),
    }


def main(a: SimpleNamespace) -> int:
    """Run the benchmark with the options of :func:`command`; prints the report. Returns 0."""
    if a.memory:
        res = core_memory.run(a.orders, a.resting, a.unbounded_max)
    else:
        if not a.default_gc:
            tune_gc_for_matching()
        res = run(a.profile, a.orders, a.resting, a.batch, a.seed)
    if a.json:
        print(json.dumps(res))
    else:
        for k, val in res.items():
            print(f"{k:>16}: {val}")
    return 0


def command(
    profile: Annotated[Literal["price_time", "quality"], typer.Option()] = "price_time",
    orders: int = 100_000,
    resting: Annotated[int, typer.Option(help="resting orders per side before the run")] = 1_000,
    batch: int = 256,
    seed: int = 7,
    json_out: JsonOut = False,
    default_gc: Annotated[
        bool, typer.Option("--default-gc", help="keep CPython's default GC thresholds")
    ] = False,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory", help="RSS and snapshot size: open book alone vs after --orders closed orders"
        ),
    ] = False,
    unbounded_max: Annotated[
        int, typer.Option(help="--memory: also measure an unbounded window up to this many orders")
    ] = 200_000,
) -> None:
    """Pure matching core vs a list-scan baseline (no Ray, no database); ``--memory``: the core's
    memory with and without history (bench/core_memory.py)."""
    raise typer.Exit(
        main(SimpleNamespace(profile=profile, orders=orders, resting=resting, batch=batch, seed=seed,
                             json=json_out, default_gc=default_gc, memory=memory,
                             unbounded_max=unbounded_max))
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
