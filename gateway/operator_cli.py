"""``tradedesk shards list|add|drain|resume|halt|band``: operator shard commands over the admin API.

Usage::

    tradedesk shards [--gateway URL] [--api-key-file PATH] [--json] list
    tradedesk shards [...] add    REGION COMMODITY     (admin key)
    tradedesk shards [...] drain  SHARD_ID             (operator or admin key)
    tradedesk shards [...] resume SHARD_ID             (lifts a drain and a market halt)
    tradedesk shards [...] halt   SHARD_ID [--reason TEXT]
    tradedesk shards [...] band   SHARD_ID [--percent P | --min PAISE --max PAISE | --default | --off]
    tradedesk shards [...] nodes                       (Ray nodes, their type and shards)
    tradedesk shards [...] move   SHARD_ID --to NODE_ID  (live move, fenced handover)
    tradedesk shards [...] rebalance [--window S] [--dry-run]

``band`` without an option shows the band. ``tradedesk parties kill-switch PARTY``
(:mod:`gateway.parties_cli`) shares the options and the output of these commands.

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
from collections.abc import Callable, Sequence
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
    cols += ["halted", "halted_until", "projector_lag_events", "projector_lag_s"]
    data = [[str(r.get(c, "") if r.get(c) is not None else "-")[:16] for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in data)) if data else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in data]
    return "\n".join(lines)


def call_api(
    ctx: typer.Context,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    show: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Send one admin API request and print the answer (``show`` renders it; default: the shard
    table) and return it; exits 1 on an API error, 2 when the key file cannot be read or the gateway cannot be
    reached."""
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
        return answer
    typer.echo(show(answer) if show is not None else _table(answer.get("items", [answer])))
    return answer


