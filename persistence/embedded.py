"""Embedded PostgreSQL (pgserver) for a fresh machine: used when no database URL is configured.

``ensure_database(settings)`` returns ``settings.database_url`` when set; otherwise it starts (or
reuses) a PostgreSQL server whose data lives in ``<data_dir>/pgdata`` and returns its DSN. The rest of
the runtime does not know the difference: the same migrations and code path apply either way.

Access: pgserver starts PostgreSQL with no TCP listener (unix socket only) and trust authentication,
so the socket's directory is the access control. The data directory, which holds that socket when
its path is short enough (about 90 characters), is kept at mode 0700: only the user running the
server (or root) can connect or read the data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_servers: dict[str, Any] = {}


def ensure_database(settings: Any) -> str:
    """DSN of the database to use: the configured ``database_url`` or an embedded pgserver under
    ``settings.data_dir / "pgdata"`` (kept running after this process exits, reused next time)."""
    if getattr(settings, "database_url", None):
        return str(settings.database_url)
    return embedded_dsn(Path(settings.data_dir) / "pgdata")


def embedded_dsn(pgdata: Path) -> str:
    """Start or reuse the embedded server in ``pgdata``; return its ``postgresql://`` URI."""
    import pgserver

    pgdata = Path(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    key = str(pgdata.resolve())
    srv = _servers.get(key)
    if srv is None:
        srv = pgserver.get_server(pgdata, cleanup_mode=None)
        _servers[key] = srv
    os.chmod(pgdata, 0o700)  # initdb makes it 0700; keep it so if it was loosened since
    return str(srv.get_uri())


def stop_embedded(pgdata: Path, delete: bool = False) -> None:
    """Stop the embedded server started by this process in ``pgdata`` (and delete its data when
    ``delete``). No-op when this process did not start one there."""
    srv = _servers.pop(str(Path(pgdata).resolve()), None)
    if srv is None:
        return
    srv.cleanup_mode = "delete" if delete else "stop"
    srv.cleanup()
