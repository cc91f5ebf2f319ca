"""The ``tradedesk`` command line. A thin router: each command group lives in its own module, imported
only when used (so ``tradedesk bench core`` does not pay for importing MLflow), and each module's
``main(argv) -> int`` parses its own options.

Commands:
  serve            run the server (embedded PostgreSQL/Redis when no URLs are configured)
  run              serve + replay the real cotton data, leave the server up (the quickstart)
  replay FILES     drive real Agmarknet data through the HTTP API
  shards           list | add | drain shards (operator, over the admin API)
  bench NAME       benchmarks: core | shard | risk | gateway
  train MODEL      train a risk model on Ray, tracked in MLflow
  models           list | promote | rollback registered risk models
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

_PASS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _delegate(module: str, argv: list[str]) -> None:
    mod = importlib.import_module(module)
    code = mod.main(list(argv))
    raise typer.Exit(code or 0)


@app.command(context_settings=_PASS)
def serve(ctx: typer.Context) -> None:
    """Run the server (see ``tradedesk serve --help``)."""
    _delegate("gateway.serve", ctx.args)


@app.command(context_settings=_PASS)
def run(ctx: typer.Context) -> None:
    """Quickstart: serve, replay the real cotton data, keep serving until Ctrl-C."""
    _delegate("gateway.quickstart", ctx.args)


@app.command(context_settings=_PASS)
def replay(ctx: typer.Context) -> None:
    """Replay Agmarknet files through the HTTP API (see ``tradedesk replay --help``)."""
    _delegate("gateway.replay", ctx.args)


@app.command(context_settings=_PASS)
def shards(ctx: typer.Context) -> None:
    """Operator shard commands: list | add | drain."""
    _delegate("gateway.operator_cli", ctx.args)


BENCHMARKS = ("core", "shard", "risk", "gateway", "abuse", "rollback")


@app.command(context_settings=_PASS)
def bench(ctx: typer.Context, name: str = typer.Argument(..., help=" | ".join(BENCHMARKS))) -> None:
    """Benchmarks; each prints one JSON object with ``--json``."""
    if name not in BENCHMARKS:
        typer.echo(f"unknown benchmark {name!r}: use {', '.join(BENCHMARKS)}", err=True)
        raise typer.Exit(2)
    _delegate(f"bench.{name}", ctx.args)


@app.command(context_settings=_PASS)
def train(ctx: typer.Context) -> None:
    """Train a risk model: ``tradedesk train MODEL [--data PATH] [--tune TRIALS]``."""
    _delegate_ml(["train", *ctx.args])


@app.command(context_settings=_PASS)
def models(ctx: typer.Context) -> None:
    """Model registry: ``tradedesk models list | promote MODEL VERSION | rollback MODEL``."""
    _delegate_ml(["models", *ctx.args])


def _delegate_ml(argv: list[str]) -> None:
    _delegate("ml.cli", argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
