"""What a benchmark starts, it stops: throw-away databases, embedded PostgreSQL, local Ray, actors.

:class:`Started` is a context manager around a benchmark's run. Each resource is registered the
moment it exists (:meth:`Started.database`, :meth:`Started.embedded_postgres`, :meth:`Started.ray`,
:meth:`Started.add`) and released in reverse order when the block ends, however it ends: normally,
on an error, on Ctrl-C (``KeyboardInterrupt``) or on SIGTERM (turned into ``KeyboardInterrupt``
inside the block). Further Ctrl-C during the release is ignored so that it completes; a release
that fails is reported on stderr and the others still run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Started:
    """Resources of one benchmark run, released in reverse order on exit (see the module doc)."""

    def __init__(self) -> None:
        self._releases: list[tuple[str, Callable[[], Any]]] = []
        self._sigterm: Any = None

    def __enter__(self) -> Started:
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.release()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
                signal.signal(signal.SIGTERM, self._sigterm)

    def add(self, label: str, release: Callable[[], Any]) -> None:
        """Register ``release`` (called once, on exit); ``label`` names it in an error report."""
        self._releases.append((label, release))

    def release(self) -> None:
        """Release everything registered so far, newest first (idempotent)."""
        while self._releases:
            label, fn = self._releases.pop()
            try:
                fn()
            except Exception as exc:
                print(f"bench: could not release {label}: {type(exc).__name__}: {exc}", file=sys.stderr)

    def embedded_postgres(self) -> str:
        """Start a throw-away embedded PostgreSQL (pgserver) in a temporary directory; it is stopped and
        its directory deleted on exit. Returns its admin DSN."""
        from persistence.embedded import embedded_dsn, release_embedded

        root = Path(tempfile.mkdtemp(prefix="td-bench-"))
        pgdata = root / "pgdata"

        def stop() -> None:
            release_embedded(pgdata, delete=True)
            with contextlib.suppress(OSError):
                root.rmdir()

        self.add(f"embedded PostgreSQL in {pgdata}", stop)
        return embedded_dsn(pgdata)

    def database(self, admin_dsn: str, prefix: str = "td_bench") -> str:
        """Create a throw-away database on the server of ``admin_dsn`` (dropped on exit, connections
        forced closed); returns its DSN (same host, user and query string, e.g. the ``host=`` of a unix
        socket)."""
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = psycopg2.connect(admin_dsn)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            admin.close()

        def drop() -> None:
            conn = psycopg2.connect(admin_dsn)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                conn.close()

        self.add(f"database {name}", drop)
        return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))

    def ray(self, namespace: str, address: str | None = None, **kw: Any) -> bool:
        """Connect to Ray (``address``) or start a local Ray, unless already connected. On exit the
        named actors of ``namespace`` are killed and, when this call started or connected Ray, it
        shuts down (a local Ray with all its processes). Returns whether this call initialised Ray."""
        import ray

        def kill_actors() -> None:
            if not ray.is_initialized():
                return
            for a in ray.util.list_named_actors(all_namespaces=True):
                if a.get("namespace") == namespace:
                    with contextlib.suppress(Exception):
                        ray.kill(ray.get_actor(a["name"], namespace=namespace), no_restart=True)

        if ray.is_initialized():
            self.add(f"Ray actors of namespace {namespace}", kill_actors)
            return False
        self.add("Ray", _shutdown_ray)
        self.add(f"Ray actors of namespace {namespace}", kill_actors)
        opts = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False, **kw}
        ray.init(address=address, namespace=namespace, **opts)
        return True


def _shutdown_ray(wait_s: float = 15.0) -> None:
    """``ray.shutdown()``, then wait up to ``wait_s`` for the local Ray's processes (raylet, GCS,
    dashboard agents, workers: this process's Ray descendants) to exit, and kill any still running.
    Ray stops its agents asynchronously, so without the wait they may outlive the benchmark."""
    import psutil
    import ray

    procs = []
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(p.cmdline())
                if "ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "/ray/" in cmd:
                    procs.append(p)
    ray.shutdown()
    _gone, alive = psutil.wait_procs(procs, timeout=wait_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5.0)
