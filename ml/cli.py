"""``tradedesk train`` and ``tradedesk models``: train risk models on Ray, manage the registry.

::

    tradedesk train MODEL [--data PATH] [--tune TRIALS] [--sample N] [--engine ENGINE] [--promote]
    tradedesk models list
    tradedesk models promote MODEL VERSION
    tradedesk models rollback MODEL
    tradedesk models challenger MODEL VERSION
    tradedesk models shadow MODEL FRACTION
    tradedesk models shadow-report [--dsn DSN]

``MODEL``: ``payment_default`` | ``order_anomaly`` | ``credit_limit``. Every command takes
``--tracking-uri`` (default: see :func:`ml.registry.resolve_tracking_uri`). A promotion or rollback
is pushed to a running risk pool (``actors.risk_pool.apply_model_config``: Serve ``reconfigure``
on the live replicas, no restart); without a running pool the new champion is loaded at its next
start.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ml.train import MODELS


def _console() -> Any:
    from rich.console import Console

    return Console()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tradedesk", description="risk-model training and registry")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a risk model on Ray, tracked in MLflow")
    t.add_argument("model", choices=MODELS)
    t.add_argument("--data", action="append", help="data file or directory (repeatable)")
    t.add_argument("--tune", type=int, default=0, metavar="TRIALS", help="Ray Tune trials (0: off)")
    t.add_argument("--sample", type=int, default=None, help="train on a stratified sample of N rows")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument(
        "--engine",
        choices=["ray-train", "ray-task", "local"],
        default=None,
        help="payment_default: ray-train (default); others: ray-task (default)",
    )
    t.add_argument("--workers", type=int, default=2, help="Ray Train workers")
    t.add_argument("--dsn", default=None, help="PostgreSQL DSN with orders (order_anomaly)")
    t.add_argument("--promote", action="store_true", help="promote the new version if it passes the gate")
    t.add_argument("--tracking-uri", default=None)
    m = sub.add_parser("models", help="model registry")
    m.add_argument("--tracking-uri", default=None)
    msub = m.add_subparsers(dest="action", required=True)
    ls = msub.add_parser("list")
    pr = msub.add_parser("promote")
    pr.add_argument("model", choices=MODELS)
    pr.add_argument("version")
    rb = msub.add_parser("rollback")
    rb.add_argument("model", choices=MODELS)
    ch = msub.add_parser("challenger")
    ch.add_argument("model", choices=MODELS)
    ch.add_argument("version")
    sh = msub.add_parser("shadow")
    sh.add_argument("model", choices=MODELS)
    sh.add_argument("fraction", type=float)
    rep = msub.add_parser("shadow-report")
    rep.add_argument("--dsn", default=None)
    for sp in (ls, pr, rb, ch, sh, rep):
        sp.add_argument("--tracking-uri", default=argparse.SUPPRESS)
    for sp in (t, pr, rb, sh):
        sp.add_argument(
            "--no-reload", action="store_true", help="do not push the change to a running risk pool"
        )
    return p


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    return "-" if v is None else str(v)


def _train(args: argparse.Namespace) -> int:
    from rich.table import Table
    from tqdm import tqdm

    from ml import train as T
    from ml.registry import CHAMPION, PromotionRefused, Registry

    console = _console()
    engine = args.engine or ("ray-train" if args.model == "payment_default" else "ray-task")
    reg = Registry(args.tracking_uri)
    champion = reg.by_alias(args.model, CHAMPION)
    bar = tqdm(total=None, desc=f"train {args.model}", unit="step", leave=False, file=sys.stderr)

    def progress(msg: str) -> None:
        bar.update(1)
        bar.set_postfix_str(msg[:80])
        bar.write(f"  {msg}")

    data: Any = args.data
    if data and args.model != "order_anomaly":
        data = data[0]
    kw: dict[str, Any] = {"sample": args.sample, "seed": args.seed, "engine": engine, "progress": progress}
    if args.model != "order_anomaly":
        kw["tune_trials"] = args.tune
    else:
        kw["dsn"] = args.dsn
    if args.model == "payment_default":
        kw["workers"] = args.workers
    try:
        result = T.train(args.model, data, **kw)
    finally:
        bar.close()
    info = reg.log_training(result)
    table = Table(title=f"{args.model} v{info.version} (hold-out) vs champion")
    table.add_column("metric")
    table.add_column(f"v{info.version} (new)", justify="right")
    table.add_column(f"v{champion.version} (champion)" if champion else "champion", justify="right")
    for k, v in result.metrics.items():
        table.add_row(k, _fmt(v), _fmt(champion.metrics.get(k)) if champion else "-")
    console.print(table)
    console.print(
        f"engine {result.engine}, wall {result.wall_s:.1f} s, dataset sha256 {result.dataset.sha256[:12]}, "
        f"run {info.run_id}, registered {info.model} v{info.version} as challenger"
    )
    if args.promote:
        try:
            reg.promote(args.model, info.version)
        except PromotionRefused as exc:
            console.print(f"[red]promotion refused:[/red] {exc}")
            return 1
        console.print(f"promoted {args.model} v{info.version} to champion")
        if not args.no_reload:
            _push_to_pool(reg, console)
    return 0


def _push_to_pool(reg: Any, console: Any) -> bool:
    """Hot-reload the running risk pool with the current champions; False when there is none."""
    try:
        from actors.risk_pool import APP_NAME, apply_model_config
    except ImportError as exc:
        console.print(f"risk pool module not available ({exc}); the champion loads at the pool's next start")
        return False
    try:
        import ray
        from ray import serve

        from actors.settings import get_settings

        settings = get_settings()
        if not ray.is_initialized():
            ray.init(
                address=settings.ray_address or "auto",
                namespace=settings.ray_namespace,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        apps = serve.status().applications
        if APP_NAME not in apps:
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


def _models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ml.registry import PromotionRefused, Registry, RegistryError, registered_name
    from ml.serving import SHADOW_TAG

    console = _console()
    reg = Registry(args.tracking_uri)
    try:
        if args.action == "list":
            table = Table(title=f"risk models ({reg.tracking_uri.split('@')[-1]})")
            for col in ("model", "version", "aliases", "key metrics", "run"):
                table.add_column(col)
            key = {"payment_default": ("roc_auc", "pr_auc", "brier"), "order_anomaly": ("synthetic_auc",)}
            for v in reg.list_models():
                keys = key.get(v.model, ("mae", "r2"))
                metrics = ", ".join(f"{k}={v.metrics[k]:.4g}" for k in keys if k in v.metrics)
                table.add_row(v.model, v.version, ",".join(v.aliases), metrics, v.run_id[:8])
            console.print(table)
            return 0
        if args.action == "promote":
            info = reg.promote(args.model, args.version)
            console.print(f"{args.model} v{info.version} is champion")
            if not args.no_reload:
                _push_to_pool(reg, console)
            return 0
        if args.action == "rollback":
            info = reg.rollback(args.model)
            console.print(f"{args.model} rolled back to v{info.version}")
            if not args.no_reload:
                _push_to_pool(reg, console)
            return 0
        if args.action == "challenger":
            info = reg.set_challenger(args.model, args.version)
            console.print(f"{args.model} v{info.version} is challenger")
            return 0
        if args.action == "shadow":
            if not 0.0 <= args.fraction <= 1.0:
                console.print("fraction must be in [0, 1]")
                return 2
            reg.client.set_registered_model_tag(registered_name(args.model), SHADOW_TAG, str(args.fraction))
            console.print(f"{args.model}: challenger shadow-scored on {args.fraction:.0%} of rows")
            if not args.no_reload:
                _push_to_pool(reg, console)
            return 0
        if args.action == "shadow-report":
            return _shadow_report(args, console, Table)
    except (PromotionRefused, RegistryError) as exc:
        console.print(f"[red]{type(exc).__name__}:[/red] {exc}")
        return 1
    return 2


def _shadow_report(args: argparse.Namespace, console: Any, table_cls: Any) -> int:
    import pandas as pd
    import psycopg2

    from actors.settings import get_settings
    from ml.serving import shadow_report

    dsn = args.dsn or get_settings().database_url
    if not dsn:
        console.print("no database: give --dsn or set TRADEDESK_DATABASE_URL")
        return 2
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT model, champion_version, challenger_version, champion_score, challenger_score"
                " FROM ml_shadow_scores"
            )
            df = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    finally:
        conn.close()
    rep = shadow_report(df)
    table = table_cls(title="shadow scoring: champion vs challenger")
    for col in rep.columns:
        table.add_column(col)
    for row in rep.itertuples(index=False):
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``main(["train", "payment_default", "--sample", "3000"])`` etc.; returns the
    exit code (0 ok, 1 refused/failed, 2 usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.cmd == "train":
        return _train(args)
    return _models(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
