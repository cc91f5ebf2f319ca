"""Promotion reaches a running risk pool without a restart: the Serve deployment's ``user_config``
changes, ``reconfigure`` loads the new champion on the live replica, and requests sent during the
swap all get decisions."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aredis

from actors.core.risk.types import RiskQuery, RiskRequest
from actors.settings import Settings
from ml import train as T
from ml.registry import Registry
from persistence.migrate import apply_migrations
from persistence.parties import PartyRepository
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration

SMALL_XGB = dict(T.XGB_CLASSIFIER_PARAMS, n_estimators=40, max_depth=3, learning_rate=0.1)
T0 = 1_764_000_000_000


async def _parties(dsn: str, prefix: str) -> None:
    conn = await asyncpg.connect(dsn)
    r = aredis.Redis.from_url(REDIS_URL)
    try:
        repo = PartyRepository(conn, r, prefix)
        await repo.create(party_id="HB", role="buyer", kyc_status="VERIFIED")
        await repo.create(party_id="HS", role="seller", kyc_status="VERIFIED")
    finally:
        await conn.close()
        await r.aclose()


def _req(n: int) -> RiskRequest:
    return RiskRequest(queries=[RiskQuery(f"HB{n}", f"HS{n}", "HB", "HS", "cotton", "IN-GJ", 1000, 7500, T0)])


def test_promotion_hot_reloads_running_pool(
    ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from ray import serve

    from actors.risk_pool import apply_model_config, deploy_risk_pool

    apply_migrations(pg_dsn)
    reg = Registry(pg_dsn, tmp_path_factory.mktemp("artifacts"))
    for seed in (1, 2):
        reg.log_training(T.train_payment_default(sample=1500, seed=seed, engine="local", params=SMALL_XGB))
    reg.log_training(T.train_order_anomaly(sample=2000, engine="local"))
    reg.promote("payment_default", "1", floors={"roc_auc": 0.5})
    reg.promote("order_anomaly", "1")

    prefix = f"tdtest:{uuid.uuid4().hex[:10]}:"
    asyncio.run(_parties(pg_dsn, prefix))
    app = f"risk-ml-{uuid.uuid4().hex[:6]}"
    settings = Settings(risk_min_replicas=1, risk_max_replicas=1)
    base = {"tracking_uri": reg.tracking_uri, "alias": "champion", "ml_timeout_ms": 5000}
    kw: dict[str, Any] = {"prefix": prefix, "num_cpus": 0.25, "app_name": app, "load_history": False}
    client = deploy_risk_pool(settings, pg_dsn, REDIS_URL, user_config=base, **kw)
    try:
        d = client.decide(_req(0)).get("HB0", "HS0")
        assert d is not None and d.tiers == ("rules", "ml")
        assert d.model_versions == {"payment_default": "1", "order_anomaly": "1"}
        before = client.stats()["requests"]

        stop = threading.Event()
        answered: list[dict[str, str]] = []
        missing: list[int] = []

        def hammer() -> None:
            n = 1
            while not stop.is_set():
                dec = client.decide(_req(n)).get(f"HB{n}", f"HS{n}")
                if dec is None:
                    missing.append(n)
                else:
                    answered.append(dict(dec.model_versions))
                n += 1

        th = threading.Thread(target=hammer, daemon=True)
        th.start()
        time.sleep(0.5)
        reg.promote("payment_default", "2", floors={"roc_auc": 0.5})
        versions = reg.champion_versions()
        apply_model_config(settings, pg_dsn, REDIS_URL, {**base, "version": str(versions)}, **kw)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not answered or answered[-1].get("payment_default") != "2"):
            time.sleep(0.2)
        time.sleep(0.3)
        stop.set()
        th.join(timeout=30)

        assert missing == [] and client.failures == 0  # no request failed during the swap
        assert answered and answered[-1] == {"payment_default": "2", "order_anomaly": "1"}
        seen = [a.get("payment_default") for a in answered]
        assert "1" in seen and all(s == "2" for s in seen[seen.index("2") :])  # 1 ... 1, then 2 ... 2
        st = client.stats()
        assert st["model_versions"]["payment_default"] == "2"
        assert st["requests"] > before  # same replica, counters kept: reconfigured, not restarted

        reg.rollback("payment_default")
        apply_model_config(settings, pg_dsn, REDIS_URL, {**base, "version": "rollback"}, **kw)
        d = client.decide(_req(10_000)).get("HB10000", "HS10000")
        assert d is not None and d.model_versions["payment_default"] == "1"
    finally:
        serve.delete(app)
