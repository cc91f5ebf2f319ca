"""``tradedesk bench rollback``: what it costs to undo a batch whose commit failed (no Ray, no database).

A shard service on the in-memory event store takes ``--orders`` synthetic cotton orders in batches
of ``--batch`` (snapshots inline, every ``--snapshot-every`` events), then one batch's commit
fails. Reports:

- ``batch_match_ms``: mean time of one batch (match + rows + in-memory commit);
- ``engine_snapshot_ms``: one ``engine.snapshot()`` of the final book: the price of keeping a
  pre-batch copy per batch, the rejected design;
- ``rollback_shadow_ms``: the failed batch's rollback as built: the committed-state shadow engine
  is swapped in (then one store read after the committed seq);
- ``rollback_checkpoint_ms``: the fallback without a shadow: the latest snapshot bytes in memory +
  the committed event rows since it;
- ``full_log_rebuild_ms``: the former recovery after a failed commit (every event of the log).

Example::

    tradedesk bench rollback --orders 20000 --json
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Annotated, Any

import typer

from actors.shard_outcomes import ShardUnavailable
from actors.shard_service import ShardService
from bench import JsonOut
from bench.shard import make_orders
from persistence.event_store import BatchRows
from persistence.memory_store import MemoryEventStore
from persistence.store import CommitFailed

REGION = "IN-GJ"


class _FailNext(MemoryEventStore):
    fail = False

    async def append(self, rows: BatchRows) -> int:
        if self.fail:
            self.fail = False
            raise CommitFailed("injected by the benchmark")
        return await super().append(rows)


async def _run(n: int, batch: int, snapshot_every: int) -> dict[str, Any]:
    store = _FailNext()
    svc = ShardService(
        REGION, "cotton", store, snapshot_every=snapshot_every, shadow=True, snapshot_mode="inline"
    )
    await svc.start(0)
    cmds = make_orders(REGION, "cotton", n + batch, seed=5, prefix="r")
    t0 = time.perf_counter()
    for j in range(0, n, batch):
        await svc.submit(cmds[j : j + batch])
    match_ms = (time.perf_counter() - t0) * 1000 / max(1, n // batch)
    await svc.flush()
    engine = await svc._ready()
    t = time.perf_counter()
    engine.snapshot()
    snapshot_ms = (time.perf_counter() - t) * 1000
    rollback: dict[str, Any] = {}
    for mode in ("shadow", "checkpoint"):
        if mode == "shadow" and svc.shadow is not None:
            await svc.shadow.wait()  # the shadow built after start has caught up
        else:
            svc.shadow = None
        store.fail = True
        with contextlib.suppress(ShardUnavailable):
            await svc.submit(cmds[n:])
        t = time.perf_counter()
        await svc.submit([])  # rolls back first
        rollback[f"rollback_{mode}_ms"] = round((time.perf_counter() - t) * 1000, 2)
        rollback[f"rollback_{mode}_source"] = svc.info()["recovery_source"]
        rollback[f"rollback_{mode}_events_applied"] = svc.info()["recovered_events"]
    log = MemoryEventStore()
    log.events = store.events  # the same log, no snapshot: every event is applied
    full = ShardService(REGION, "cotton", log)
    t = time.perf_counter()
    await full.start(0)
    rebuild_ms = (time.perf_counter() - t) * 1000
    return {
        "bench": "rollback",
        "orders": n,
        "batch": batch,
        "log_events": svc.committed_seq,
        "book_orders": engine.stats().get("book_size"),
        "snapshot_every": snapshot_every,
        "batch_match_ms": round(match_ms, 2),
        "engine_snapshot_ms": round(snapshot_ms, 1),
        **rollback,
        "full_log_rebuild_ms": round(rebuild_ms, 1),
    }


def command(
    orders: Annotated[int, typer.Option(help="orders placed before the rollback")] = 20_000,
    batch: Annotated[int, typer.Option(help="commands per batch")] = 50,
    snapshot_every: Annotated[int, typer.Option(help="events between snapshots")] = 10_000,
    json_out: JsonOut = False,
) -> None:
    """Time the ways a shard gets back its committed state after a failed commit."""
    res = asyncio.run(_run(orders, batch, snapshot_every))
    print(json.dumps(res) if json_out else json.dumps(res, indent=2))


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
