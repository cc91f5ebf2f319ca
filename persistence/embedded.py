"""Embedded PostgreSQL (pgserver) for a fresh machine: used when no database URL is configured.

``ensure_database(settings)`` returns ``settings.database_url`` when set; otherwise it starts (or
reuses) a PostgreSQL server whose data lives in ``<data_dir>/pgdata`` and returns its DSN. The rest of
the runtime does not know the difference: the same migrations and code path apply either way.

Access: pgserver starts PostgreSQL with no TCP listener (unix socket only) and trust authentication,
so the socket's directory is the access control. The data directory, which holds that socket when
its path is short enough (about 90 characters), is kept at mode 0700: only the user running the
server (or root) can connect or read the data.

Lifetime: the server runs while a process holds it. Every process that calls :func:`embedded_dsn`
is listed in pgserver's handle file ``<pgdata>/.handle_pids.json``; :func:`release_embedded` (called
by ``tradedesk serve`` on shutdown and by the benchmarks) stops the server unless another live
process is still listed, and returns those pids so that the caller can say who keeps it running.
Dead pids (a process that was killed) are pruned first, so a crash never pins the server forever.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_servers: dict[str, Any] = {}


def ensure_database(settings: Any) -> str:
    """DSN of the database to use: the configured ``database_url`` or an embedded pgserver under
    ``settings.data_dir / "pgdata"`` (started, or reused when another process runs it; stop it with
    :func:`release_embedded`)."""
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


def _live_others(pids: list[int]) -> list[int]:
    import psutil

    out = []
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


def release_embedded(pgdata: Path, delete: bool = False) -> list[int]:
    """Let go of the embedded server this process holds in ``pgdata``: stop it (and delete its data
    when ``delete``) unless another live process holds it too.

    Returns the pids of those other processes (the server then keeps running for them); ``[]`` when
    it was stopped or this process held none there."""
    srv = _servers.pop(str(Path(pgdata).resolve()), None)
    if srv is None:
        return []
    with srv._lock:  # pgserver's inter-process lock around its handle file
        others = _live_others(srv.global_process_id_list.get())
        srv.global_process_id_list.put([os.getpid(), *others])
    srv.cleanup_mode = None if others else ("delete" if delete else "stop")
    srv.cleanup()
    return others


def stop_embedded(pgdata: Path, delete: bool = False) -> None:
    """Stop the embedded server this process holds in ``pgdata`` (see :func:`release_embedded`)."""
    release_embedded(pgdata, delete)
