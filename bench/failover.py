"""``tradedesk bench failover``: node loss and live moves on a multi-node Ray cluster on this machine.

For each history size H (``--events``, default 10k and 100k events), on a fresh
:class:`bench.local_cluster.LocalCluster` (head + two matching nodes): one cotton shard's log is
filled with H real engine events (``bench.recovery.fill_log``: snapshot every ``--snapshot-every``,
default the server's), its host starts on a matching node, and a client places orders at a steady
rate (``--rate`` orders/s in batches of ``--batch``), retrying a failed batch with the same client
order ids the way the gateway does. Then:

- **move**: the shard moves live to the other matching node (:func:`actors.handover.move_shard`):
  ``move_pause_ms`` (fence to promotion, in the directory), ``handover_client_max_ms`` (the slowest
  client batch overlapping the handover: what a client waits), ``move_client_max_ms`` (the slowest
  batch from the move's start to 2 s after it, the standby's recovery included), ``move_s`` (start
  of the standby to the end);
- **failover**: the matching node now hosting it is killed hard (raylet, object store, workers):
  ``failover_s`` = kill -> first batch acknowledged by the restarted host (a batch sent after the
  kill, or one retried after it failed; node-death detection, Ray restarting the actor on the other
  node, recovery from PostgreSQL), ``failover_recovery_s`` the recovery alone;
- **memory** (MiB): RSS, PSS (shared library pages split between the processes that map them) and
  USS (private) of the shard process, ``empty`` (a fresh shard), ``idle`` (H recovered, no traffic)
  and ``busy`` (under load), and ``shards_per_24gb_node``: how many busy shard processes (by PSS)
  fit in 24 GiB after a 2 GiB reserve for the raylet, object store and OS.

``--hosting commodity`` runs the shard inside a shared host process (actors/shard_hosting.py);
its memory figures are then the host's. Every acknowledged order is checked in the log (exactly
once, seqs gap-free). Node death is
detected after ~1.5 s here (``bench.local_cluster.HEALTH_CHECK``); Ray's default is ~15 s.
Example: ``tradedesk bench failover --events 10000,100000 --json``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Annotated, Any, cast

import typer

from bench import ADMIN_DSN, AdminDsn, JsonOut, emit
from bench.cleanup import Started
from bench.costs import memory_mib

NODE_BYTES = 24 * 1024**3
NODE_RESERVE_BYTES = 2 * 1024**3  # raylet, object store, OS
_EVENTS_SQL = "SELECT seq, type, ts, schema_version, {} FROM events WHERE shard_id = %s"


class Client:
    """Steady orders into one shard from a thread; a failed batch is sent again (same ids) to the
    directory's current host of the shard. ``acks``: (sent, answered) monotonic times per batch;
    ``retried_at``: the send times of the batches that needed more than one attempt."""

    def __init__(self, directory: Any, sid: str, region: str, rate: float, batch: int) -> None:
        self.directory, self.sid, self.region, self.batch = directory, sid, region, batch
        self.period = batch / rate
        self.acks: list[tuple[float, float]] = []
        self.retried_at: set[float] = set()
        self.coids: set[str] = set()
        self.errors = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import ray

        from bench.shard import T0, make_orders

        handle = ray.get(self.directory.get.remote(self.sid))
        k = 0
        while not self._stop.is_set():
            cmds = make_orders(self.region, "cotton", self.batch, seed=k, prefix=f"f{k}-", ts0=T0 + 10**9 + k)
            t0 = time.monotonic()
            while True:
                try:
                    res = ray.get(handle.submit.remote(cmds), timeout=120)
                    break
                except Exception:
                    self.errors += 1
                    self.retried_at.add(t0)
                    time.sleep(0.02)
                    handle = ray.get(self.directory.get.remote(self.sid))
            self.acks.append((t0, time.monotonic()))
            self.coids.update(r["client_order_id"] for r in res if r.get("status") != "REJECTED")
            k += 1
            time.sleep(max(0.0, self.period - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._stop.set()
        self._t.join(timeout=300)


def _check_log(dsn: str, sid: str, coids: set[str]) -> int:
    """Every acknowledged order accepted exactly once, seqs 1..n; returns n."""
    import psycopg2

    from persistence.event_store import STORED_PAYLOAD_SQL, decode_event, stored_payload

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(_EVENTS_SQL.format(STORED_PAYLOAD_SQL), (sid,))
            rows = sorted(cur.fetchall())
    finally:
        conn.close()
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "gap in the log"
    accepted = [
        decode_event(
            (s, t, ts, v, stored_payload(None if b is None else bytes(b), p))
        ).payload.order.client_order_id
        for s, t, ts, v, b, p in rows
        if t == "ORDER_ACCEPTED"
    ]
    assert len(accepted) == len(set(accepted)), "an order applied twice"
    assert coids <= set(accepted), "an acknowledged order is missing"
    return len(seqs)


def _one(dsn: str, events: int, snapshot_every: int, rate: float, batch: int, hosting: str) -> dict[str, Any]:
    import ray

    from actors.handover import move_shard
    from actors.runtime import start_runtime
    from actors.settings import Settings
    from bench.local_cluster import LocalCluster
    from bench.recovery import fill_log

    region = "IN-GJ"
    sid = f"{region}.cotton"
    from persistence.migrate import apply_migrations

    apply_migrations(dsn)
    seq, fill_s = fill_log(dsn, region, events, snapshot_every, 1000)
    cluster = LocalCluster(matching=2, risk=0, cpus_per_node=1)
    try:
        ns = f"td-fo-{uuid.uuid4().hex[:8]}"
        cluster.connect(ns)
        s = Settings(
            ray_namespace=ns,
            snapshot_every=snapshot_every,
            shard_creation="any",
            shard_idle_timeout_s=0,
            market_reference="none",  # the synthetic prices sit outside the Agmarknet band
            shard_hosting=dict.fromkeys(["*"], cast(Any, hosting)),
        )
        rt = start_runtime(s, dsn)
        empty = rt.shard("IN-MH", "cotton")
        mem_empty = memory_mib([ray.get(empty.info.remote())["pid"]])
        h = rt.shard(region, "cotton")
        info = ray.get(h.info.remote(), timeout=600)
        assert info["committed_seq"] == seq, (info["committed_seq"], seq)
        mem_idle = memory_mib([info["pid"]])
        client = Client(rt.directory, sid, region, rate, batch)
        time.sleep(3)
        src = info["node_id"]
        (dst,) = [n.node_id for n in cluster.matching if n.node_id != src]
        t_move = time.monotonic()
        moved = asyncio.run(move_shard(rt.directory, sid, dst))
        time.sleep(2)
        h0, h1 = moved["handover_window"]
        around = [b - a for a, b in client.acks if b >= t_move]
        handover = [b - a for a, b in client.acks if b >= h0 and a <= h1]
        mem_busy = memory_mib([moved["pid"]])
        (victim,) = [n for n in cluster.matching if n.node_id == dst]
        n_before = len(client.acks)
        t_kill = cluster.kill_node(victim)
        deadline = time.monotonic() + 600

        def served_again() -> list[float]:
            """Answers the new host gave: batches sent after the kill, or retried after it failed
            (a batch the dying host answered just before SIGKILL does not count)."""
            return [
                b for a, b in client.acks[n_before:] if b > t_kill and (a > t_kill or a in client.retried_at)
            ]

        while not served_again() and time.monotonic() < deadline:
            time.sleep(0.01)
        first = min(served_again())
        time.sleep(1)
        client.stop()
        h2 = ray.get(rt.directory.get.remote(sid))
        after = ray.get(h2.info.remote())
        n = _check_log(dsn, sid, client.coids)
        return {
            "hosting": hosting,
            "events": seq,
            "snapshot_every": snapshot_every,
            "fill_s": round(fill_s, 1),
            "start_recovery_s": info["recovery_s"],
            "move_pause_ms": moved["pause_ms"],
            "move_client_max_ms": round(max(around) * 1000, 1),
            "handover_client_max_ms": round(max(handover, default=0.0) * 1000, 1),
            "move_s": moved["move_s"],
            "failover_s": round(first - t_kill, 3),
            "failover_recovery_s": after["recovery_s"],
            "failover_replayed_events": after["recovered_events"],
            "client_batches": len(client.acks),
            "client_retries": client.errors,
            "orders_acked": len(client.coids),
            "log_events": n,
            "mem_empty": mem_empty,
            "mem_idle": mem_idle,
            "mem_busy": mem_busy,
        }
    finally:
        cluster.shutdown()


def main(
    events: list[int], snapshot_every: int, rate: float, batch: int, admin_dsn: str, hosting: str = "process"
) -> dict[str, Any]:
    """Run the benchmark; returns the result dict (see the module docstring)."""
    import os

    out: dict[str, Any] = {"bench": "failover", "load_avg_1m": round(os.getloadavg()[0], 2), "runs": []}
    for n in events:
        with Started() as started:
            dsn = started.database(admin_dsn)
            out["runs"].append(_one(dsn, n, snapshot_every, rate, batch, hosting))
    busy = max(r["mem_busy"]["pss"] for r in out["runs"])
    out["shards_per_24gb_node"] = int((NODE_BYTES - NODE_RESERVE_BYTES) / (busy * 2**20))
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return out


def command(
    events: Annotated[str, typer.Option(help="history sizes, comma-separated")] = "10000,100000",
    snapshot_every: Annotated[int, typer.Option(help="events between snapshots")] = 100_000,
    rate: Annotated[float, typer.Option(help="client orders/s during the move and the kill")] = 200.0,
    batch: Annotated[int, typer.Option(help="orders per client batch")] = 10,
    hosting: Annotated[
        str, typer.Option(help="process | commodity | region (actors/shard_hosting.py)")
    ] = "process",
    admin_dsn: AdminDsn = ADMIN_DSN,
    json_out: JsonOut = False,
) -> None:
    """Failover and live-move pauses by history size, memory per shard, shards per 24 GB node."""
    from actors.shard_hosting import MODES

    if hosting not in MODES:
        raise typer.BadParameter(f"--hosting must be one of {', '.join(MODES)}")
    sizes = [int(x) for x in events.split(",") if x.strip()]
    emit(main(sizes, snapshot_every, rate, batch, admin_dsn, hosting), json_out)
