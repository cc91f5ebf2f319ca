"""Alembic environment: runs the schema migrations over asyncpg (the server's one database driver).

The schema itself is the plain SQL in ``persistence/migrations/NNNN_name.sql``; each revision in
``versions/`` applies one file (:func:`persistence.migrate.sql_step`). A PostgreSQL advisory lock
serialises concurrent runners (several processes starting at once); each revision runs in its own
transaction with its version row. A database migrated by the earlier runner (table
``schema_migrations``) is adopted at its version before upgrading.
"""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.migrate import LOCK_KEY, VERSION_TABLE, adopt_legacy_versions


def _run(connection: Connection) -> None:
    connection.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_KEY})")
    try:
        adopt_legacy_versions(connection)
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=None,
            transaction_per_migration=True,
            version_table=VERSION_TABLE,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_KEY})")
        connection.commit()


async def _main(dsn: str) -> None:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=connect)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_main(context.config.attributes["dsn"]))
