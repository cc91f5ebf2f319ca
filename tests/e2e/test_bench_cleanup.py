"""End to end: ``tradedesk bench core|shard|risk|gateway`` (bounded small sizes) stop and remove every
server and database they start, when they finish and when they are interrupted (Ctrl-C = SIGINT).

While a benchmark runs, every process it starts is recorded (its descendants: raylet, Ray workers,
load generators; and processes naming a ``td-bench-`` directory: the embedded PostgreSQL, which runs
in its own session). After it exits none of them may be alive, its embedded PostgreSQL directory is
gone, and no ``td_bench`` database it created is left on the test server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DSN = os.environ.get("TRADEDESK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SMALL = {
    "core": ["--orders", "2000", "--resting", "200"],
    "shard": ["--orders", "2000", "--batch", "500", "--baseline-orders", "100", "--method-orders", "500"],
    "risk": ["--batches", "20", "--batch", "20", "--buyers", "10", "--replicas", "1", "--no-ml",
             "--dsn", ADMIN_DSN, "--redis", REDIS_URL],
    "gateway": ["--shards", "1", "--concurrency", "4", "--open-conns", "4", "--rate", "50",
                "--fixed-seconds", "1",
                "--baseline-requests", "50", "--single-requests", "100", "--batch-size", "50",
                "--batch-requests", "4", "--batch-concurrency", "1", "--max-phase-s", "5",
                "--direct-orders", "100", "--dsn", ADMIN_DSN, "--redis", REDIS_URL],
}  # fmt: skip


def _bench_databases() -> set[str]:
    import psycopg2

    conn = psycopg2.connect(ADMIN_DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'td_bench%'")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def _record(proc: subprocess.Popen[str], seen: dict[tuple[int, float], str]) -> None:
    """Add ``proc``'s descendants and the ``td-bench-`` PostgreSQL processes to ``seen`` (keyed by
    pid and start time, so a reused pid is another process), keeping each one's latest command line:
    a process sampled between fork and exec still shows its parent's command line."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    procs = list(kids)
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "td-bench-" in cmd and "pgdata" in cmd:
            procs.append(p)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(p.cmdline())[:200]
            if cmd:
                seen[(p.pid, p.create_time())] = cmd


def _running_now(proc: subprocess.Popen[str]) -> list[str]:
    """Current command lines of ``proc``'s descendants (a Ray worker retitles itself
    ``ray::<actor class>`` once it hosts an actor)."""
    import psutil

    out: list[str] = []
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return out
    for p in kids:
        with contextlib.suppress(psutil.Error):
            out.append(" ".join(p.cmdline()))
    return out


def _alive(seen: dict[tuple[int, float], str]) -> list[str]:
    import psutil

    out = []
    for (pid, started), cmd in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == started and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{pid} {cmd}")
        except psutil.Error:
            pass
    return out


def _run(
    name: str, extra: list[str], interrupt_when: str | None = None, timeout_s: float = 420
) -> tuple[int, str, str, dict[tuple[int, float], str]]:
    """Run ``tradedesk bench NAME --json``; with ``interrupt_when``, SIGINT it 2 s after a running
    descendant's command line contains that text (or 30 s after its raylet started, whichever comes
    first), and again every 10 s while it runs on (a SIGINT that lands while Ray is still starting
    can be lost, as Ctrl-C pressed twice).
    Returns (exit code, stdout, stderr, (pid, start time) -> latest command line)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("TRADEDESK_DATABASE_URL", "TRADEDESK_RAY_ADDRESS")
    }
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "bench", name, "--json", *extra],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C's default action, also when this test itself runs as a background job of a shell
        # without job control (which starts it with SIGINT ignored, and Python then keeps it ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    seen: dict[tuple[int, float], str] = {}
    deadline = time.monotonic() + timeout_s
    interrupted_at: float | None = None
    raylet_at: float | None = None
    while proc.poll() is None:
        now = time.monotonic()
        assert now < deadline, f"bench {name} did not finish"
        _record(proc, seen)
        if interrupt_when:
            if raylet_at is None and any("raylet" in c for c in seen.values()):
                raylet_at = now
            first = interrupted_at is None and (
                any(interrupt_when in c for c in _running_now(proc))
                or (raylet_at is not None and now - raylet_at > 30)
            )
            if first or (interrupted_at is not None and now - interrupted_at > 10):
                if first:
                    time.sleep(2.0)
                    _record(proc, seen)
                proc.send_signal(signal.SIGINT)
                interrupted_at = time.monotonic()
        time.sleep(0.3)
    out, err = proc.communicate()
    time.sleep(1.0)
    return proc.returncode, out, err, seen


@pytest.fixture(scope="module")
def services() -> None:
    try:
        _bench_databases()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis not reachable")


@pytest.mark.parametrize("name", ["core", "shard", "risk", "gateway"])
def test_bench_stops_and_removes_what_it_started(services: None, name: str) -> None:
    before = _bench_databases()
    code, out, err, seen = _run(name, SMALL[name])
    assert code == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report  # the benchmark ran and printed its JSON
    assert _alive(seen) == []
    assert _bench_databases() - before == set()
    if name == "shard":  # no database URL in the environment: a throw-away embedded PostgreSQL
        pgdata = [c for c in seen.values() if "td-bench-" in c and "pgdata" in c]
        assert pgdata, "the shard benchmark should have started an embedded PostgreSQL"
        assert any("raylet" in c for c in seen.values()), sorted(seen.values())
        for cmd in pgdata:
            d = cmd.split("-D ", 1)[1].split()[0]
            assert not Path(d).exists(), f"{d} not removed"


def test_interrupted_shard_bench_stops_everything(services: None) -> None:
    before = _bench_databases()
    big = ["--orders", "400000", "--batch", "500", "--baseline-orders", "0", "--method-orders", "0"]
    # interrupted while it drives its shard actor (Ray workers are titled ``ray::<actor class>``);
    # earlier, a SIGINT can land inside ray.init, which does not always raise it
    code, _, err, seen = _run("shard", big, interrupt_when="ray::ShardHost")
    assert code != 0  # interrupted, not finished
    assert "Traceback" not in err or "KeyboardInterrupt" in err
    assert any("td-bench-" in c for c in seen.values()) and any("raylet" in c for c in seen.values())
    assert _alive(seen) == []
    assert _bench_databases() - before == set()
