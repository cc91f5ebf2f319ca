"""First-start champions (``ml.bootstrap.ensure_champions``) on a real MLflow registry (SQLite in a
temporary directory), trained on 8,000-row samples of the shipped data to stay quick: version 1 of each model
becomes champion with its metrics and dataset hash; a second call trains nothing; a model the
validation gate refuses is registered but not served; the pool's model config follows the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml.bootstrap import BOOTSTRAP_ENGINE, ensure_champions, missing_champions
from ml.registry import Registry
from ml.train import MODELS
from ml.train import train as real_train

pytestmark = pytest.mark.timeout(600)


class SampledTrainer:
    """``ml.train.train`` on 8,000-row samples, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, model: str, data: Any = None, **kw: Any) -> Any:
        self.calls.append((model, dict(kw)))
        return real_train(model, data, **{**kw, "sample": 8000})


def test_first_call_trains_every_model_then_reuses(tmp_path: Path) -> None:
    reg = Registry(data_dir=tmp_path)
    assert missing_champions(reg) == list(MODELS)
    fit = SampledTrainer()
    first = ensure_champions(reg, lock_dir=tmp_path / "mlflow", train=fit)
    assert [m for m, _ in fit.calls] == list(MODELS)
    assert all(kw["engine"] == BOOTSTRAP_ENGINE == "local" for _, kw in fit.calls)
    assert first.champions == {m: "1" for m in MODELS} and first.reused == {}, first.refused
    for m in MODELS:
        (v,) = reg.versions(m)
        assert v.version == "1" and v.aliases == ["champion"]
        assert len(v.tags["dataset_sha256"]) == 64 and "bootstrap" in v.tags
    assert 0.2 < reg.version("payment_default", "1").metrics["positive_rate"] < 0.25
    assert "trained payment_default v1 (roc_auc " in first.summary()

    again = ensure_champions(reg, lock_dir=tmp_path / "mlflow", train=fit)
    assert len(fit.calls) == 3  # nothing trained
    assert again.trained == {} and again.reused == {m: "1" for m in MODELS}
    assert again.summary() == "reused payment_default v1; reused order_anomaly v1; reused credit_limit v1"


def test_a_model_the_gate_refuses_is_not_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_ML_FLOORS", '{"credit_limit": {"r2": 0.99}}')
    reg = Registry(data_dir=tmp_path)
    fit = SampledTrainer()
    report = ensure_champions(reg, train=fit)
    assert set(report.champions) == {"payment_default", "order_anomaly"}
    assert "r2" in report.refused["credit_limit"] and "below floor 0.99" in report.refused["credit_limit"]
    (v,) = reg.versions("credit_limit")
    assert v.version == "1" and v.aliases == []  # registered, not champion
    assert missing_champions(reg) == ["credit_limit"]


def test_pool_model_config_off_switch_trains_nothing(tmp_path: Path) -> None:
    from actors.settings import Settings
    from gateway.serve_models import pool_model_config

    said: list[str] = []
    s = Settings(data_dir=tmp_path, risk_ml_bootstrap=False, database_url=None)
    cfg = pool_model_config(s, said.append, None)
    assert cfg == {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", "alias": "champion"}
    assert said == [
        "risk models: first-start training off (TRADEDESK_RISK_ML_BOOTSTRAP=false or --no-ml-bootstrap);"
        " no champion registered: rules-only"
    ]
    assert Registry(data_dir=tmp_path).list_models() == []
