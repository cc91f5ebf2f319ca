"""A real HTTP receiver for webhook tests: ``http.server`` on 127.0.0.1 (free port) in a thread. It
records every request (path, headers, body) and answers each path with the status set for it
(default 204)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the dispatchers open up to 16 connections each at once
    daemon_threads = True


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: str


class Receiver:
    """``url(path)`` to register; ``status[path] = 500`` to make a path fail; ``got(path)`` the
    requests received on a path, oldest first."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status: dict[str, int] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n).decode()
                with owner._lock:
                    owner.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                code = owner.status.get(self.path, 204)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def got(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, n: int, timeout: float = 20.0) -> list[Received]:
        """Block until ``path`` has at least ``n`` requests (or ``timeout`` s); returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.got(path)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.got(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
