"""``tradedesk run`` (what ``make run`` runs): the server plus a replay of the real cotton data.

1. starts ``tradedesk serve`` as a child process (embedded PostgreSQL/Redis and local Ray unless
   ``TRADEDESK_*`` URLs say otherwise), with the automatic circuit breaker off
   (``TRADEDESK_CIRCUIT_BREAKER=false`` unless set: the replay compresses a season into minutes)
   and each commodity's shards in one shard host process (``TRADEDESK_SHARD_HOSTING``
   :data:`QUICKSTART_SHARD_HOSTING` unless set: one machine, docs/operators.md "Shard hosting");
2. waits until ``GET /readyz`` answers 200 (first start creates the database: allow a few minutes);
3. replays ``data/agmarknet/trinetra_cotton_2025-11_2026-01.csv`` through the HTTP API
   (``tradedesk replay``), then the season after the match (deliveries, invoices, payments, sweeps;
   ``--no-season`` skips it), and prints its summary;
4. leaves the server up (web console at http://127.0.0.1:8000/ui, API docs at /docs) until Ctrl-C,
   then stops it cleanly (SIGTERM: the server drains its shards before exiting).

The terminal shows a few lines (where the console, the API docs, the admin key, the data and the
logs are), the replay's progress bar and its summary. The server's own output goes to
``<data_dir>/logs/serve.out`` and its logs to ``<data_dir>/logs/*.log`` (:mod:`gateway.logfiles`);
``--log-to-terminal`` brings them back to the terminal. The replay options (``--limit 2000``,
``--commodity``...) are those of ``tradedesk replay``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Annotated

import typer

from actors.shard_hosting import BY_COMMODITY
from gateway.logfiles import LogFiles, LogToTerminal, where_lines
from gateway.replay import cli as replay_cli

QUICKSTART_SHARD_HOSTING = json.dumps({"*": BY_COMMODITY})
"""The quickstart's shard hosting: every commodity's shards share one host process. On the one
machine the quickstart runs on, the real cotton file's shards in processes of their own held 2.7 GB
RSS against 0.6 GB in one host, and spent 120-140 s of CPU on the replay against 82-95 s in the
host; the replay ran at 129 / 112 orders/s against 140 / 120 (two pairs of runs, alternated;
docs/operators.md, "Shard hosting")."""


def server_env(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The quickstart server's environment: ``environ`` plus the quickstart's defaults where unset
    (circuit breaker off, :data:`QUICKSTART_SHARD_HOSTING`), and the lines that tell the user about
    the defaults in force."""
    env = dict(environ)
    notes = []
    # the replay plays a season's orders within minutes of wall time: a breaker window of minutes
    # would see the whole season's price moves at once, so the quickstart's server runs without the
    # automatic breaker (unless TRADEDESK_CIRCUIT_BREAKER says otherwise; docs/matching.md)
    env.setdefault("TRADEDESK_CIRCUIT_BREAKER", "false")
    if env["TRADEDESK_CIRCUIT_BREAKER"].lower() in ("false", "0", "no", "off"):
        notes.append(
            "circuit breaker off for this replay (it compresses a season into minutes; docs/matching.md)"
        )
    env.setdefault("TRADEDESK_SHARD_HOSTING", QUICKSTART_SHARD_HOSTING)
    if env["TRADEDESK_SHARD_HOSTING"] == QUICKSTART_SHARD_HOSTING:
        notes.append(
            'shards of a commodity share one host process (one machine; docs/operators.md, "Shard hosting")'
        )
    return env, notes


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


def _say(msg: str = "") -> None:
    print(f"tradedesk run: {msg}" if msg else "", flush=True)


def _tail(path: Path, n: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    return ""


def main(opts: replay_cli.ReplayOptions, log_to_terminal: bool = False) -> int:
    """Serve, replay ``opts`` against it, keep serving until Ctrl-C. Returns the exit code."""
    from actors.settings import Settings

    s = Settings()
    base = f"http://{s.host}:{s.port}"
    key_file = Path(s.data_dir) / "admin.key"
    files = LogFiles.under(s.data_dir)
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--admin-key-file", str(key_file)]
    out: IO[bytes] | None = None
    if log_to_terminal:
        cmd.append("--log-to-terminal")
    else:
        files.dir.mkdir(parents=True, exist_ok=True)
        out = files.serve_out.open("ab")
    _say(
        "starting the server (the first start creates the database and trains the risk models: allow a few"
        f" minutes); logs in {files.dir}"
    )
    # own process group: a terminal Ctrl-C reaches only this process, which then stops the server cleanly
    env, notes = server_env(os.environ)
    for line in notes:
        _say(line)
    proc = subprocess.Popen(
        cmd,
        env=env,
        start_new_session=True,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
    )
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM to this process also stops the server cleanly
    try:
        if not wait_ready(base, proc):
            where = "above" if out is None else f"in {files.serve_out}:\n{_tail(files.serve_out)}"
            print(f"tradedesk run: the server did not become ready; see its output {where}", file=sys.stderr)
            stop_child(proc)
            return 1
        _say(f"server ready at {base}")
        for line in where_lines(base, s.data_dir, key_file, files):
            _say(line)
        _say("replaying the real cotton data" if not opts.files else "replaying the given files")
        code = replay_cli.execute(dataclasses.replace(opts, gateway=base, api_key_file=key_file))
        if code != 0:
            print(f"tradedesk run: replay exited with {code}", file=sys.stderr)
        _say()
        _say(f"the server stays up: console {base}/ui ; API docs {base}/docs ; admin key file {key_file}")
        _say("press Ctrl-C to stop it.")
        while proc.poll() is None:
            time.sleep(1.0)
        return proc.returncode or 0
    except KeyboardInterrupt:
        print("\ntradedesk run: stopping the server (draining shards)...", flush=True)
        code = stop_child(proc)
        _say(
            f"server {'stopped cleanly' if code == 0 else f'exited with {code}'}"
            + (f"; its output is in {files.serve_out}" if out is not None else "")
        )
        return 0 if code == 0 else 1
    finally:
        if proc.poll() is None:
            stop_child(proc)
        if out is not None:
            out.close()


def run(
    files: replay_cli.Files = None,
    limit: replay_cli.Limit = None,
    seed: replay_cli.Seed = 7,
    batch: replay_cli.Batch = 200,
    concurrency: replay_cli.Concurrency = 32,
    commodity: replay_cli.Commodity = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print the replay summary as one JSON object")
    ] = False,
    no_progress: replay_cli.NoProgress = False,
    no_season: replay_cli.NoSeason = False,
    log_to_terminal: LogToTerminal = False,
) -> None:
    """Quickstart: serve, replay the real cotton data, keep serving until Ctrl-C."""
    opts = replay_cli.ReplayOptions(
        files=tuple(files or ()),
        limit=limit,
        seed=seed,
        batch=batch,
        concurrency=concurrency,
        commodity=commodity,
        json=json_out,
        progress=not no_progress,
        season=not no_season,
    )
    raise typer.Exit(main(opts, log_to_terminal))


if __name__ == "__main__":  # pragma: no cover
    typer.run(run)