@app.callback()
def common_options(
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
    call_api(ctx, "GET", "/v1/admin/shards")


@app.command()
def add(
    ctx: typer.Context,
    region: Annotated[str, typer.Argument(help="ISO 3166-2, e.g. IN-GJ")],
    commodity: Annotated[str, typer.Argument(help="e.g. cotton")],
) -> None:
    """Add (open) a shard whatever the creation policy; needs an admin key."""
    call_api(ctx, "POST", "/v1/admin/shards", {"region": region, "commodity": commodity})


@app.command()
def drain(ctx: typer.Context, shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")]) -> None:
    """Drain a shard: stop taking commands, flush and snapshot (until resumed)."""
    call_api(ctx, "POST", f"/v1/admin/shards/{shard_id}/drain")


@app.command()
def resume(ctx: typer.Context, shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")]) -> None:
    """Resume a drained or halted shard: it takes commands and new orders again."""
    call_api(ctx, "POST", f"/v1/admin/shards/{shard_id}/resume")


def _node_lines(a: dict[str, Any]) -> str:
    return "\n".join(
        f"{n['node_id']}  {n['type']:8s}  {'alive' if n['alive'] else 'DEAD '}  {len(n['shards'])} shards"
        for n in a.get("items", [])
    )


def _move_line(a: dict[str, Any]) -> str:
    return (
        f"{a.get('shard_id')}: {a.get('from_node')} -> {a.get('node_id')}, handover at seq "
        f"{a.get('handover_seq')}, pause {a.get('pause_ms')} ms, move {a.get('move_s')} s"
    )


def _rebalance_lines(a: dict[str, Any]) -> str:
    lines = [f"node {n}: {c} commands/s" for n, c in a.get("loads", {}).items()]
    for m in a.get("moves", []):
        done = f"pause {m['pause_ms']} ms" if "pause_ms" in m else m.get("error", "planned")
        lines.append(f"move {m['shard_id']}: {m['from_node']} -> {m['to_node']} ({done})")
    return "\n".join(lines + ([] if a.get("moves") else ["balanced: no move"]))


@app.command()
def nodes(ctx: typer.Context) -> None:
    """List the Ray nodes: type (head, matching, risk, training), alive, shards running there."""
    call_api(ctx, "GET", "/v1/admin/nodes", show=_node_lines)


@app.command()
def move(
    ctx: typer.Context,
    shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")],
    to: Annotated[str, typer.Option("--to", help="target matching node id (see `shards nodes`)")],
) -> None:
    """Move a shard live to another matching node: a short fenced handover, no order refused."""
    call_api(ctx, "POST", f"/v1/admin/shards/{shard_id}/move", {"node_id": to}, show=_move_line)


@app.command()
def rebalance(
    ctx: typer.Context,
    window: Annotated[float, typer.Option(help="seconds over which commands/s are measured")] = 5.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan, move nothing")] = False,
) -> None:
    """Spread shards over the matching nodes by measured commands/s (not by count)."""
    body = {"window_s": window, "dry_run": dry_run}
    call_api(ctx, "POST", "/v1/admin/shards/rebalance", body, show=_rebalance_lines)


def _halt_line(a: dict[str, Any]) -> str:
    state = f"HALTED ({a.get('halt_kind')}: {a.get('halt_reason')})" if a.get("halted") else "not halted"
    return f"{a.get('shard_id')}: {state}" + ("" if a.get("changed", True) else " (unchanged)")


@app.command()
def halt(
    ctx: typer.Context,
    shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")],
    reason: Annotated[str, typer.Option(help="why (recorded, shown in rejections)")] = "operator halt",
) -> None:
    """Halt a shard: new orders are rejected SHARD_HALTED until resumed; cancels are taken."""
    call_api(ctx, "POST", f"/v1/admin/shards/{shard_id}/halt", {"reason": reason}, show=_halt_line)


def _band_line(a: dict[str, Any]) -> str:
    lo, hi = a.get("low_paise_per_kg"), a.get("high_paise_per_kg")
    band = "no band" if lo is None else f"{lo:,}..{hi:,} paise/kg (Rs/quintal)"
    ref = a.get("reference_paise_per_kg")
    src = (
        f", reference {ref:,} paise/kg ({a.get('reference_source')} {a.get('reference_as_of')})"
        if ref
        else ""
    )
    return f"{a.get('shard_id')}: {band}, mode {a.get('mode')}{src}"


@app.command()
def band(
    ctx: typer.Context,
    shard_id: Annotated[str, typer.Argument(help="e.g. IN-GJ.cotton")],
    percent: Annotated[float | None, typer.Option(help="percent around the market reference")] = None,
    min_: Annotated[int | None, typer.Option("--min", help="lowest price, paise/kg")] = None,
    max_: Annotated[int | None, typer.Option("--max", help="highest price, paise/kg")] = None,
    default: Annotated[bool, typer.Option("--default", help="back to the commodity's band")] = False,
    off: Annotated[bool, typer.Option("--off", help="no band")] = False,
) -> None:
    """Show a shard's price band, or set it (one of --percent, --min/--max, --default, --off)."""
    path = f"/v1/admin/shards/{shard_id}/price-band"
    chosen = [percent is not None, min_ is not None or max_ is not None, default, off]
    if sum(chosen) > 1:
        typer.echo("give one of --percent, --min/--max, --default, --off", err=True)
        raise typer.Exit(2)
    if not any(chosen):
        call_api(ctx, "GET", path, show=_band_line)
        return
    body: dict[str, Any] = {"mode": ["percent", "range", "default", "off"][chosen.index(True)]}
    if percent is not None:
        body["percent"] = percent
    if min_ is not None or max_ is not None:
        body.update(min_paise_per_kg=min_, max_paise_per_kg=max_)
    call_api(ctx, "PUT", path, body, show=_band_line)


def run_app(typer_app: typer.Typer, prog: str, argv: Sequence[str] | None) -> int:
    """Run ``typer_app`` with ``argv`` (default ``sys.argv[1:]``); return the exit code (usage
    errors print one usage line and return 2)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        typer_app(args=args, prog_name=prog)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the shard commands with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    return run_app(app, "tradedesk shards", argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
