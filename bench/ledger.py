"""``tradedesk bench ledger``: durable ledger transfers per second, posted in batches, against one
transaction per transfer measured in the same run (real PostgreSQL, no Ray).

Transfers come from the kernel ledger (:class:`actors.core.posttrade.ledger.Ledger`, which checks
each one: ids, flags, two-phase rules) between ``--accounts`` cash accounts: half posted at once,
a quarter pending, a quarter posting an earlier pending (TigerBeetle's two-phase pattern). Each
batch is written like the settlement host writes one: binary COPY of the transfers, upsert of the
touched accounts' balances, the ``ledger_commits`` row whose deferred trigger checks debits ==
credits, one COMMIT (``synchronous_commit`` on: durable). Reports:

- ``transfers_per_s``: batched, wall clock (kernel + database), ``p50_ms``/``p99_ms`` per batch;
- ``cpu_us_per_transfer``: this process's CPU time per transfer (kernel + row building + driver);
- ``baseline``: one transaction per transfer (same statements), transfers/s, p50/p99;
- ``speedup``: batched / baseline; ``balanced``: the database's sums and the kernel's agree.

Example::

    tradedesk bench ledger --transfers 200000 --batch 5000 --json
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from actors.core.posttrade.ledger import CASH, PENDING, POST_PENDING, Ledger, Transfer, account_id
from bench import JsonOut
from bench.shard import _dsn, percentile
from persistence.settlement_rows import account_row, transfer_row
from persistence.settlement_store import write_ledger


def make_transfers(ledger: Ledger, n: int, accounts: int, seed: int, start: int) -> list[Transfer]:
    """``n`` transfers applied to ``ledger`` (ids ``T<start + i>.1``), amounts 1..10^7 paise."""
    rng = random.Random(seed)
    names = [account_id(f"P{i}", CASH) for i in range(accounts)]
    out: list[Transfer] = []
    last_pending: Transfer | None = None
    for i in range(n):
        tid = f"T{start + i}.1"
        if i % 4 == 3 and last_pending is not None:
            p = last_pending
            t = Transfer(tid, p.debit, p.credit, p.amount, POST_PENDING, p.id, "bench", "", i)
            last_pending = None
        else:
            dr, cr = rng.sample(names, 2)
            flags = PENDING if i % 4 == 2 else 0
            t = Transfer(tid, dr, cr, rng.randint(1, 10_000_000), flags, "", "bench", "", i)
            if flags:
                last_pending = t
        ledger.apply(t)
        out.append(t)
    return out


def _rows(ledger: Ledger, ts: list[Transfer]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    touched = dict.fromkeys(a for t in ts for a in (t.debit, t.credit))
    seq = int(ts[-1].id[1:].partition(".")[0])
    return [transfer_row(int(t.id[1:].partition(".")[0]), t) for t in ts], [
        account_row(ledger.accounts[a], seq) for a in touched
    ]


async def _run(args: SimpleNamespace, dsn: str) -> dict[str, Any]:
    import asyncpg

    from persistence.migrate import apply_migrations

    await asyncio.to_thread(apply_migrations, dsn)
    conn = await asyncpg.connect(dsn)
    ledger = Ledger()
    try:
        lat: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for b in range(0, args.transfers, args.batch):
            s = time.perf_counter()
            ts = make_transfers(ledger, min(args.batch, args.transfers - b), args.accounts, b, b + 1)
            tr, ac = _rows(ledger, ts)
            async with conn.transaction():
                await write_ledger(conn, tr, ac, b + len(ts), 0)
            lat.append((time.perf_counter() - s) * 1000)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        base_lat: list[float] = []
        start = args.transfers + 1
        b0 = time.perf_counter()
        for i in range(args.baseline_transfers):
            s = time.perf_counter()
            ts = make_transfers(ledger, 1, args.accounts, 10**6 + i, start + i)
            tr, ac = _rows(ledger, ts)
            async with conn.transaction():
                await write_ledger(conn, tr, ac, start + i, 0)
            base_lat.append((time.perf_counter() - s) * 1000)
        base_wall = time.perf_counter() - b0
        sums = await conn.fetchrow(
            "SELECT sum(debits_posted) dp, sum(credits_posted) cp, sum(debits_pending) dd,"
            " sum(credits_pending) cd, (SELECT count(*) FROM ledger_transfers) n FROM ledger_accounts"
        )
    finally:
        await conn.close()
    kernel_dp = sum(a.debits_posted for a in ledger.accounts.values())
    batched = args.transfers / wall
    baseline = args.baseline_transfers / base_wall if base_wall else 0.0
    return {
        "bench": "ledger",
        "transfers": args.transfers,
        "batch": args.batch,
        "accounts": args.accounts,
        "transfers_per_s": round(batched),
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "cpu_us_per_transfer": round(cpu * 1e6 / args.transfers, 1),
        "baseline": {
            "mode": "one transaction per transfer",
            "transfers": args.baseline_transfers,
            "transfers_per_s": round(baseline),
            "p50_ms": round(percentile(base_lat, 50), 3),
            "p99_ms": round(percentile(base_lat, 99), 3),
        },
        "speedup": round(batched / baseline, 1) if baseline else None,
        "balanced": sums["dp"] == sums["cp"] == kernel_dp and sums["dd"] == sums["cd"],
        "rows": int(sums["n"]),
    }


def main(args: SimpleNamespace) -> int:
    """Run the benchmark on a throw-away database; print JSON (``args.json``) or a summary."""
    dsn, cleanup = _dsn(args)
    try:
        out = asyncio.run(_run(args, dsn))
    finally:
        cleanup()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"ledger: {out['transfers_per_s']} transfers/s in batches of {args.batch} "
              f"(p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms) vs "
              f"{out['baseline']['transfers_per_s']}/s one per transaction")  # fmt: skip
    return 0


def command(
    transfers: Annotated[int, typer.Option(help="transfers posted in batches")] = 200_000,
    batch: Annotated[int, typer.Option(help="transfers per transaction")] = 5000,
    accounts: Annotated[int, typer.Option(help="distinct accounts")] = 1000,
    baseline_transfers: Annotated[int, typer.Option(help="transfers through the 1-per-txn baseline")] = 2000,
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL URL (default TRADEDESK_DATABASE_URL or embedded)")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Durable ledger transfers/s in batches vs one transaction per transfer."""
    raise typer.Exit(
        main(SimpleNamespace(transfers=transfers, batch=batch, accounts=accounts,
                             baseline_transfers=baseline_transfers, dsn=dsn, json=json_out))
    )  # fmt: skip
