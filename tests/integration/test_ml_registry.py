"""Risk models end to end on a small real sample: train (on Ray), track and register in MLflow on
PostgreSQL, promote, serve, shadow-score, roll back, refuse bad models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import features as F
from ml import train as T
from ml.registry import CHALLENGER, CHAMPION, PromotionRefused, Registry, RegistryError
from ml.serving import ShadowRecorder, load_models, shadow_report

pytestmark = pytest.mark.integration

SMALL_XGB = dict(T.XGB_CLASSIFIER_PARAMS, n_estimators=60, max_depth=3, learning_rate=0.1)
SMALL_REG = dict(T.XGB_REGRESSOR_PARAMS, n_estimators=60)
DAY = 24 * 3600 * 1000
AS_OF = 1_767_225_600_000


def _alias(store: Registry, alias: str) -> str | None:
    info = store.by_alias("payment_default", alias)
    return None if info is None else info.version


@pytest.fixture(scope="module")
def store(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A registry whose backend store is a fresh PostgreSQL database, artifacts in a tmp dir."""
    from persistence.migrate import apply_migrations

    apply_migrations(pg_dsn)  # ml_settlements, ml_shadow_scores live beside the exchange's tables
    return Registry(pg_dsn, tmp_path_factory.mktemp("mlartifacts"))


@pytest.fixture(scope="module")
def runs(store: Registry, ray_session: None) -> dict[str, T.TrainResult]:
    """Two payment-default versions (one in a Ray task, one in-process), an anomaly model and a
    credit-limit regressor, each on 2,000-3,000 real rows, registered."""
    out = {
        "pd1": T.train_payment_default(sample=2000, seed=1, engine="ray-task", params=SMALL_XGB),
        "pd2": T.train_payment_default(sample=3000, seed=2, engine="local", params=SMALL_XGB),
        "anomaly": T.train_order_anomaly(sample=3000, engine="ray-task"),
        "limit": T.train_credit_limit(sample=3000, engine="local", params=SMALL_REG),
    }
    for r in out.values():
        store.log_training(r)
    return out


