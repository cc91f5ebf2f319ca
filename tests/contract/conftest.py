"""The event-store contract suite runs once per implementation: ``memory``, ``postgres`` (a fresh
database of the machine's PostgreSQL, migrated) and ``writer`` (a shard's own writer on it). Each
test uses its own shard ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.conftest import create_database, drop_database


@pytest.fixture(scope="module")
def contract_dsn() -> Iterator[str]:
    """A migrated database for the PostgreSQL run of the suite."""
    from persistence.migrate import apply_migrations

    name, dsn = create_database()
    apply_migrations(dsn)
    yield dsn
    drop_database(name)


@pytest.fixture(params=["memory", "postgres", "writer", "writer-inline"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """An :class:`persistence.store.EventStore` of each implementation (``writer``: a shard actor's
    own :class:`persistence.shard_writer.ShardWriter`, appending in its commit thread;
    ``writer-inline``: the same on the caller's loop)."""
    if request.param == "memory":
        from persistence.memory_store import MemoryEventStore

        yield MemoryEventStore()
        return
    if request.param.startswith("writer"):
        from persistence.shard_writer import ShardWriter

        writer = ShardWriter(request.getfixturevalue("contract_dsn"), commit_thread=request.param == "writer")
        try:
            yield writer
        finally:
            await writer.aclose()
        return
    import asyncpg

    from persistence.pg_store import PostgresEventStore

    dsn = request.getfixturevalue("contract_dsn")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    try:
        yield PostgresEventStore(pool)
    finally:
        await pool.close()


@pytest.fixture()
def region() -> str:
    """A region code private to the test (shard ids never collide between tests)."""
    from tests.integration.conftest import unique_region

    return unique_region()
