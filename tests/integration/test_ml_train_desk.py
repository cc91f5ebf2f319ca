"""``tradedesk train payment_default --source desk`` on a seeded PostgreSQL: rows from
``ml_settlements`` + ``parties``, a time-ordered hold-out, the run's provenance in the registry, the
UCI-trained champion scored on the same hold-out, and promotion still gated."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import asyncpg
import psycopg2
import pytest
import redis.asyncio as aredis

from gateway.cli_models import main
from ml import train as T
from ml.registry import PromotionRefused, Registry
from persistence.migrate import apply_migrations
from persistence.parties import PartyRepository
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration

DAY = 86_400_000
T0 = 1_760_000_000_000
SMALL_XGB = dict(T.XGB_CLASSIFIER_PARAMS, n_estimators=60, learning_rate=0.1)


def _season(seed: int = 5) -> list[tuple[object, ...]]:
    """40 buyers over 210 days, an invoice a week each, 30-day terms; half pay within a few days of
    due, half are late beyond 30 days on 60 % of their invoices (some never pay)."""
    rng = random.Random(seed)
    out: list[tuple[object, ...]] = []
    for b in range(40):
        bad = b % 2 == 1
        for k in range(30):
            issued = T0 + k * 7 * DAY + rng.randrange(DAY)
            due = issued + 30 * DAY
            amount = rng.randrange(500_000, 5_000_000)
            late = rng.random() < (0.6 if bad else 0.05)
            days = rng.uniform(31, 90) if late else rng.uniform(-5, 10)
            paid = None if late and rng.random() < 0.3 else due + int(days * DAY)
            out.append(
                (f"INV-{b}-{k}", f"DB{b}", f"A-{b}-{k}", issued, due, amount, paid, amount if paid else 0)
            )
    return out


@pytest.fixture(scope="module")
def desk_db(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)

    async def parties() -> None:
        conn = await asyncpg.connect(pg_dsn)
        r = aredis.Redis.from_url(REDIS_URL)
        try:
            repo = PartyRepository(conn, r, f"tdtest:{uuid.uuid4().hex[:8]}:")
            for b in range(40):
                await repo.create(party_id=f"DB{b}", role="buyer", credit_limit=50_000_000 * (1 + b % 3))
        finally:
            await conn.close()
            await r.aclose()

    asyncio.run(parties())
    conn = psycopg2.connect(pg_dsn)
    with conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO ml_settlements VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", _season())
    conn.close()
    return pg_dsn


def test_train_on_desk_against_uci_champion(
    desk_db: str, tmp_path: Path, ray_session: None, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reg = Registry(uri)
    uci = T.train_payment_default(sample=2000, seed=3, engine="local", params=SMALL_XGB)
    reg.log_training(uci)
    reg.promote("payment_default", "1", floors={"roc_auc": 0.6})

    args = ["train", "payment_default", "--source", "desk", "--dsn", desk_db, "--engine", "ray-task"]
    assert main([*args, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "champion v1 (data_source=uci) ROC-AUC" in out

    v2 = reg.version("payment_default", "2")
    run = reg.client.get_run(v2.run_id)
    # 1,200 invoices; those unpaid and less than 30 days past due at the end are censored
    n_train, n_hold = int(v2.tags["rows_train"]), int(v2.tags["rows_holdout"])
    assert v2.tags["data_source"] == run.data.tags["data_source"] == "desk"
    assert 0.65 * (n_train + n_hold) <= n_train <= 0.75 * (n_train + n_hold)
    assert n_train + n_hold > 1000 and int(run.data.metrics["n_holdout"]) == n_hold
    assert run.data.params["data_source"] == "desk" and run.data.params["late_days"] == "30.0"
    assert len(run.data.tags["dataset_sha256"]) == 64
    m = run.data.metrics
    # the desk's payment behaviour is strongly persistent: its own history predicts it
    assert m["roc_auc"] > 0.75
    assert 0.0 < m["champion_roc_auc"] < 1.0
    assert f"new model ROC-AUC {m['roc_auc']:.4f}" in out
    assert f"ROC-AUC {m['champion_roc_auc']:.4f}" in out
    assert reg.version("payment_default", "1").tags["data_source"] == "uci"

    # same data, same hash: provenance is reproducible
    assert main([*args, "--tracking-uri", uri]) == 0
    assert reg.version("payment_default", "3").tags["dataset_sha256"] == run.data.tags["dataset_sha256"]

    # promotion stays gated
    with pytest.raises(PromotionRefused, match="below floor"):
        reg.promote("payment_default", "2", floors={"roc_auc": 0.999})
    assert reg.promote("payment_default", "2").version == "2"  # default floor 0.75


def test_desk_source_usage_errors(desk_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "credit_limit", "--source", "desk", "--dsn", desk_db]) == 2
    assert "--source desk trains payment_default only" in capsys.readouterr().err