def test_runs_are_tracked(store: Registry, runs: dict[str, T.TrainResult]) -> None:
    assert store.tracking_uri.startswith("postgresql+psycopg2://")
    versions = store.versions("payment_default")
    assert [v.version for v in versions] == ["2", "1"]
    v1 = store.version("payment_default", "1")
    assert v1.features == F.feature_names("payment_default")
    run = store.client.get_run(v1.run_id)
    assert run.data.tags["dataset_sha256"] == runs["pd1"].dataset.sha256
    assert {"roc_auc", "pr_auc", "brier", "rf_roc_auc"} <= set(run.data.metrics)
    assert run.data.params["max_depth"] == "3"
    arts = {a.path for a in store.client.list_artifacts(v1.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png", "plots/feature_importance.png"} <= arts
    assert 0.6 < runs["pd2"].metrics["roc_auc"] < 1.0
    assert _alias(store, CHALLENGER) == "2"  # newest version is challenger
    assert [v.aliases for v in store.versions("payment_default")] == [[CHALLENGER], []]
    assert load_models(store.tracking_uri, artifact_dir=str(store.artifact_dir)) is None  # no champion yet


def test_promote_and_served_equals_offline(store: Registry, runs: dict[str, T.TrainResult]) -> None:
    floors = {"roc_auc": 0.6}
    store.promote("payment_default", "2", floors=floors)
    store.promote("order_anomaly", "1")
    store.promote("credit_limit", "1")
    models = load_models(store.tracking_uri, artifact_dir=str(store.artifact_dir))
    assert models is not None
    assert models.versions == {"payment_default": "2", "order_anomaly": "1", "credit_limit": "1"}
    assert models.feature_names["payment_default"] == F.feature_names("payment_default")
    X = runs["pd2"].dataset.X.iloc[:300]
    served = models.payment_default_proba(X)
    offline = runs["pd2"].estimator.predict_proba(X)[:, 1]
    assert served.shape == (300,)
    np.testing.assert_array_equal(served, offline)
    # a plain array in feature order scores the same
    np.testing.assert_array_equal(models.payment_default_proba(X.to_numpy()), offline)
    # live parties: features built from settlement rows by the same builder
    invoices = [
        {
            "party_id": "B1",
            "invoiced_ts": AS_OF - 50 * DAY,
            "due_ts": AS_OF - 20 * DAY,
            "amount": 9_000_000,
            "paid_ts": None,
            "paid_amount": 0,
        },
        {
            "party_id": "B2",
            "invoiced_ts": AS_OF - 40 * DAY,
            "due_ts": AS_OF - 5 * DAY,
            "amount": 500_000,
            "paid_ts": AS_OF - 10 * DAY,
            "paid_amount": 500_000,
        },
    ]
    live = F.party_payment_features(invoices, {"B1": 10_000_000, "B2": 10_000_000}, AS_OF)
    np.testing.assert_array_equal(
        models.payment_default_proba(live), runs["pd2"].estimator.predict_proba(live)[:, 1]
    )
    lim = models.suggested_credit_limit(live)  # extra columns ignored
    assert lim.shape == (2,) and np.isfinite(lim).all()
    np.testing.assert_array_equal(lim, runs["limit"].estimator.predict(live[list(F.CREDIT_LIMIT_FEATURES)]))
    orders = F.build_order_features([7700, 7700 * 3], [7700, 7700], [10_000, 10_000], [10_000, 10_000])
    a = models.anomaly_score(orders)
    assert ((a >= 0) & (a <= 1)).all() and a[1] > a[0]
    np.testing.assert_array_equal(a, T.anomaly_scores(runs["anomaly"].estimator, orders))


def test_floor_and_schema_gate(store: Registry, runs: dict[str, T.TrainResult]) -> None:
    with pytest.raises(PromotionRefused, match="roc_auc = .* below floor 0.99"):
        store.promote("payment_default", "1", floors={"roc_auc": 0.99})
    # a model trained on another feature list (the demographic-free builder minus two columns)
    r = runs["pd1"]
    cols = list(r.dataset.X.columns)[:-2]
    assert r.dataset.y is not None
    est = T._fit_xgb_classifier(r.dataset.X[cols], r.dataset.y, SMALL_XGB, 0, 1)
    bad = T.TrainResult("payment_default", est, dict(r.metrics), dict(r.params), cols, r.dataset, {})
    info = store.log_training(bad, challenger=False)
    with pytest.raises(PromotionRefused, match="feature schema mismatch"):
        store.promote("payment_default", info.version, floors={"roc_auc": 0.5})
    assert _alias(store, CHAMPION) == "2"


def test_shadow_scoring(store: Registry, runs: dict[str, T.TrainResult], pg_dsn: str) -> None:
    store.set_challenger("payment_default", "1")
    recorder = ShadowRecorder(pg_dsn, flush_s=3600)
    models = load_models(
        store.tracking_uri, artifact_dir=str(store.artifact_dir), shadow_fraction=0.25, seed=7
    )
    assert models is not None and models.challengers["payment_default"][0] == "1"
    models.recorder = recorder
    X = runs["pd2"].dataset.X.iloc[:400]
    served = models.payment_default_proba(X)
    np.testing.assert_array_equal(served, runs["pd2"].estimator.predict_proba(X)[:, 1])  # champion decides
    recs = list(recorder.records)
    assert 50 < len(recs) < 150  # ~25% of 400
    idx = [int(r.subject) for r in recs]
    np.testing.assert_allclose(
        [r.challenger_score for r in recs], runs["pd1"].estimator.predict_proba(X.loc[idx])[:, 1]
    )
    assert all(r.champion_version == "2" and r.challenger_version == "1" for r in recs)
    assert recorder.flush() == len(recs)
    import psycopg2

    conn = psycopg2.connect(pg_dsn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT model, champion_version, challenger_version, champion_score, challenger_score"
            " FROM ml_shadow_scores"
        )
        df = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    conn.close()
    assert len(df) == len(recs)
    rep = shadow_report(df)
    assert rep.loc[0, "n"] == len(recs) and 0.0 <= rep.loc[0, "agreement"] <= 1.0
    recorder.close()


def test_rollback(store: Registry) -> None:
    store.promote("payment_default", "1", floors={"roc_auc": 0.5})
    assert _alias(store, CHAMPION) == "1"
    back = store.rollback("payment_default")
    assert back.version == "2" and _alias(store, CHAMPION) == "2"
    assert store.version("payment_default", "1").tags.get("rolled_back") == "true"
    with pytest.raises(RegistryError, match="no previous champion"):
        store.rollback("payment_default")
    models = load_models(store.tracking_uri, artifact_dir=str(store.artifact_dir))
    assert models is not None and models.versions["payment_default"] == "2"


def test_cli(store: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli_models import main

    uri = store.tracking_uri
    assert (
        main(["train", "credit_limit", "--sample", "1500", "--engine", "local", "--tracking-uri", uri]) == 0
    )
    out = capsys.readouterr().out
    assert "credit_limit v2" in out and "mae" in out and "champion" in out
    assert main(["models", "list", "--tracking-uri", uri]) == 0
    assert "payment_default" in capsys.readouterr().out
    assert main(["models", "promote", "credit_limit", "2", "--tracking-uri", uri, "--no-reload"]) in (0, 1)
    assert main(["models", "promote", "payment_default", "99", "--tracking-uri", uri, "--no-reload"]) == 1
    assert "no version 99" in capsys.readouterr().out
    assert main(["models", "rollback", "order_anomaly", "--tracking-uri", uri, "--no-reload"]) == 1
    assert main(["train", "nonsense"]) == 2
    tags = store.client.get_registered_model("tradedesk.payment_default").tags
    assert json.loads(tags["champion_history"]) == []  # emptied by the rollback


def test_local_file_fallback(tmp_path: Path) -> None:
    """Neither a tracking URI nor a database: SQLite under the data directory (ml takes the values as
    arguments; the gateway CLI reads them from the settings)."""
    from actors.settings import Settings
    from gateway.cli_models import open_registry
    from ml.registry import resolve_tracking_uri

    uri = resolve_tracking_uri(data_dir=tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    with pytest.raises(RegistryError, match="no MLflow tracking store"):
        resolve_tracking_uri()
    reg = open_registry(Settings(data_dir=tmp_path, database_url=None, mlflow_tracking_uri=None))
    assert reg.tracking_uri == uri
    assert reg.artifact_dir == tmp_path / "mlflow" / "artifacts"
    assert reg.list_models() == []
