"""Fusion of rules and ML scores: thresholds, floors, penalty, tiers and model versions."""

from __future__ import annotations

import pytest

from actors.core.risk.fusion import (
    ML_ABOVE_SUGGESTED_LIMIT,
    ML_DEFAULT_RISK,
    ML_ORDER_ANOMALY,
    ML_RISK,
    ML_UNAVAILABLE,
    FusionConfig,
    MlScores,
    fuse,
)
from actors.core.risk.rules import RuleResult
from actors.core.risk.types import Outcome

PASS = RuleResult(Outcome.PASS, (), 0.0)
WARN = RuleResult(Outcome.WARN, ("LINKED_MOBILE",), 0.5)
BLOCK = RuleResult(Outcome.BLOCK, ("WASH_TRADE",), 1.0)
V = {"payment_default": "3", "order_anomaly": "2"}


def ml(pd: float = 0.0, an: float = 0.0, limit: int | None = None) -> MlScores:
    return MlScores(pd, an, limit, dict(V))


def test_rules_only_pass_warn_block() -> None:
    d = fuse(PASS, None)
    assert (d.outcome, d.reasons, d.penalty, d.trust, d.tiers, d.model_versions) == (
        Outcome.PASS,
        (),
        0.0,
        1.0,
        ("rules",),
        {},
    )
    w = fuse(WARN, None)
    assert (w.outcome, w.reasons, w.penalty, w.score) == (Outcome.WARN, ("LINKED_MOBILE",), 0.2, 0.5)
    b = fuse(BLOCK, None)
    assert (b.outcome, b.reasons, b.penalty, b.trust) == (Outcome.BLOCK, ("WASH_TRADE",), 0.0, 0.0)


def test_rules_only_degraded_is_flagged() -> None:
    d = fuse(PASS, None, ml_expected=True)
    assert d.outcome == Outcome.PASS and d.reasons == (ML_UNAVAILABLE,) and d.tiers == ("rules",)


def test_combined_score_and_versions() -> None:
    d = fuse(PASS, ml(pd=0.2, an=0.1))
    assert d.score == pytest.approx(0.3 * 0.2)
    assert d.trust == pytest.approx(1 - 0.06)
    assert d.tiers == ("rules", "ml") and d.model_versions == V
    assert d.outcome == Outcome.PASS and d.reasons == ()


@pytest.mark.parametrize(
    ("rules", "scores", "outcome", "reasons"),
    [
        # PASS + ML: WARN at combined >= 0.25, i.e. ML score >= 0.8333...
        (PASS, ml(pd=0.83), Outcome.PASS, ()),
        (PASS, ml(pd=0.84), Outcome.WARN, (ML_DEFAULT_RISK,)),
        (PASS, ml(an=0.9), Outcome.WARN, (ML_ORDER_ANOMALY,)),
        (PASS, ml(pd=0.95, an=0.95), Outcome.WARN, (ML_DEFAULT_RISK, ML_ORDER_ANOMALY)),
        # WARN + ML: BLOCK at combined >= 0.6, i.e. ML score >= 0.8333...
        (WARN, ml(pd=0.0), Outcome.WARN, ("LINKED_MOBILE",)),
        (WARN, ml(pd=0.83), Outcome.WARN, ("LINKED_MOBILE",)),
        (WARN, ml(pd=0.84), Outcome.BLOCK, ("LINKED_MOBILE", ML_DEFAULT_RISK)),
        # the rules outcome is a floor: a clean ML score never clears a rules BLOCK
        (BLOCK, ml(), Outcome.BLOCK, ("WASH_TRADE",)),
    ],
)
def test_thresholds(rules: RuleResult, scores: MlScores, outcome: Outcome, reasons: tuple[str, ...]) -> None:
    d = fuse(rules, scores)
    assert d.outcome == outcome
    assert d.reasons == reasons
    assert d.penalty == (0.2 if outcome == Outcome.WARN else 0.0)


def test_generic_ml_reason_when_no_component_dominates() -> None:
    cfg = FusionConfig(rules_weight=0.5, ml_weight=0.5, ml_reason_level=0.9)
    d = fuse(PASS, ml(pd=0.6), cfg)
    assert (d.outcome, d.reasons) == (Outcome.WARN, (ML_RISK,))


def test_suggested_credit_limit_warns() -> None:
    d = fuse(PASS, ml(limit=1_000_000), exposure_after=1_000_001)
    assert (d.outcome, d.reasons) == (Outcome.WARN, (ML_ABOVE_SUGGESTED_LIMIT,))
    assert fuse(PASS, ml(limit=1_000_000), exposure_after=1_000_000).outcome == Outcome.PASS


def test_weights_configurable() -> None:
    cfg = FusionConfig(rules_weight=0.0, ml_weight=1.0, warn_threshold=0.3, block_threshold=0.9)
    assert fuse(PASS, ml(pd=0.95), cfg).outcome == Outcome.BLOCK
    assert fuse(PASS, ml(pd=0.5), cfg).outcome == Outcome.WARN


def test_invalid_config() -> None:
    with pytest.raises(ValueError):
        FusionConfig(rules_weight=0, ml_weight=0)
    with pytest.raises(ValueError):
        FusionConfig(warn_threshold=0.8, block_threshold=0.5)
