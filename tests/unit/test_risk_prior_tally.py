"""The ML tier's prior for parties without payment history, the replica's decision tally, the
replay's risk summary and the data-directory users file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from actors.core.risk.fusion import MlScores
from actors.core.risk.market import MarketReference
from actors.core.risk.types import Outcome, RiskDecision
from actors.risk_pool.ml_tier import MlTier
from actors.risk_pool.tally import DecisionTally
from actors.risk_pool.wire import Pair
from gateway.datadir import DataDirUsers
from gateway.replay.risk import allocation_summary, count_allocation_risk, pool_summary
from ml import features as F
from ml.serving import PAYMENT_DEFAULT_PRIOR

TS = 1_700_000_000_000
MONTH = F.MONTH_MS


class FixedModels:
    """A models object that scores every buyer 0.9 and suggests a 1,000-rupee limit."""

    def __init__(self, prior: float | None = None) -> None:
        self.versions = {"payment_default": "4", "credit_limit": "2"}
        if prior is not None:
            self.payment_default_prior = prior

    def payment_default_proba(self, X: Any) -> np.ndarray:
        return np.full(len(X), 0.9)

    def anomaly_score(self, X: Any) -> np.ndarray:
        return np.full(len(X), 0.5)

    def suggested_credit_limit(self, X: Any) -> np.ndarray:
        return np.full(len(X), 1000.0)


def _features() -> pd.DataFrame:
    """B-NEW has no invoice at all, B-OLD one invoice paid late."""
    invoices = [
        {"party_id": "B-OLD", "invoiced_ts": TS - 3 * MONTH, "due_ts": TS - 2 * MONTH, "amount": 500_000,
         "paid_ts": TS - MONTH, "paid_amount": 500_000},
    ]  # fmt: skip
    return F.party_payment_features(invoices, {"B-NEW": 10**9, "B-OLD": 10**9}, TS)


def _pair(buyer: str) -> Pair:
    return Pair("b1", "s1", buyer, "S", "cotton", "IN-TS", 1000, 7200, TS)


def test_party_without_history_gets_the_prior_and_no_suggested_limit() -> None:
    feats = _features()
    assert list(feats.index) == ["B-NEW", "B-OLD"]
    assert list(F.no_payment_history(feats)) == [True, False]
    tier = MlTier(FixedModels(prior=0.25), MarketReference())
    new, old = tier.score([_pair("B-NEW"), _pair("B-OLD")], {}, feats)
    assert new.default_proba == 0.25 and new.suggested_credit_limit is None
    assert old.default_proba == 0.9 and old.suggested_credit_limit == 100_000  # 1,000 Rs in paise
    assert tier.prior_scored == 1
    # a models object without its own prior: the UCI default rate
    (plain,) = MlTier(FixedModels(), MarketReference()).score([_pair("B-NEW")], {}, feats.loc[["B-NEW"]])
    assert plain.default_proba == pytest.approx(PAYMENT_DEFAULT_PRIOR) == pytest.approx(0.2212)


def test_warm_up_leaves_no_trace() -> None:
    tier = MlTier(FixedModels(), MarketReference())
    tier.warm_up(F.party_payment_features([], {"__warm_up__": 0}, 0))
    assert tier.cached_parties == 0 and tier.prior_scored == 0 and tier.cache_misses == 0


def test_tally_counts_outcomes_by_tier_reasons_models_and_scores() -> None:
    t = DecisionTally()
    t.add(RiskDecision(Outcome.PASS, (), tiers=("rules", "ml"), model_versions={"payment_default": "1"}))
    t.add(
        RiskDecision(
            Outcome.WARN, ("PRICE_ANOMALY",), tiers=("rules", "ml"), model_versions={"payment_default": "1"}
        )
    )
    t.add(RiskDecision(Outcome.BLOCK, ("BUYER_UNKNOWN", "ML_UNAVAILABLE")))
    t.add_ml(MlScores(0.2212, 0.35))
    t.add_ml(MlScores(0.05, 1.0))
    d = t.as_dict()
    assert d["outcomes"] == {"rules+ml": {"PASS": 1, "WARN": 1}, "rules": {"BLOCK": 1}}
    assert d["reasons"] == {"PRICE_ANOMALY": 1, "BUYER_UNKNOWN": 1, "ML_UNAVAILABLE": 1}
    assert d["models"] == {"payment_default v1": 2}
    assert d["ml_scores"]["ml"] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert d["ml_scores"]["default_proba"] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert d["ml_scores"]["anomaly"] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]


def _stats(replica: str, decisions: int, ml: int, tally: DecisionTally) -> dict[str, Any]:
    return {"replica": replica, "decisions": decisions, "ml_decisions": ml, "decided": tally.as_dict(),
            "model_versions": {"payment_default": "1"}}  # fmt: skip


def test_pool_summary_is_the_per_replica_difference() -> None:
    t = DecisionTally()
    t.add(RiskDecision(Outcome.PASS, ("ML_UNAVAILABLE",)))
    before = {"r1": _stats("r1", 1, 0, t)}
    for _ in range(3):
        t.add(RiskDecision(Outcome.PASS, (), tiers=("rules", "ml"), model_versions={"payment_default": "1"}))
    t.add(
        RiskDecision(
            Outcome.BLOCK, ("WASH_TRADE",), tiers=("rules", "ml"), model_versions={"payment_default": "1"}
        )
    )
    t2 = DecisionTally()  # a replica started during the replay counts from zero
    t2.add(RiskDecision(Outcome.WARN, ("PRICE_ANOMALY", "ML_UNAVAILABLE")))
    after = {"r1": _stats("r1", 5, 4, t), "r2": _stats("r2", 1, 0, t2)}
    s = pool_summary(before, after)
    assert s["decisions"] == 5 and s["ml_decisions"] == 4 and s["ml_share"] == 0.8
    assert s["outcomes_by_tier"] == {"rules": {"WARN": 1}, "rules+ml": {"BLOCK": 1, "PASS": 3}}
    assert s["models_that_decided"] == {"payment_default v1": 4}
    assert s["top_reasons"] == {"WASH_TRADE": 1, "PRICE_ANOMALY": 1, "ML_UNAVAILABLE": 1}
    assert pool_summary({}, {}) == {"available": False}


def test_allocation_summary_counts_tiers_outcomes_and_models() -> None:
    c: Counter[str] = Counter()
    count_allocation_risk(
        c, {"outcome": "PASS", "tiers": ["rules", "ml"], "model_versions": {"order_anomaly": "1"}}
    )
    count_allocation_risk(c, {"outcome": "WARN", "tiers": ["rules"], "model_versions": {}})
    count_allocation_risk(c, None)
    assert allocation_summary(c) == {
        "outcomes_by_tier": {"none": {"UNKNOWN": 1}, "rules": {"WARN": 1}, "rules+ml": {"PASS": 1}},
        "model_versions": {"order_anomaly v1": 1},
    }


def test_data_dir_users_prunes_dead_pids(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "serve.pids.json").write_text(f"[{int(dead.stdout)}, {other.pid}]")
        users = DataDirUsers(tmp_path)
        assert users.join() == [other.pid]
        assert users.leave() == [other.pid]
        other.kill()
        other.wait()
        assert DataDirUsers(tmp_path).leave() == []
        assert os.getpid() not in json.loads((tmp_path / "serve.pids.json").read_text())
    finally:
        if other.poll() is None:
            other.kill()


def test_anomaly_features_per_pair_use_each_market_and_buyer() -> None:
    """The anomaly model sees, per pair, its own market's median price and its buyer's median size
    (read once per call for all pairs of a market or buyer)."""
    seen: list[pd.DataFrame] = []

    class Recording(FixedModels):
        def anomaly_score(self, X: Any) -> np.ndarray:
            seen.append(X.copy())
            return np.full(len(X), 0.5)

    market = MarketReference()
    for price in (7000, 7100, 7200, 7300, 7400) * 4:
        market.observe("cotton", "IN-TS", price)
        market.observe("cotton", "IN-GJ", price - 1000)
    tier = MlTier(Recording(), market)
    for kg in (1000, 3000, 2000):
        tier.observe_quantity("B1", kg)
    tier.observe_quantity("B2", 500)
    pairs = [
        Pair("b1", "s1", "B1", "S", "cotton", "IN-TS", 4000, 7200, TS),
        Pair("b2", "s2", "B2", "S", "cotton", "IN-GJ", 500, 6200, TS),
        Pair("b3", "s3", "B1", "S", "cotton", "IN-GJ", 2000, 6300, TS),
        Pair("b4", "s4", "B3", "S", "cotton", "IN-TS", 100, 7200, TS),  # B3: no size history
    ]
    tier.score(pairs, {}, None)
    expected = F.build_order_features(
        [7200, 6200, 6300, 7200],
        [7200, 6200, 6200, 7200],  # the medians of IN-TS and IN-GJ
        [4000, 500, 2000, 100],
        [2000, 500, 2000, np.nan],  # B1's median size 2,000 kg, B2's 500 kg, none for B3
        None,
        [TS] * 4,
    )
    pd.testing.assert_frame_equal(seen[-1], expected)
