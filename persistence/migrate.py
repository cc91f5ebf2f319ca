"""Versioned schema migrations, run by Alembic over asyncpg.

The schema's one source is the plain SQL in ``persistence/migrations/NNNN_name.sql``; Alembic
(``persistence/alembic``) orders and records them: revision ``NNNN`` applies file ``NNNN_name.sql``
(:func:`sql_step`), each in its own transaction with its row in ``tradedesk_schema_version``, so a
failing file leaves nothing half-applied. A PostgreSQL advisory lock serialises concurrent runners. Databases
migrated by the earlier in-house runner (table ``schema_migrations``) are adopted at their version.

Usage::

    from persistence.migrate import apply_migrations
    applied = apply_migrations("postgresql://postgres@127.0.0.1:5432/test")   # -> ["0001_core", ...]

or ``python -m persistence.migrate DSN``. A new migration is a new ``NNNN_name.sql`` plus a
three-line revision in ``persistence/alembic/versions/NNNN_name.py`` (a unit test checks the pairs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
LOCK_KEY = 7_301_995_001  # advisory lock id for migration runs
# Alembic's record of the applied revision; not ``alembic_version``, which MLflow's own Alembic
# migrations use when its tracking store shares the database.
VERSION_TABLE = "tradedesk_schema_version"
T = TypeVar("T")
_FILE_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_\-]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``version`` (the 4-digit prefix), ``name`` (``0001_core``), ``path``."""

    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files, sorted by version. Raises ``ValueError`` when two files share a version."""
    found: dict[int, Migration] = {}
    for p in sorted(directory.glob("*.sql")):
        m = _FILE_RE.match(p.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise ValueError(f"duplicate migration version {version}: {found[version].path} and {p}")
        found[version] = Migration(version, p.stem, p)
    return [found[v] for v in sorted(found)]


def sql_step(name: str) -> Callable[[], None]:
    """An Alembic ``upgrade()`` that runs ``persistence/migrations/<name>.sql`` as one script."""

    def upgrade() -> None:
        from alembic import op

        sql = (MIGRATIONS_DIR / f"{name}.sql").read_text(encoding="utf-8")
        # asyncpg's simple-query path runs a multi-statement script (prepared statements cannot)
        raw = op.get_bind().connection.dbapi_connection
        raw.run_async(lambda conn: conn.execute(sql))  # type: ignore[union-attr]

    return upgrade


def adopt_legacy_versions(connection: Connection) -> None:
    """Record in the version table the version a database reached under the earlier runner."""
    has = connection.exec_driver_sql(
        "SELECT to_regclass('schema_migrations') IS NOT NULL,"
        " to_regclass('tradedesk_schema_version') IS NOT NULL"
    ).one()
    if not has[0] or has[1]:
        return
    version = connection.exec_driver_sql("SELECT max(version) FROM schema_migrations").scalar()
    connection.exec_driver_sql(f"CREATE TABLE {VERSION_TABLE} (version_num varchar(32) NOT NULL PRIMARY KEY)")
    if version:
        connection.exec_driver_sql(f"INSERT INTO {VERSION_TABLE} VALUES ('{int(version):04d}')")


def _config(dsn: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.attributes["dsn"] = dsn
    return cfg


def _outside_event_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` here, or in a worker thread when this thread already runs an event loop (the
    migration code runs its own loop, which cannot nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def current_version(dsn: str) -> int:
    """Highest applied migration version (0 when none; the earlier runner's record counts too)."""
    import asyncpg

    async def read() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('tradedesk_schema_version') IS NOT NULL"):
                rev = await conn.fetchval(f"SELECT version_num FROM {VERSION_TABLE}")
            elif await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                rev = await conn.fetchval("SELECT max(version) FROM schema_migrations")  # earlier runner
            else:
                return 0
            return int(rev) if rev else 0
        finally:
            await conn.close()

    return _outside_event_loop(lambda: asyncio.run(read()))


def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration to the database at ``dsn``; return the names applied now
    (empty when the schema is current). Safe to call from several processes at once.

    Raises whatever the failing SQL raises (asyncpg errors); that migration is not recorded.
    """
    from alembic import command

    before = current_version(dsn)
    _outside_event_loop(lambda: command.upgrade(_config(dsn), "head"))
    after = current_version(dsn)
    return [m.name for m in discover() if before < m.version <= after]


def main(argv: list[str] | None = None) -> int:
    """``python -m persistence.migrate DSN``: apply pending migrations, print their names."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m persistence.migrate DSN", file=sys.stderr)
        return 2
    for name in apply_migrations(args[0]):
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
