"""The ``tradedesk`` command line (typer). Each command lives in its module; heavy imports (Ray,
FastAPI, MLflow) happen only inside the command that needs them.

Commands:
  serve            run the server (embedded PostgreSQL/Redis when no URLs are configured)
  run              serve + replay the real cotton data, leave the server up (the quickstart)
  replay FILES     drive real Agmarknet data through the HTTP API
  shards           list | add | drain | resume | halt | band shards (operator, over the admin API)
  parties          kill-switch PARTY: cancel a party's open orders in every shard (operator)
  projections      rebuild [--shard S]: rebuild the read models from the event log (operator)
  bench NAME       benchmarks: core | shard | risk | gateway | abuse | rollback | ledger | webhooks | console
                   | failover | hosting | snapshots
  train MODEL      train a risk model on Ray, tracked in MLflow
  models           list | promote | rollback registered risk models
"""

from __future__ import annotations

import importlib
import sys

import typer

from bench import abuse as bench_abuse
from bench import console as bench_console
from bench import core as bench_core
from bench import failover as bench_failover
from bench import gateway as bench_gateway
from bench import hosting as bench_hosting
from bench import ledger as bench_ledger
from bench import risk as bench_risk
from bench import rollback as bench_rollback
from bench import shard as bench_shard
from bench import snapshots as bench_snapshots
from bench import webhooks as bench_webhooks
from gateway import projections_cli, quickstart
from gateway import serve as serve_cmd
from gateway.replay import cli as replay_cli

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="tradedesk: a concurrent matching server for physical commodity trading. "
    "Start with `tradedesk run` (server + a replay of real cotton data).",
)
app.command("serve")(serve_cmd.serve)
app.command("run")(quickstart.run)
app.command("replay")(replay_cli.replay)

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object with --json.")
bench_app.command("core")(bench_core.command)
bench_app.command("shard")(bench_shard.command)
bench_app.command("risk")(bench_risk.command)
bench_app.command("gateway")(bench_gateway.command)
bench_app.command("abuse")(bench_abuse.command)
bench_app.command("rollback")(bench_rollback.command)
bench_app.command("webhooks")(bench_webhooks.command)
bench_app.command("ledger")(bench_ledger.command)
bench_app.command("console")(bench_console.command)
bench_app.command("failover")(bench_failover.command)
bench_app.command("snapshots")(bench_snapshots.command)
bench_app.command("hosting")(bench_hosting.command)
app.add_typer(bench_app, name="bench")
app.add_typer(projections_cli.app, name="projections")

_PASS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _delegate(module: str, argv: list[str]) -> None:
    mod = importlib.import_module(module)
    code = mod.main(list(argv))
    raise typer.Exit(code or 0)


@app.command(context_settings=_PASS)
def shards(ctx: typer.Context) -> None:
    """Operator shard commands: list | add | drain | resume | halt | band | nodes | move | rebalance."""
    _delegate("gateway.operator_cli", ctx.args)


@app.command(context_settings=_PASS)
def parties(ctx: typer.Context) -> None:
    """Operator party commands: kill-switch PARTY."""
    _delegate("gateway.parties_cli", ctx.args)


@app.command(context_settings=_PASS)
def train(ctx: typer.Context) -> None:
    """Train a risk model: ``tradedesk train MODEL [--data PATH] [--tune TRIALS]``."""
    _delegate_ml(["train", *ctx.args])


@app.command(context_settings=_PASS)
def models(ctx: typer.Context) -> None:
    """Model registry: ``tradedesk models list | promote MODEL VERSION | rollback MODEL``."""
    _delegate_ml(["models", *ctx.args])


def _delegate_ml(argv: list[str]) -> None:
    _delegate("gateway.cli_models", argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
