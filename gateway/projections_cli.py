"""``tradedesk projections rebuild [--shard S] [--dsn URL] [--json]``: rebuild the read models
(``orders``, ``allocations``, ``proposals``, ``reservations``, ``client_orders``) from the log.

Empties the projections of one shard (or of every shard) and projects its whole log again from a
fresh engine, one transaction per shard (:meth:`persistence.projector.Projector.rebuild`): readers
see the old rows until it commits, a running projector skips the shard meanwhile and follows on from
the new checkpoint. Connects to ``--dsn`` or ``TRADEDESK_DATABASE_URL``. Prints the events projected
per shard; exit 0 ok, 2 usage or connection error (one line on stderr).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Projections (read models) of the log.")


async def _rebuild(dsn: str, shard: str | None) -> dict[str, int]:
    import asyncpg

    from persistence.migrate import apply_migrations
    from persistence.projection_store import init_connection
    from persistence.projector import Projector

    await asyncio.to_thread(apply_migrations, dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
    try:
        return await Projector(pool).rebuild(shard)
    finally:
        await pool.close()


def _fail(msg: str) -> None:
    print(f"tradedesk projections: {msg}", file=sys.stderr)
    raise typer.Exit(2)


@app.command()
def rebuild(
    shard: Annotated[str | None, typer.Option(help="one shard id (region.commodity); default: all")] = None,
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL URL (default TRADEDESK_DATABASE_URL)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Empty and rebuild the projections of one shard (or all) from the event log."""
    from actors.settings import Settings

    url = dsn or Settings().database_url
    if not url:
        _fail("no database: pass --dsn or set TRADEDESK_DATABASE_URL")
    try:
        done: dict[str, Any] = asyncio.run(_rebuild(str(url), shard))
    except KeyError:
        _fail(f"no shard {shard!r}")
    except (OSError, ConnectionError) as exc:
        _fail(f"cannot connect to the database: {exc}")
    if json_out:
        print(json.dumps({"rebuilt": done}))
    else:
        for sid, n in done.items():
            print(f"{sid}: {n:,} events projected")
