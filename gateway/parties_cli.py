"""``tradedesk parties kill-switch PARTY``: the operator's per-party kill switch over the admin API.

Usage::

    tradedesk parties [--gateway URL] [--api-key-file PATH] [--json] kill-switch PARTY_ID

Cancels every open order of the party in every shard (``POST /v1/admin/parties/{id}/kill-switch``)
and prints the orders and kg cancelled per shard. Options, key file and exit codes as
:mod:`gateway.operator_cli` (0 ok, 1 the API answered an error, 2 usage or connection error); a
shard that could not be reached is printed with its error and the command exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from gateway.operator_cli import call_api, common_options, run_app

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Operator party commands (admin API).", name="parties"
)
app.callback()(common_options)


def _kill_lines(a: dict[str, Any]) -> str:
    lines = [
        f"{a['party_id']}: {a['cancelled_orders']} orders, {a['cancelled_kg']:,} kg cancelled"
        + ("" if a["complete"] else " (INCOMPLETE: retry)")
    ]
    for s in a["shards"]:
        if s.get("error"):
            lines.append(f"  {s['shard_id']}: error: {s['error']}")
        else:
            lines.append(f"  {s['shard_id']}: {s['cancelled_orders']} orders, {s['cancelled_kg']:,} kg")
    return "\n".join(lines)


@app.command("kill-switch")
def kill_switch(ctx: typer.Context, party_id: Annotated[str, typer.Argument(help="the party's id")]) -> None:
    """Cancel every open order of PARTY_ID in every shard."""
    answer = call_api(ctx, "POST", f"/v1/admin/parties/{party_id}/kill-switch", show=_kill_lines)
    if not answer.get("complete", True):
        raise typer.Exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    return run_app(app, "tradedesk parties", argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
