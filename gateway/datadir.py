"""Which live ``tradedesk serve`` processes use a data directory, so that the last one out stops the
embedded PostgreSQL and Redis it holds.

Each ``serve`` lists its pid in ``<data_dir>/serve.pids.json`` (under an inter-process file lock,
:mod:`fasteners`) when it starts and removes it when it stops; :meth:`DataDirUsers.leave` returns the
other pids that are still alive (dead ones, e.g. a killed process, are pruned). The embedded
services stop only when that list is empty; otherwise ``serve`` says which processes keep them.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

USERS_FILE = "serve.pids.json"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class DataDirUsers:
    """The users file of one data directory. ``join()`` adds this process; ``leave() -> others``."""

    def __init__(self, data_dir: str | Path) -> None:
        import fasteners

        self.path = Path(data_dir) / USERS_FILE
        self._lock = fasteners.InterProcessLock(str(self.path) + ".lock")

    def _read(self) -> list[int]:
        with contextlib.suppress(OSError, ValueError):
            return [int(p) for p in json.loads(self.path.read_text())]
        return []

    def _update(self, add: bool) -> list[int]:
        me = os.getpid()
        with self._lock:
            others = [p for p in self._read() if p != me and _alive(p)]
            self.path.write_text(json.dumps([*others, me] if add else others))
        return others

    def join(self) -> list[int]:
        """List this process; returns the other live users."""
        return self._update(add=True)

    def leave(self) -> list[int]:
        """Unlist this process; returns the other live users (empty: this was the last one)."""
        return self._update(add=False)
