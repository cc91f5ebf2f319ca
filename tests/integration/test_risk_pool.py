"""The risk pool on a real Ray Serve deployment, PostgreSQL parties and Redis exposure.

- rules + ML decisions with tiers and model versions;
- the ML tier made to fail (raising, then timing out): decisions continue rules-only, flagged
  ``ML_UNAVAILABLE``, the breaker opens, then half-opens and closes when the model recovers;
- party-cache invalidation after an admin change;
- two shards allocating for one buyer concurrently never exceed its credit limit in total.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import cloudpickle
import numpy as np
import pytest
import redis
import redis.asyncio as aredis

from actors.core.commands import PlaceOrder
from actors.core.risk.fusion import ML_UNAVAILABLE
from actors.core.risk.rules import Reason
from actors.core.risk.types import Outcome, RiskQuery, RiskRequest
from actors.settings import Settings
from persistence.migrate import apply_migrations
from persistence.parties import PartyRepository
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration

VERSIONS = {"payment_default": "1", "order_anomaly": "1", "credit_limit": "1"}
T0 = 1_764_000_000_000


class TinyModels:
    """A stand-in for ``ml.serving.RiskModels``, fitted here on synthetic data. Its failure mode is
    switched through a Redis key: ``raise`` (model error) or ``sleep`` (slower than the timeout)."""

    def __init__(self, redis_url: str, flag_key: str, versions: dict[str, str] | None = None) -> None:
        from sklearn.ensemble import IsolationForest
        from sklearn.linear_model import LogisticRegression

        from ml.features import ORDER_FEATURES, PAYMENT_FEATURES

        rng = np.random.default_rng(0)
        xp = rng.normal(size=(300, len(PAYMENT_FEATURES)))
        y = (xp[:, 1] > 0.5).astype(int)
        self.clf = LogisticRegression(max_iter=200).fit(xp, y)
        xo = rng.normal(scale=0.1, size=(500, len(ORDER_FEATURES)))
        hours = rng.uniform(0, 24, size=500)  # orders arrive at any hour: hour on the unit circle
        xo[:, 3], xo[:, 4] = np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24)
        self.iso = IsolationForest(n_estimators=25, random_state=0).fit(xo)
        self.versions = dict(versions or VERSIONS)
        self.redis_url = redis_url
        self.flag_key = flag_key
        self._r: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_r"} | {"_r": None}

    def _check(self) -> None:
        if self._r is None:
            self._r = redis.Redis.from_url(self.redis_url)
        flag = self._r.get(self.flag_key)
        if flag == b"raise":
            raise RuntimeError("model failure")
        if flag == b"sleep":
            time.sleep(1.0)

    def payment_default_proba(self, X: Any) -> Any:
        from ml.features import as_matrix

        return 0.3 * self.clf.predict_proba(as_matrix(X, "payment_default"))[:, 1]  # low risk by design

    def anomaly_score(self, X: Any) -> Any:
        from ml.features import as_matrix

        self._check()
        return np.clip(-self.iso.score_samples(as_matrix(X, "order_anomaly")), 0.0, 1.0)  # s(x)

    def suggested_credit_limit(self, X: Any) -> Any:
        return np.full(len(X), 10_000_000.0)  # rupees


async def _setup_parties(dsn: str, redis_url: str, prefix: str) -> None:
    conn = await asyncpg.connect(dsn)
    r = aredis.Redis.from_url(redis_url)
    try:
        repo = PartyRepository(conn, r, prefix)
        await repo.create(party_id="B1", role="buyer", kyc_status="VERIFIED", mobile="9000000001")
        await repo.create(party_id="S1", role="seller", kyc_status="VERIFIED")
        await repo.create(party_id="S2", role="seller", kyc_status="VERIFIED", sanctioned=True)
        await repo.create(party_id="S3", role="seller", kyc_status="VERIFIED", mobile="+91 9000000001")
        await repo.create(party_id="S4", role="seller", kyc_status="VERIFIED")
        await repo.create(
            party_id="CB", role="buyer", kyc_status="VERIFIED", credit_limit=100 * 1000 * 7500
        )  # credit for 100 t at 75 Rs/kg = 75,000,000 paise
        for i in range(4):
            await repo.create(party_id=f"CS{i}", role="seller", kyc_status="VERIFIED")
        await repo.create(party_id="T1", role="trader", kyc_status="VERIFIED")
        await repo.create(party_id="T2", role="trader", kyc_status="VERIFIED")
    finally:
        await conn.close()
        await r.aclose()


@pytest.fixture(scope="module")
def pool(
    ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from ray import serve

    from actors.risk_pool import deploy_risk_pool

    apply_migrations(pg_dsn)
    prefix = f"tdtest:{uuid.uuid4().hex[:10]}:"
    asyncio.run(_setup_parties(pg_dsn, REDIS_URL, prefix))
    flag_key = f"{prefix}ml_fail"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    path = Path(tmp_path_factory.mktemp("models")) / "models.pkl"
    path.write_bytes(cloudpickle.dumps(TinyModels(REDIS_URL, flag_key)))
    settings = Settings(risk_min_replicas=1, risk_max_replicas=1)
    app = f"risk-{uuid.uuid4().hex[:6]}"
    client = deploy_risk_pool(
        settings,
        pg_dsn,
        REDIS_URL,
        prefix=prefix,
        user_config={
            "models_pickle": str(path),
            "ml_timeout_ms": 300,
            "breaker_failures": 2,
            "breaker_window_s": 30,
            "breaker_cooldown_s": 1.0,
        },
        num_cpus=0.25,
        app_name=app,
    )
    r = redis.Redis.from_url(REDIS_URL)
    yield {
        "client": client,
        "redis": r,
        "flag": flag_key,
        "prefix": prefix,
        "dsn": pg_dsn,
        "app": app,
        "settings": settings,
        "dir": path.parent,
    }
    serve.delete(app)
    keys = list(r.scan_iter(match=f"{prefix}*"))
    if keys:
        r.delete(*keys)


def _q(buyer: str, seller: str, n: int = 0, price: int = 7500, kg: int = 1000) -> RiskQuery:
    return RiskQuery(f"BO{n}", f"SO{n}", buyer, seller, "cotton", "IN-GJ", kg, price, T0)


def test_rules_and_ml_decisions(pool: dict[str, Any]) -> None:
    client = pool["client"]
    req = RiskRequest(
        queries=[
            _q("B1", "S1", 1),
            _q("B1", "S2", 2),
            _q("B1", "S3", 3),
            _q("NOBODY", "S1", 4),
            _q("B1", "S1", 5, 20000),
        ],
        credit_requests={"B1": 5_000_000},
    )
    v = client.decide(req)
    ok = v.get("BO1", "SO1")
    assert ok is not None and ok.outcome == Outcome.PASS
    assert ok.tiers == ("rules", "ml") and ok.model_versions == VERSIONS
    blocked = v.get("BO2", "SO2")
    assert blocked is not None and (blocked.outcome, blocked.reasons) == (
        Outcome.BLOCK,
        (Reason.SELLER_SANCTIONED,),
    )
    warned = v.get("BO3", "SO3")
    assert warned is not None and warned.outcome == Outcome.WARN
    assert warned.reasons[0] == Reason.LINKED_MOBILE and warned.penalty == 0.2
    unknown = v.get("BO4", "SO4")
    assert unknown is not None and unknown.reasons == (Reason.BUYER_UNKNOWN,)
    # 200 Rs/kg cotton against a Gujarat reference near 75 Rs/kg (Agmarknet seed)
    anomalous = v.get("BO5", "SO5")
    assert anomalous is not None and Reason.PRICE_ANOMALY in anomalous.reasons
    assert v.credit_grants == {}  # B1 has no credit limit: unlimited, not reserved


def _wait_state(client: Any, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st: dict[str, Any] = client.stats()
        if st["breaker_state"] == state or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


@pytest.mark.parametrize("mode", ["raise", "sleep"])
def test_ml_failure_degrades_to_rules_only_then_recovers(pool: dict[str, Any], mode: str) -> None:
    client, r, flag = pool["client"], pool["redis"], pool["flag"]
    req = RiskRequest(queries=[_q("B1", "S1", 10), _q("B1", "S2", 11)])
    assert client.decide(req).get("BO10", "SO10").tiers == ("rules", "ml")
    r.set(flag, mode)
    try:
        for _ in range(3):  # breaker_failures = 2: the third call finds it open
            v = client.decide(req)
            d = v.get("BO10", "SO10")
            assert d is not None and d.outcome == Outcome.PASS
            assert d.tiers == ("rules",) and d.reasons == (ML_UNAVAILABLE,) and d.model_versions == {}
            b = v.get("BO11", "SO11")  # the rules tier keeps blocking
            assert b is not None and b.outcome == Outcome.BLOCK and b.reasons[0] == Reason.SELLER_SANCTIONED
        st = client.stats()
        assert st["breaker_state"] == "OPEN"
        assert st["ml_skipped_open"] >= 1
        assert (st["ml_timeouts"] if mode == "sleep" else st["ml_failures"]) >= 2
    finally:
        r.delete(flag)
    time.sleep(1.1)  # cool-down: the next call is the half-open trial
    d = client.decide(req).get("BO10", "SO10")
    assert d is not None and d.tiers == ("rules", "ml") and d.reasons == ()
    assert client.stats()["breaker_state"] == "CLOSED"


def test_party_cache_invalidated_on_change(pool: dict[str, Any]) -> None:
    client = pool["client"]
    req = RiskRequest(queries=[_q("B1", "S4", 20)])
    assert client.decide(req).get("BO20", "SO20").outcome == Outcome.PASS

    async def sanction() -> None:
        conn = await asyncpg.connect(pool["dsn"])
        ar = aredis.Redis.from_url(REDIS_URL)
        try:
            await PartyRepository(conn, ar, pool["prefix"]).update("S4", sanctioned=True)
        finally:
            await conn.close()
            await ar.aclose()

    asyncio.run(sanction())
    d = client.decide(req).get("BO20", "SO20")
    assert d is not None and (d.outcome, d.reasons[0]) == (Outcome.BLOCK, Reason.SELLER_SANCTIONED)


def test_overload_fails_closed() -> None:
    from actors.risk_pool import RiskPoolClient

    c = RiskPoolClient("redis://127.0.0.1:6379/0", "tdtest:none:", app_name="no-such-app", timeout_s=0.5)
    v = c.decide(RiskRequest(queries=[_q("B1", "S1", 30)], credit_requests={"B1": 10}))
    assert v.decisions == {} and v.credit_grants == {"B1": 0} and v.get("BO30", "SO30") is None
    assert c.failures == 1


def test_two_shards_never_exceed_buyer_credit_limit(pool: dict[str, Any]) -> None:
    import ray

    client = pool["client"]
    limit = 100 * 1000 * 7500

    @ray.remote(num_cpus=0)
    class MiniShard:
        """A shard engine calling the pool exactly like the shard actor: plan, decide, execute, settle."""

        def __init__(self, region: str, decider: Any) -> None:
            from actors.core.engine import ShardEngine

            self.engine = ShardEngine(region, "cotton")
            self.decider = decider
            self.region = region

        def submit(self, commands: list[Any]) -> int:
            req = self.engine.plan(commands)
            v = self.decider.decide(req)
            res = self.engine.execute(commands, v)
            self.decider.settle(v.credit_grants, res.credit_used)
            total = 0
            for r in res.results:
                for a in r.get("allocations") or ():
                    if a["buyer_id"] == "CB":
                        total += a["quantity_kg"] * a["price"]
            return total

    shards = [MiniShard.remote(region, client) for region in ("IN-GJ", "IN-MH")]  # type: ignore[attr-defined]

    def batch(region: str, k: int) -> list[Any]:
        ts = T0 + k * 10
        cmds: list[Any] = []
        for i in range(2):
            seller = f"CS{i + (0 if region == 'IN-GJ' else 2)}"
            cmds.append(
                PlaceOrder(
                    ts, seller, f"{region}-s{k}-{i}", "SELL", "cotton", region, 5_000, 7500, 22.3, 70.8
                )
            )
        cmds.append(
            PlaceOrder(ts + 1, "CB", f"{region}-b{k}", "BUY", "cotton", region, 10_000, 7600, 22.3, 70.8)
        )
        return cmds

    refs = []
    for k in range(8):  # each shard asks for 8 x 10 t = 80 t; together 160 t against a 100 t limit
        for region, shard in zip(("IN-GJ", "IN-MH"), shards, strict=True):
            refs.append(shard.submit.remote(batch(region, k)))
    totals = ray.get(refs)
    allocated = sum(totals)
    assert allocated <= limit
    assert allocated >= limit - 2 * 10_000 * 7600  # the limit is actually used, not refused outright
    exposure = int(pool["redis"].get(f"{pool['prefix']}exposure:CB") or 0)
    assert exposure == allocated  # every unused grant was returned
    for s in shards:
        ray.kill(s)


def test_circular_trade_from_committed_allocation_events(pool: dict[str, Any]) -> None:
    """T1 sold cotton to T2 (a committed ALLOCATED event on the shard's Redis channel); T2 selling
    it back to T1 within the window is blocked as circular trading."""
    import json

    client, r = pool["client"], pool["redis"]
    req = RiskRequest(queries=[_q("T1", "T2", 40)])
    first = client.decide(req).get("BO40", "SO40")
    assert first is not None and first.outcome == Outcome.PASS
    event = {
        "shard_id": "IN-GJ.cotton",
        "seq": 1,
        "type": "ALLOCATED",
        "ts": T0 - 86_400_000,
        "payload": {"seller_id": "T1", "buyer_id": "T2", "quantity_kg": 1000, "price": 7500},
    }
    deadline = time.monotonic() + 15
    while True:
        r.publish("td:events:IN-GJ.cotton", json.dumps(event))
        d = client.decide(req).get("BO40", "SO40")
        assert d is not None
        if d.outcome == Outcome.BLOCK or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (d.outcome, d.reasons) == (Outcome.BLOCK, (Reason.CIRCULAR_TRADE,))


def test_model_promotion_hot_reload_without_restart(pool: dict[str, Any]) -> None:
    """A new model config reaches the live replica through ``reconfigure``: same process, new
    model versions on the next decisions."""
    from actors.risk_pool import apply_model_config

    client = pool["client"]
    before = client.stats()
    v2 = {"payment_default": "2", "order_anomaly": "2", "credit_limit": "2"}
    path = pool["dir"] / "models_v2.pkl"
    path.write_bytes(cloudpickle.dumps(TinyModels(REDIS_URL, pool["flag"], v2)))
    apply_model_config(
        pool["settings"],
        pool["dsn"],
        REDIS_URL,
        {"models_pickle": str(path), "ml_timeout_ms": 300, "version": "v2"},
        prefix=pool["prefix"],
        num_cpus=0.25,
        app_name=pool["app"],
    )
    d = client.decide(RiskRequest(queries=[_q("B1", "S1", 50)])).get("BO50", "SO50")
    assert d is not None and d.tiers == ("rules", "ml") and d.model_versions == v2
    after = client.stats()
    assert after["replica"] == before["replica"] and after["config_version"] == "v2"
