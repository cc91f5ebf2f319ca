"""Memory of the pure core: ``tradedesk bench core --memory --orders N --resting R --json``.

Each figure comes from a fresh process (``multiprocessing`` spawn), so one engine's freed memory
never hides another's: process RSS (psutil, after a full garbage collection; ``engine_rss_mb``: minus the
RSS of the same process before it built anything) and the snapshot's stored size (zlib JSON,
:func:`persistence.event_store.encode_snapshot`, what a shard stores) of

- ``open_only``: an engine holding an open book of ``R`` orders per side and no history;
- ``after_history``: the same open book, then ``N`` orders placed and closed (two of every three
  fill each other at once, one in three is cancelled; a group a second), with the default retention window;
- ``unbounded``: the same run with a window larger than the history (what the engine kept before
  closed orders left memory), when ``N`` is at most ``--unbounded-max`` (memory grows with N).

Target (issue 13): ``after_history`` RSS at most 1.2x ``open_only``; snapshot size proportional to
the open book, not the history.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import time
from typing import Any

import psutil

from actors.core.commands import CancelOrder, PlaceOrder
from actors.core.engine import ShardEngine
from actors.core.state import CLOSED_RETENTION
from actors.gc_tuning import tune_gc_for_matching

REGION = "IN-GJ"
BATCH = 999  # commands per execute(): 333 groups of (sell, buy that fills it, sell, cancel) / 4 * 3


def _order(ts: int, party: str, coid: str, side: str, price: int, qty: int, lat: float) -> PlaceOrder:
    """A plain cotton order at (``lat``, 70.8) in the bench's region (kg, paise/kg, epoch ms)."""
    return PlaceOrder(ts, party, coid, side, "cotton", REGION, qty, price, lat, 70.8)


def _open_book(engine: ShardEngine, per_side: int, ts: int) -> int:
    """``per_side`` resting bids (6,000..6,499 paise/kg) and asks (7,501..8,000) that never cross."""
    cmds: list[Any] = []
    for i in range(per_side):
        cmds.append(_order(ts, f"B{i % 50}", f"ob{i}", "BUY", 6000 + i % 500, 1700, 22.0 + (i % 97) / 100))
        cmds.append(_order(ts, f"S{i % 50}", f"os{i}", "SELL", 8000 - i % 500, 1700, 22.0 + (i % 89) / 100))
        ts += 1
        if len(cmds) >= BATCH:
            engine.execute(cmds)
            cmds = []
    engine.execute(cmds)
    return ts


def _history(engine: ShardEngine, orders: int, ts: int) -> int:
    """``orders`` orders placed and closed between the open book's sides: per three orders a sell
    and a buy at 7,000 paise/kg that fill each other, and a buy at 6,900 that is then cancelled;
    one group per second of command time."""
    n = 0
    while n < orders:
        cmds: list[Any] = []
        ids: set[str] = set()
        while len(cmds) < BATCH and n < orders:
            lat = 21.0 + (n % 1000) / 1000
            cmds.append(_order(ts, f"H{n % 40}", f"h{n}", "SELL", 7000, 1700, lat))
            cmds.append(_order(ts + 1, f"G{n % 40}", f"h{n + 1}", "BUY", 7000, 1700, lat))
            cmds.append(_order(ts + 2, f"G{n % 40}", f"h{n + 2}", "BUY", 6900, 3400, lat))
            ids.add(f"h{n + 2}")
            n += 3
            ts += 1000  # one group a second: the breaker's 15-minute trade window stays realistic
        res = engine.execute(cmds)
        cancels: list[Any] = []
        for cmd, r in zip(cmds, res.results, strict=True):
            if cmd.client_order_id in ids and r["status"] == "ACCEPTED":
                cancels.append(CancelOrder(ts, cmd.party_id, r["order_id"]))
        ts += 1
        engine.execute(cancels)
    return ts


def _measure(kind: str, orders: int, per_side: int, keep: int, out: Any) -> None:
    """Child process: build the engine of ``kind`` and put its figures on ``out``."""
    from persistence.event_store import encode_snapshot  # the bench may use persistence

    tune_gc_for_matching()
    gc.collect()
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    engine = ShardEngine(REGION, "cotton", profile="price_time", closed_retention=keep)
    t0 = time.perf_counter()
    ts = _open_book(engine, per_side, 1_700_000_000_000)
    if kind != "open_only":
        _history(engine, orders, ts)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss = proc.memory_info().rss
    blob = encode_snapshot(engine.snapshot())
    out.put(
        {
            "kind": kind,
            "rss_mb": round(rss / 2**20, 1),
            "engine_rss_mb": round((rss - rss0) / 2**20, 1),
            "snapshot_bytes": len(blob),
            "orders_in_memory": len(engine.orders),
            "results_in_memory": len(engine.results),
            "resting": len(engine.bids) + len(engine.asks),
            "seq": engine.seq,
            "evicted_any": engine.evicted_any,
            "build_s": round(build_s, 1),
        }
    )


def _in_child(kind: str, orders: int, per_side: int, keep: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(kind, orders, per_side, keep, q))
    p.start()
    res = q.get()
    p.join()
    return dict(res)


def run(orders: int, per_side: int, unbounded_max: int) -> dict[str, Any]:
    """The memory figures (see the module docstring)."""
    open_only = _in_child("open_only", 0, per_side, CLOSED_RETENTION)
    after = _in_child("after_history", orders, per_side, CLOSED_RETENTION)
    unbounded = None
    if orders <= unbounded_max:
        unbounded = _in_child("unbounded", orders, per_side, orders + 2 * per_side + 10)
    return {
        "benchmark": "core_memory",
        "orders_closed": orders,
        "resting_per_side": per_side,
        "closed_retention": CLOSED_RETENTION,
        "open_only": open_only,
        "after_history": after,
        "unbounded": unbounded,
        "rss_ratio": round(after["rss_mb"] / open_only["rss_mb"], 3),
        "engine_rss_ratio": round(after["engine_rss_mb"] / max(open_only["engine_rss_mb"], 0.1), 3),
        "snapshot_ratio": round(after["snapshot_bytes"] / open_only["snapshot_bytes"], 3),
        "target_rss_ratio": 1.2,
    }
