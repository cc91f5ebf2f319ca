"""Stop and start the machine's real PostgreSQL (cluster 15/main) for the outage tests."""

from __future__ import annotations

import subprocess

PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def pg_online() -> bool:
    """Whether cluster 15/main is online (``pg_lsclusters``)."""
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    return any(line.split()[:2] == ["15", "main"] and "online" in line for line in out.splitlines())


def pg_stop() -> None:
    """Stop PostgreSQL at once (``-m fast``: open connections are terminated)."""
    subprocess.run([*PG_CTL, "stop", "-m", "fast"], check=True, timeout=60)


def pg_start_if_down() -> None:
    """Start PostgreSQL again unless it is online (call it in a ``finally``)."""
    if not pg_online():
        subprocess.run([*PG_CTL, "start"], check=True, timeout=60)
