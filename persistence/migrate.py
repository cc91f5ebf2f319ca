"""Versioned SQL migrations: plain ``NNNN_name.sql`` files applied in order, once each.

Applied versions are recorded in ``schema_migrations(version, name, applied_at)``. Each file runs in
its own transaction together with its ``schema_migrations`` row, so a failing file leaves nothing
half-applied. A PostgreSQL advisory lock serialises concurrent runners (several processes starting at
once). Files are read from ``persistence/migrations`` plus any extra directories given.

Usage::

    from persistence.migrate import apply_migrations
    applied = apply_migrations("postgresql://postgres@127.0.0.1:5432/test")   # -> ["0001_core", ...]

or ``python -m persistence.migrate DSN``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_\-]+)\.sql$")
_LOCK_KEY = 7_301_995_001  # advisory lock id for migration runs

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``version`` (the 4-digit prefix), ``name`` (``0001_core``), ``path``."""

    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(dirs: Iterable[Path] | None = None) -> list[Migration]:
    """All migration files in ``dirs`` (default: the package's ``migrations`` directory), sorted by
    version. Raises ``ValueError`` when two files share a version."""
    found: dict[int, Migration] = {}
    for d in list(dirs) if dirs is not None else [MIGRATIONS_DIR]:
        for p in sorted(Path(d).glob("*.sql")):
            m = _FILE_RE.match(p.name)
            if not m:
                continue
            version = int(m.group(1))
            mig = Migration(version, p.stem, p)
            if version in found and found[version].path != p:
                raise ValueError(f"duplicate migration version {version}: {found[version].path} and {p}")
            found[version] = mig
    return [found[v] for v in sorted(found)]


def _to_libpq(dsn: str) -> str:
    # psycopg2 understands postgresql:// URLs; asyncpg-style "postgres://" is fine too.
    return dsn


def apply_migrations(dsn: str, extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Apply every pending migration to the database at ``dsn``; return the names applied now
    (empty when the schema is current). Safe to call from several processes at once."""
    import psycopg2

    migrations = discover([MIGRATIONS_DIR, *extra_dirs])
    conn = psycopg2.connect(_to_libpq(dsn))
    applied_now: list[str] = []
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(_CREATE_TABLE)
                cur.execute("SELECT version FROM schema_migrations")
                done = {r[0] for r in cur.fetchall()}
            conn.commit()
            for mig in migrations:
                if mig.version in done:
                    continue
                with conn.cursor() as cur:
                    cur.execute(mig.sql())
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (mig.version, mig.name),
                    )
                conn.commit()
                applied_now.append(mig.name)
        except Exception:
            conn.rollback()
            raise
        finally:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()
    return applied_now


def current_version(dsn: str) -> int:
    """Highest applied migration version (0 when none)."""
    import psycopg2

    conn = psycopg2.connect(_to_libpq(dsn))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            row = cur.fetchone()
            if not row or not row[0]:
                return 0
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


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
