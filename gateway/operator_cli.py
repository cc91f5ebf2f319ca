"""``tradedesk shards list|add|drain|resume``: operator shard commands over the gateway's admin API.

Usage::

    tradedesk shards [--gateway URL] [--api-key-file PATH] [--json] list
    tradedesk shards [...] add    REGION COMMODITY     (admin key)
    tradedesk shards [...] drain  SHARD_ID             (operator or admin key)
    tradedesk shards [...] resume SHARD_ID             (operator or admin key)

``list`` shows every shard of the shards table with its status (UP, IDLE, DRAINED, RECOVERING,
UNREACHABLE). ``--gateway`` defaults to ``http://127.0.0.1:8000`` (``TRADEDESK_GATEWAY``);
``--api-key-file`` to ``<data_dir>/admin.key`` (``TRADEDESK_API_KEY_FILE``), the file ``tradedesk
serve`` writes; the key is read from the file and never printed. Exit codes: 0 ok, 1 the API answered
an error (its problem detail is printed), 2 usage or connection error. docs/operators.md has more.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Operator shard commands (admin API).", name="shards"
)


@dataclass
class _Opts:
    gateway: str
    api_key_file: str | None
    json: bool
    timeout: float


def _default_key_file() -> str:
    env = os.environ.get("TRADEDESK_API_KEY_FILE")
    if env:
        return env
    from actors.settings import get_settings

    return str(Path(get_settings().data_dir) / "admin.key")


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["shard_id", "status", "node_id", "seq", "committed_seq", "book_size", "queue_depth", "draining"]
    data = [[str(r.get(c, "") if r.get(c) is not None else "-")[:16] for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in data)) if data else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in data]
    return "\n".join(lines)


def _call(ctx: typer.Context, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    """Send one admin API request and print the answer; exits 1 on an API error, 2 when the key file
    cannot be read or the gateway cannot be reached."""
    import httpx

    o: _Opts = ctx.obj
    key_file = Path(o.api_key_file or _default_key_file())
    try:
        token = key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        typer.echo(f"cannot read API key file {key_file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=o.gateway, headers=headers, timeout=o.timeout) as c:
            r = c.request(method, path, json=body)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the gateway at {o.gateway}: {type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    try:
        answer = r.json()
    except ValueError:
        answer = {"detail": r.text[:500]}
    if r.status_code >= 400:
        title, detail = answer.get("title", ""), answer.get("detail", "")
        typer.echo(f"error {r.status_code}: {title} {detail}".strip(), err=True)
        raise typer.Exit(1)
    if o.json:
        typer.echo(json.dumps(answer, indent=2, sort_keys=True))
    else:
        typer.echo(_table(answer.get("items", [answer])))


@app.callback()
def _options(
    ctx: typer.Context,
    gateway: Annotated[str, typer.Option(envvar="TRADEDESK_GATEWAY", help="gateway base URL")] = (
        "http://127.0.0.1:8000"
    ),
    api_key_file: Annotated[
        str | None, typer.Option(help="file holding an operator/admin API key (default <data_dir>/admin.key)")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="print the raw JSON answer")] = False,
    timeout: Annotated[float, typer.Option(help="seconds")] = 60.0,
) -> None:
    """Options shared by every shard command."""
    ctx.obj = _Opts(gateway, api_key_file, json_, timeout)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List every shard with its status (UP, IDLE, DRAINED), node, seq, book size, queue depth."""
    _call(ctx, "GET", "/v1/admin/shards")


@app.command()
def add(
    ctx: typer.Context,
    region: Annotated[str, typer.Argument(help="ISO 3166-2, e.g. IN-GJ")],
    commodity: Annotated[str, typer.Argument(help="e.g. cotton")],
) -> None:
    """Add (open) a shard whatever the creation policy; needs an admin key."""
    _call(ctx, "POST", "/v1/admin/shards", {"region": region, "commodity": commodity})


@app.command()
def drain(ctx: typer.Context, shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")]) -> None:
    """Drain a shard: stop taking commands, flush and snapshot (until resumed)."""
    _call(ctx, "POST", f"/v1/admin/shards/{shard_id}/drain")


@app.command()
def resume(ctx: typer.Context, shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")]) -> None:
    """Resume a drained shard: it takes commands again."""
    _call(ctx, "POST", f"/v1/admin/shards/{shard_id}/resume")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the commands with ``argv`` (default ``sys.argv[1:]``); return the exit code (usage errors
    print one usage line and return 2)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        app(args=args, prog_name="tradedesk shards")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
