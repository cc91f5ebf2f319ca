"""Stop and start the machine's real PostgreSQL (cluster 15/main) for the outage tests."""

from __future__ import annotations

import socket
import subprocess
import time

PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def pg_online() -> bool:
    """Whether cluster 15/main is online (``pg_lsclusters``)."""
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    return any(line.split()[:2] == ["15", "main"] and "online" in line for line in out.splitlines())


def _accepts() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


def pg_stop() -> None:
    """Stop PostgreSQL at once: ``-m fast`` (open connections are terminated); when its shutdown
    checkpoint takes more than 20 s on a loaded machine, ``-m immediate`` (no checkpoint: the next
    start recovers from the WAL, as after a crash)."""
    try:
        subprocess.run([*PG_CTL, "stop", "-m", "fast"], check=True, timeout=20)
    except subprocess.TimeoutExpired:
        subprocess.run([*PG_CTL, "stop", "-m", "immediate"], check=False, timeout=60)


def pg_start_if_down(wait_s: float = 120.0) -> None:
    """Start PostgreSQL again unless it is online and accepting connections, and wait until it is
    (call it in a ``finally``; a stop still in progress is waited for, then started)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if pg_online() and _accepts():
            return
        if not pg_online():
            subprocess.run([*PG_CTL, "start"], check=False, timeout=90)
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back online")
