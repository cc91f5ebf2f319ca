"""``tradedesk train`` and ``tradedesk models``: train risk models on Ray, manage the registry, and
push promotions to the running risk pool.

::

    tradedesk train MODEL [--data PATH]... [--tune TRIALS] [--sample N] [--engine ENGINE] [--promote]
    tradedesk train payment_default --source desk [--dsn DSN] [--late-days D] [--holdout F]
    tradedesk models list
    tradedesk models promote MODEL VERSION
    tradedesk models rollback MODEL
    tradedesk models challenger MODEL VERSION
    tradedesk models shadow MODEL FRACTION
    tradedesk models shadow-report [--dsn DSN]

``MODEL``: ``payment_default`` | ``order_anomaly`` | ``credit_limit``. Every command takes
``--tracking-uri``. This module reads the settings (``TRADEDESK_MLFLOW_TRACKING_URI``,
``TRADEDESK_DATABASE_URL``, ``TRADEDESK_DATA_DIR``, ``TRADEDESK_MLFLOW_ARTIFACT_DIR``,
``TRADEDESK_RAY_ADDRESS``, ``TRADEDESK_REDIS_URL``) and passes the values to ``ml/``, which takes
them as arguments. A promotion, rollback or shadow change is pushed to a running risk pool
(:func:`actors.risk_pool.apply_model_config`: the live replicas reconfigure, no restart); without a
running pool the new champion loads at the pool's next start.

Exit codes: 0 done, 1 refused or failed (promotion gate, unknown version), 2 usage or data-shape
error (one line on stderr: for a training file of another shape, the missing columns and the
expected layout; no traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from actors.settings import Settings, get_settings
from ml.train import MODELS

if TYPE_CHECKING:
    from rich.console import Console

    from ml.registry import Registry

app = typer.Typer(add_completion=False, no_args_is_help=True, help="risk-model training and registry")
models_app = typer.Typer(add_completion=False, no_args_is_help=True, help="model registry")
app.add_typer(models_app, name="models")


def _model_name(value: str) -> str:
    if value not in MODELS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(MODELS)}")
    return value


Model = Annotated[str, typer.Argument(callback=_model_name, metavar="MODEL", help=" | ".join(MODELS))]
TrackingUri = Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI")]
NoReload = Annotated[bool, typer.Option("--no-reload", help="do not push the change to a running risk pool")]
KEY_METRICS = {"payment_default": ("roc_auc", "pr_auc", "brier"), "order_anomaly": ("synthetic_auc",)}


class Source(StrEnum):
    UCI = "uci"
    DESK = "desk"


class Engine(StrEnum):
    RAY_TRAIN = "ray-train"
    RAY_TASK = "ray-task"
    LOCAL = "local"


def _fail(message: str) -> NoReturn:
    """A usage or data error: ``message`` as one line on stderr, exit code 2."""
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _console() -> Console:
    from rich.console import Console

    return Console()


def open_registry(settings: Settings, tracking_uri: str | None = None) -> Registry:
    """The model registry the settings point at (``tracking_uri`` first, if given)."""
    from ml.registry import Registry

    return Registry(
        tracking_uri or settings.mlflow_tracking_uri,
        settings.mlflow_artifact_dir,
        database_url=settings.database_url,
        data_dir=settings.data_dir,
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    return "-" if v is None else str(v)


def push_to_pool(settings: Settings, reg: Registry, console: Console) -> bool:
    """Hot-reload the running risk pool with the current champions; False when there is none."""
    try:
        import ray
        from ray import serve

        from actors.risk_pool import APP_NAME, apply_model_config

        if not ray.is_initialized():
            ray.init(
                address=settings.ray_address or "auto",
                namespace=settings.ray_namespace,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        if APP_NAME not in serve.status().applications:
            console.print("no running risk pool; the champion loads at the pool's next start")
            return False
        versions = reg.champion_versions()
        apply_model_config(
            settings,
            settings.database_url,
            settings.redis_url or "",
            {"tracking_uri": reg.tracking_uri, "alias": "champion", "version": json.dumps(versions)},
        )
    except ConnectionError:
        console.print("no running Ray cluster; the champion loads at the risk pool's next start")
        return False
    except Exception as exc:
        console.print(f"[yellow]could not reach the risk pool ({type(exc).__name__}: {exc})[/yellow]")
        return False
    console.print(f"risk pool reconfigured with {versions}")
    return True


@app.command()
def train(
    model: Model,
    data: Annotated[
        list[str] | None, typer.Option("--data", help="data file or directory (repeatable)")
    ] = None,
    tune: Annotated[int, typer.Option("--tune", metavar="TRIALS", help="Ray Tune trials (0: off)")] = 0,
    sample: Annotated[int | None, typer.Option(help="train on a stratified sample of N rows")] = None,
    seed: int = 42,
    engine: Annotated[
        Engine | None, typer.Option(help="payment_default: ray-train (default); others: ray-task (default)")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray Train workers")] = 2,
    dsn: Annotated[
        str | None,
        typer.Option(help="PostgreSQL DSN: orders (order_anomaly), settlements (--source desk)"),
    ] = None,
    source: Annotated[
        Source, typer.Option(help="payment_default data: uci (bootstrap file) or desk (ml_settlements)")
    ] = Source.UCI,
    late_days: Annotated[
        float,
        typer.Option(min=0.0, help="--source desk: an invoice paid later than this after due is a default"),
    ] = 30.0,
    holdout: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="--source desk: share of the latest invoices held out")
    ] = 0.3,
    promote: Annotated[
        bool, typer.Option("--promote", help="promote the new version if it passes the gate")
    ] = False,
    tracking_uri: TrackingUri = None,
    no_reload: NoReload = False,
) -> None:
    """Train a risk model on Ray, tracked in MLflow, registered as challenger."""
    from ml import datasets as D
    from ml import train as T
    from ml.registry import CHAMPION, PromotionRefused

    settings = get_settings()
    desk = source == Source.DESK
    if desk and model != "payment_default":
        _fail(f"tradedesk train {model}: --source desk trains payment_default only")
    default_engine = "ray-train" if model == "payment_default" and not desk else "ray-task"
    chosen = str(engine) if engine else default_engine
    files: list[str | Path] | str | Path | None = (
        list(data) if model == "order_anomaly" and data else (data[0] if data else None)
    )
    kw = _train_kwargs(model, settings, chosen, tune, sample, seed, workers, dsn)
    try:
        if desk:
            kw.update(source="desk", dsn=dsn or settings.database_url, late_days=late_days, holdout=holdout)
        else:
            D.check_data(model, files)
    except (D.DataShapeError, OSError) as exc:
        _fail(f"tradedesk train {model}: {exc}")
    console = _console()
    reg = open_registry(settings, tracking_uri)
    champion = reg.by_alias(model, CHAMPION)
    try:
        result = T.train(model, files, **kw)
    except (D.DataShapeError, OSError) as exc:
        _fail(f"tradedesk train {model}: {exc}")
    if champion is not None and result.holdout is not None:
        _champion_on_holdout(console, reg, result, champion)
    info = reg.log_training(result)
    _print_result(console, result, info.version, champion)
    console.print(
        f"engine {result.engine}, wall {result.wall_s:.1f} s, dataset sha256 {result.dataset.sha256[:12]}, "
        f"run {info.run_id}, registered {info.model} v{info.version} as challenger"
    )
    if promote:
        try:
            reg.promote(model, info.version)
        except PromotionRefused as exc:
            console.print(f"[red]promotion refused:[/red] {exc}")
            raise typer.Exit(1) from None
        console.print(f"promoted {model} v{info.version} to champion")
        if not no_reload:
            push_to_pool(settings, reg, console)


def _champion_on_holdout(console: Console, reg: Registry, result: Any, champion: Any) -> None:
    """Score the current champion on the new run's hold-out, record it as the run's
    ``champion_roc_auc`` (and ``champion_pr_auc``, ``champion_brier``) and print both ROC-AUCs."""
    from ml.train_payment import evaluate_on

    loaded = reg.load(result.model, champion.version)
    if loaded is None:
        return
    theirs = evaluate_on(loaded[0], result.holdout)
    result.metrics.update({f"champion_{k}": v for k, v in theirs.items()})
    src = champion.tags.get("data_source", "uci")
    n = len(result.holdout[1])
    console.print(
        f"hold-out of {n} rows ({result.dataset.info.get('data_source')}): new model ROC-AUC "
        f"{result.metrics['roc_auc']:.4f}; champion v{champion.version} (data_source={src}) ROC-AUC "
        f"{theirs['roc_auc']:.4f}",
        soft_wrap=True,
    )


def _train_kwargs(
    model: str,
    settings: Settings,
    engine: str,
    tune: int,
    sample: int | None,
    seed: int,
    workers: int,
    dsn: str | None,
) -> dict[str, Any]:
    """Keyword arguments of :func:`ml.train.train` for ``model``, with a progress bar on stderr."""
    from tqdm import tqdm

    bar: list[Any] = []  # created on the first message, so a failed data load prints no bar

    def progress(msg: str) -> None:
        if not bar:
            bar.append(tqdm(total=None, desc=f"train {model}", unit="step", leave=False, file=sys.stderr))
        bar[0].update(1)
        bar[0].set_postfix_str(msg[:80])
        bar[0].write(f"  {msg}")

    kw: dict[str, Any] = {
        "sample": sample,
        "seed": seed,
        "engine": engine,
        "progress": progress,
        "ray_address": settings.ray_address,
    }
    if model == "order_anomaly":
        kw["dsn"] = dsn
    else:
        kw["tune_trials"] = tune
    if model == "payment_default":
        kw["workers"] = workers
    return kw


def _print_result(console: Console, result: Any, version: str, champion: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{result.model} v{version} (hold-out) vs champion")
    table.add_column("metric")
    table.add_column(f"v{version} (new)", justify="right")
    table.add_column(f"v{champion.version} (champion)" if champion else "champion", justify="right")
    for k, v in result.metrics.items():
        table.add_row(k, _fmt(v), _fmt(champion.metrics.get(k)) if champion else "-")
    console.print(table)


_group_uri: dict[str, str | None] = {"uri": None}


@models_app.callback()
def _models_group(tracking_uri: TrackingUri = None) -> None:
    """Model registry: list | promote | rollback | challenger | shadow | shadow-report."""
    _group_uri["uri"] = tracking_uri


def _registry_call(tracking_uri: str | None, action: Callable[[Settings, Registry, Console], None]) -> None:
    """Run ``action`` on the registry; registry refusals print one line and exit with code 1."""
    from ml.registry import PromotionRefused, RegistryError

    settings = get_settings()
    console = _console()
    try:
        action(settings, open_registry(settings, tracking_uri or _group_uri["uri"]), console)
    except (PromotionRefused, RegistryError) as exc:
        console.print(f"[red]{type(exc).__name__}:[/red] {exc}")
        raise typer.Exit(1) from None


@models_app.command("list")
def list_models(tracking_uri: TrackingUri = None) -> None:
    """Every registered version with aliases and key metrics."""

    def action(settings: Settings, reg: Registry, console: Console) -> None:
        from rich.table import Table

        table = Table(title=f"risk models ({reg.tracking_uri.split('@')[-1]})")
        for col in ("model", "version", "aliases", "key metrics", "run"):
            table.add_column(col)
        for v in reg.list_models():
            keys = KEY_METRICS.get(v.model, ("mae", "r2"))
            metrics = ", ".join(f"{k}={v.metrics[k]:.4g}" for k in keys if k in v.metrics)
            table.add_row(v.model, v.version, ",".join(v.aliases), metrics, v.run_id[:8])
        console.print(table)

    _registry_call(tracking_uri, action)


@models_app.command()
def promote(
    model: Model, version: str, tracking_uri: TrackingUri = None, no_reload: NoReload = False
) -> None:
    """Make VERSION the champion (after the validation gate) and push it to the pool."""

    def action(settings: Settings, reg: Registry, console: Console) -> None:
        info = reg.promote(model, version)
        console.print(f"{model} v{info.version} is champion")
        if not no_reload:
            push_to_pool(settings, reg, console)

    _registry_call(tracking_uri, action)


@models_app.command()
def rollback(model: Model, tracking_uri: TrackingUri = None, no_reload: NoReload = False) -> None:
    """Restore the previous champion and push it to the pool."""

    def action(settings: Settings, reg: Registry, console: Console) -> None:
        info = reg.rollback(model)
        console.print(f"{model} rolled back to v{info.version}")
        if not no_reload:
            push_to_pool(settings, reg, console)

    _registry_call(tracking_uri, action)


@models_app.command()
def challenger(model: Model, version: str, tracking_uri: TrackingUri = None) -> None:
    """Point the challenger alias (shadow scoring) at VERSION."""

    def action(settings: Settings, reg: Registry, console: Console) -> None:
        info = reg.set_challenger(model, version)
        console.print(f"{model} v{info.version} is challenger")

    _registry_call(tracking_uri, action)


@models_app.command()
def shadow(
    model: Model,
    fraction: Annotated[float, typer.Argument(min=0.0, max=1.0, help="share of rows, 0..1")],
    tracking_uri: TrackingUri = None,
    no_reload: NoReload = False,
) -> None:
    """Shadow-score the challenger on FRACTION of the scored rows."""
    from ml.registry import registered_name
    from ml.serving import SHADOW_TAG

    def action(settings: Settings, reg: Registry, console: Console) -> None:
        reg.client.set_registered_model_tag(registered_name(model), SHADOW_TAG, str(fraction))
        console.print(f"{model}: challenger shadow-scored on {fraction:.0%} of rows")
        if not no_reload:
            push_to_pool(settings, reg, console)

    _registry_call(tracking_uri, action)


@models_app.command("shadow-report")
def shadow_report_cmd(
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN (default: TRADEDESK_DATABASE_URL)")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """A/B comparison of champion and challenger from the recorded shadow scores."""
    import pandas as pd
    from rich.table import Table

    from ml.serving import shadow_report
    from persistence import risk_reads

    dsn = dsn or get_settings().database_url
    if not dsn:
        _fail("no database: give --dsn or set TRADEDESK_DATABASE_URL")
    rows = risk_reads.run_sync(dsn, risk_reads.shadow_scores)
    rep = shadow_report(pd.DataFrame(rows, columns=list(risk_reads.ShadowScoreRow._fields)))
    table = Table(title="shadow scoring: champion vs challenger")
    for col in rep.columns:
        table.add_column(col)
    for row in rep.itertuples(index=False):
        table.add_row(*(_fmt(v) for v in row))
    _console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``main(["train", "payment_default", "--sample", "3000"])`` etc.; returns the
    exit code (0 ok, 1 refused/failed, 2 usage or data error, printed as one line on stderr)."""
    _group_uri["uri"] = None
    try:
        app(args=list(sys.argv[1:] if argv is None else argv), prog_name="tradedesk")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
