"""Benchmark of the risk pool: ``tradedesk bench risk [--json]``.

Deploys the Ray Serve risk pool (ML tier on) over a throw-away PostgreSQL database and a unique
Redis key prefix, then sends batches of ``--batch`` candidate pairs (one batch = one shard's
``RiskRequest``) from ``--concurrency`` concurrent callers, as shards would. Reports decisions per
second and client-observed latency percentiles per batch, and, measured in the same run on the same
batches, a baseline: the rules tier and fusion evaluated in-process (no Ray, no Redis, no ML).

Models: the ML tier serves real model types fitted at start-up (XGBoost payment-default classifier
and XGBoost credit-limit regressor on the UCI credit data in ``data/credit_risk``, IsolationForest
on synthetic order features around the Agmarknet reference), or the registered champions when
``--tracking-uri`` is given. Parties: ``--buyers`` verified buyers (with credit limits high enough
that credit does not block) and as many sellers. Prices are drawn around the Agmarknet cotton
reference for Gujarat, 2% of them far off (price-anomaly WARNs).

Target (risk-engine issue): >= 20,000 decisions/s with the ML tier on, p99 <= 20 ms per batch of 100.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from actors.core.risk.fusion import DEFAULT_ML_TIMEOUT_MS
from actors.core.risk.types import RiskQuery, RiskRequest
from bench import ADMIN_DSN, REDIS_URL, AdminDsn, JsonOut, RayAddress, RedisUrl
from bench.cleanup import Started

if TYPE_CHECKING:
    from actors.risk_pool import RiskPoolClient

TARGET_DPS = 20_000
TARGET_P99_MS = 20.0
T0 = 1_764_000_000_000


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))]


def make_batches(n: int, size: int, buyers: int, seed: int = 7) -> list[RiskRequest]:
    """``n`` requests of ``size`` cotton pairs (Gujarat) with credit requests per buyer (paise)."""
    rng = random.Random(seed)
    out = []
    for b in range(n):
        req = RiskRequest()
        for i in range(size):
            buyer = f"BB{rng.randrange(buyers)}"
            seller = f"BS{rng.randrange(buyers)}"
            price = int(rng.gauss(7500, 250)) if rng.random() > 0.02 else rng.choice((3000, 15000))
            kg = rng.choice((1700, 5000, 10_000, 25_000))
            req.queries.append(
                RiskQuery(
                    f"B{b}-{i}", f"S{b}-{i}", buyer, seller, "cotton", "IN-GJ", kg, price, T0 + b * 1000 + i
                )
            )
            req.credit_requests[buyer] = req.credit_requests.get(buyer, 0) + kg * price
        out.append(req)
    return out


def fit_models(seed: int = 0) -> dict[str, Any]:
    """Fit the three model types on real/synthetic data; returns ``{"versions", "estimators"}``."""
    import numpy as np
    import xgboost as xgb
    from sklearn.ensemble import IsolationForest

    from ml import features as F
    from ml.datasets import load_credit, load_credit_limit

    credit = load_credit(sample=6000, seed=seed)
    clf = xgb.XGBClassifier(n_estimators=100, max_depth=4, tree_method="hist", n_jobs=1, random_state=seed)
    clf.fit(credit.X[F.feature_names("payment_default")], credit.y)
    lim = load_credit_limit(sample=6000, seed=seed)
    reg = xgb.XGBRegressor(n_estimators=100, max_depth=4, tree_method="hist", n_jobs=1, random_state=seed)
    reg.fit(lim.X[F.feature_names("credit_limit")], lim.y)
    rng = np.random.default_rng(seed)
    n = 5000
    X = F.build_order_features(
        rng.normal(7500, 250, n),
        np.full(n, 7500.0),
        rng.choice([1700, 5000, 10_000, 25_000], n),
        np.full(n, 5000.0),
        rng.exponential(100, n),
        T0 + rng.integers(0, 86_400_000, n),
    )
    iso = IsolationForest(n_estimators=100, random_state=seed, n_jobs=1).fit(X.to_numpy())
    return {
        "versions": {"payment_default": "bench-1", "credit_limit": "bench-1", "order_anomaly": "bench-1"},
        "estimators": {"payment_default": clf, "credit_limit": reg, "order_anomaly": iso},
    }


def baseline(batches: list[RiskRequest]) -> dict[str, Any]:
    """Rules tier + fusion in-process (one thread, no I/O): decisions/s and per-batch latency."""
    from actors.core.risk.fusion import fuse
    from actors.core.risk.market import MarketReference
    from actors.core.risk.rules import Party, RulesEngine
    from actors.core.roles import Role
    from persistence.agmarknet import default_agmarknet_paths, load_price_points

    eng = RulesEngine(market=MarketReference().seed(load_price_points(default_agmarknet_paths())))
    parties: dict[str, Party] = {}
    for q in (q for r in batches for q in r.queries):
        parties.setdefault(q.buyer_id, Party(q.buyer_id, role=Role.BUYER, credit_limit=10**15))
        parties.setdefault(q.seller_id, Party(q.seller_id, role=Role.SELLER))
    lat: list[float] = []
    t0 = time.perf_counter()
    n = 0
    for req in batches:
        s = time.perf_counter()
        for q in req.queries:
            fuse(eng.evaluate(q, parties.get(q.buyer_id), parties.get(q.seller_id), 0), None)
        lat.append((time.perf_counter() - s) * 1000)
        n += len(req.queries)
    wall = time.perf_counter() - t0
    return {
        "decisions_per_s": round(n / wall),
        "batch_p50_ms": round(_pct(lat, 50), 3),
        "batch_p99_ms": round(_pct(lat, 99), 3),
    }


async def _drive(
    client: RiskPoolClient, batches: list[RiskRequest], concurrency: int
) -> tuple[float, list[float], int]:
    queue = list(reversed(batches))
    lat: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while queue:
            req = queue.pop()
            s = time.perf_counter()
            try:
                client.verdicts(req, await client.decide_async(req))
            except Exception:
                errors += 1
                continue
            lat.append((time.perf_counter() - s) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, lat, errors


async def _create_parties(dsn: str, buyers: int) -> None:
    import asyncpg

    from persistence.parties import PartyRepository

    conn = await asyncpg.connect(dsn)
    try:
        repo = PartyRepository(conn)
        for i in range(buyers):
            await repo.create(party_id=f"BB{i}", role="buyer", kyc_status="VERIFIED", credit_limit=10**15)
            await repo.create(party_id=f"BS{i}", role="seller", kyc_status="VERIFIED")
    finally:
        await conn.close()


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


def main(args: SimpleNamespace) -> int:
    """Run the benchmark with the options of :func:`command`; prints a report. Returns 0."""

    import cloudpickle
    from ray import serve

    from actors.risk_pool import deploy_risk_pool
    from actors.settings import Settings
    from persistence.migrate import apply_migrations

    batches = make_batches(args.batches + 50, args.batch, args.buyers)
    base = baseline(batches[50:])

    prefix = f"tdbench:{uuid.uuid4().hex[:8]}:"
    app = f"risk-bench-{uuid.uuid4().hex[:6]}"
    with Started() as started:
        dsn = started.database(args.dsn)
        tmp = tempfile.TemporaryDirectory()
        started.add("temporary model directory", tmp.cleanup)
        started.add("Redis keys", lambda: _delete_keys(args.redis, prefix))
        apply_migrations(dsn)
        asyncio.run(_create_parties(dsn, args.buyers))
        user_config: dict[str, Any] = {"ml_timeout_ms": args.ml_timeout_ms, "version": "bench"}
        model_source = "none"
        if not args.no_ml:
            if args.tracking_uri:
                user_config["tracking_uri"] = args.tracking_uri
                model_source = f"registry {args.tracking_uri}"
            else:
                path = Path(tmp.name) / "models.pkl"
                path.write_bytes(cloudpickle.dumps(fit_models()))
                user_config["models_pickle"] = str(path)
                model_source = "fitted at start (XGBoost x2 on UCI credit, IsolationForest)"
        started.ray(f"bench-risk-{uuid.uuid4().hex[:6]}", args.ray_address)
        started.add(f"Serve application {app}", lambda: serve.delete(app))
        settings = Settings(risk_min_replicas=args.replicas, risk_max_replicas=args.replicas)
        client = deploy_risk_pool(
            settings,
            dsn,
            args.redis,
            prefix=prefix,
            user_config=user_config,
            num_cpus=args.replica_cpus,
            app_name=app,
            load_history=False,
        )

        async def run() -> tuple[float, list[float], int]:
            await _drive(client, batches[:50], args.concurrency)  # warm-up: caches, JIT paths
            return await _drive(client, batches[50:], args.concurrency)

        wall, lat, errors = asyncio.run(run())
        replicas = client.all_stats()
        total = {
            k: sum(int(st.get(k) or 0) for st in replicas)
            for k in ("decisions", "ml_decisions", "ml_ok", "ml_failures", "ml_timeouts", "ml_skipped_open")
        }
        decisions = len(lat) * args.batch
        pool = {
            "decisions_per_s": round(decisions / wall),
            "batch_p50_ms": round(_pct(lat, 50), 3),
            "batch_p99_ms": round(_pct(lat, 99), 3),
            "batches": len(lat),
            "errors": errors,
            "wall_s": round(wall, 3),
            "ml_tier": "off" if args.no_ml else "on",
            "ml_timeout_ms": args.ml_timeout_ms,
            "model_source": model_source,
            # share of decisions (warm-up included) that the ML tier answered; the rest were
            # rules-only because the ML step timed out or the breaker was open
            "ml_answered_fraction": round(total["ml_decisions"] / max(1, total["decisions"]), 4),
            "replicas_seen": len(replicas),
            "replica_totals": total,
            "breaker_states": sorted(str(st.get("breaker_state")) for st in replicas),
            "model_versions": replicas[0].get("model_versions") if replicas else {},
        }

    report = {
        "benchmark": "risk",
        "batch_size": args.batch,
        "concurrency": args.concurrency,
        "replicas": args.replicas,
        "cpus": os.cpu_count(),
        "pool": pool,
        "baseline_rules_in_process": base,
        "target": {"decisions_per_s": TARGET_DPS, "batch_p99_ms": TARGET_P99_MS},
        "target_met": pool["decisions_per_s"] >= TARGET_DPS and pool["batch_p99_ms"] <= TARGET_P99_MS,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"risk pool  ({pool['ml_tier']} ML): {pool['decisions_per_s']:>8} decisions/s  "
            f"p50 {pool['batch_p50_ms']} ms  p99 {pool['batch_p99_ms']} ms per batch of {args.batch}"
        )
        print(
            f"baseline (rules in-process): {base['decisions_per_s']:>8} decisions/s  "
            f"p50 {base['batch_p50_ms']} ms  p99 {base['batch_p99_ms']} ms"
        )
        verdict = "met" if report["target_met"] else "NOT met"
        print(f"target {TARGET_DPS}/s, p99 <= {TARGET_P99_MS} ms: {verdict}")
    return 0


def command(
    json_out: JsonOut = False,
    batches: Annotated[int, typer.Option(help="timed batches")] = 1000,
    batch: Annotated[int, typer.Option(help="pairs per batch")] = 100,
    concurrency: Annotated[int, typer.Option(help="concurrent callers")] = 8,
    buyers: Annotated[int, typer.Option(help="buyers (and sellers)")] = 200,
    replicas: Annotated[int, typer.Option(help="pool replicas (min = max)")] = 2,
    replica_cpus: Annotated[float, typer.Option(help="num_cpus per replica")] = 0.5,
    no_ml: Annotated[bool, typer.Option("--no-ml", help="ML tier off (rules-only pool)")] = False,
    ml_timeout_ms: Annotated[float, typer.Option(help="ML-tier timeout")] = DEFAULT_ML_TIMEOUT_MS,
    tracking_uri: Annotated[str | None, typer.Option(help="serve the registered champions instead")] = None,
    dsn: AdminDsn = ADMIN_DSN,
    redis: RedisUrl = REDIS_URL,
    ray_address: RayAddress = None,
) -> None:
    """Risk pool decisions per second vs an in-process rules baseline."""
    raise typer.Exit(
        main(SimpleNamespace(json=json_out, batches=batches, batch=batch, concurrency=concurrency,
                             buyers=buyers, replicas=replicas, replica_cpus=replica_cpus, no_ml=no_ml,
                             ml_timeout_ms=ml_timeout_ms, tracking_uri=tracking_uri, dsn=dsn, redis=redis,
                             ray_address=ray_address))
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    typer.run(command)
