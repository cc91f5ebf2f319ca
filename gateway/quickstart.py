"""``tradedesk run`` (what ``make run`` runs): the server plus a replay of the real cotton data.

1. starts ``tradedesk serve`` as a child process (embedded PostgreSQL/Redis and local Ray unless
   ``TRADEDESK_*`` URLs say otherwise);
2. waits until ``GET /readyz`` answers 200 (first start creates the database: allow a few minutes);
3. replays ``data/agmarknet/trinetra_cotton_2025-11_2026-01.csv`` through the HTTP API
   (``tradedesk replay``) and prints its summary;
4. leaves the server up (API docs at http://127.0.0.1:8000/docs) until Ctrl-C, then stops it cleanly
   (SIGTERM: the server drains its shards before exiting).

Extra arguments go to the replay (``tradedesk run --limit 2000``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def wait_ready(base: str, proc: subprocess.Popen[bytes] | None, timeout_s: float = 600.0) -> bool:
    """Poll ``base/readyz`` until 200; False on timeout or if ``proc`` exits."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(base + "/readyz", timeout=5.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    return False


def stop_child(proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> int:
    """SIGTERM the server and wait for its clean shutdown (SIGKILL after ``timeout_s``)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    from actors.settings import Settings
    from gateway import replay

    extra = list(argv or [])
    s = Settings()
    base = f"http://{s.host}:{s.port}"
    key_file = Path(s.data_dir) / "admin.key"
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--admin-key-file", str(key_file)]
    print(f"tradedesk run: starting the server ({' '.join(cmd[2:])})", flush=True)
    # own process group: a terminal Ctrl-C reaches only this process, which then stops the server cleanly
    proc = subprocess.Popen(cmd, env=dict(os.environ), start_new_session=True)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM to this process also stops the server cleanly
    try:
        if not wait_ready(base, proc):
            print("tradedesk run: the server did not become ready; see its output above", file=sys.stderr)
            stop_child(proc)
            return 1
        print(f"tradedesk run: server ready at {base}; replaying the real cotton data", flush=True)
        code = replay.main([*extra, "--gateway", base, "--api-key-file", str(key_file)])
        if code != 0:
            print(f"tradedesk run: replay exited with {code}", file=sys.stderr)
        print(f"\ntradedesk run: the server stays up. API docs: {base}/docs ; admin key file: {key_file}")
        print("tradedesk run: press Ctrl-C to stop it.", flush=True)
        while proc.poll() is None:
            time.sleep(1.0)
        return proc.returncode or 0
    except KeyboardInterrupt:
        print("\ntradedesk run: stopping the server (draining shards)...", flush=True)
        return 0 if stop_child(proc) == 0 else 1
    finally:
        if proc.poll() is None:
            stop_child(proc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
