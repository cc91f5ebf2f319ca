"""Fusion of the rules and ML tiers into one :class:`~actors.core.risk.types.RiskDecision` per pair.

``combined = w_rules * rules_score + w_ml * ml_score`` (defaults :data:`DEFAULT_RULES_WEIGHT` 0.7 /
:data:`DEFAULT_ML_WEIGHT` 0.3, from the risk-engine specification; configurable via
``TRADEDESK_RISK_RULES_WEIGHT`` / ``TRADEDESK_RISK_ML_WEIGHT``).
``combined >= block_threshold`` (0.6) -> BLOCK, ``>= warn_threshold`` (0.25) -> WARN, else PASS
(see :class:`FusionConfig` for how these follow from the rules scores and weights). The rules
outcome is a floor: the ML tier can escalate a decision but never clear a rules WARN or BLOCK (a
hard rule such as sanctions is not a matter of probability). A WARN carries ``penalty`` (0.2: the
quality-profile match score loses 20%). ``trust = 1 - combined``.

The ML score is the worst of the buyer's payment-default probability and the order anomaly score,
both in [0, 1]. When the ML tier did not answer, the decision is rules-only: ``combined`` is the
rules score alone, ``tiers == ("rules",)`` and, if the tier was expected but failed (circuit open,
timeout, error), the reason ``ML_UNAVAILABLE`` flags the decision as degraded.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.core.risk.rules import RuleResult, worst
from actors.core.risk.types import Outcome, RiskDecision

ML_DEFAULT_RISK = "ML_DEFAULT_RISK"
ML_ORDER_ANOMALY = "ML_ORDER_ANOMALY"
ML_ABOVE_SUGGESTED_LIMIT = "ML_ABOVE_SUGGESTED_LIMIT"
ML_UNAVAILABLE = "ML_UNAVAILABLE"
ML_RISK = "ML_RISK"

#: The one source of the fusion defaults (risk-engine specification): rules weight, ML weight and
#: the ML tier's timeout (ms). ``actors.settings`` (``TRADEDESK_RISK_*``) and the risk pool default
#: from these.
DEFAULT_RULES_WEIGHT = 0.7
DEFAULT_ML_WEIGHT = 0.3
DEFAULT_ML_TIMEOUT_MS = 50.0
#: the ML budget's part per scored pair (ms): a batch of n pairs gets ``timeout + n x this``. Measured:
#: the order-anomaly scorer costs ~0.033 ms per pair (about 100 ms for 3,000 pairs, docs/risk.md), so
#: a fixed 50 ms timed out every large replay batch; 0.05 ms/pair keeps small batches near 50 ms.
DEFAULT_ML_TIMEOUT_PER_PAIR_MS = 0.05


@dataclass(frozen=True, slots=True)
class MlScores:
    """ML-tier output for one pair.

    ``default_proba``: buyer's payment-default probability in [0, 1] (XGBoost classifier).
    ``anomaly``: order anomaly score in [0, 1], higher = more anomalous (IsolationForest, rescaled).
    ``suggested_credit_limit``: the regressor's credit limit for the buyer, paise (None if absent).
    ``versions``: model name -> registry version used.
    """

    default_proba: float
    anomaly: float
    suggested_credit_limit: int | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The ML risk score in [0, 1]: the worse of default probability and anomaly."""
        return min(1.0, max(0.0, self.default_proba, self.anomaly))


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """Weights and thresholds of the fusion.

    With the rules scores 0 / 0.5 / 1.0 (PASS / WARN / BLOCK) and weights 0.7 / 0.3:
    a rules WARN alone gives 0.35 (>= ``warn_threshold`` 0.25 -> WARN), a rules BLOCK alone 0.7
    (>= ``block_threshold`` 0.6 -> BLOCK). The ML tier escalates by one level when confident: a
    rules PASS becomes WARN at ML score >= 0.834, a rules WARN becomes BLOCK at ML score >= 0.834.
    Rules-only decisions use the rules score unweighted, so the same thresholds apply.
    ``ml_reason_level``: an ML component at or above it is named in the reasons when the ML tier
    escalated the outcome. ``penalty``: WARN score penalty (0.2, the risk contract).
    """

    rules_weight: float = DEFAULT_RULES_WEIGHT
    ml_weight: float = DEFAULT_ML_WEIGHT
    warn_threshold: float = 0.25
    block_threshold: float = 0.6
    ml_reason_level: float = 0.5
    penalty: float = 0.2

    def __post_init__(self) -> None:
        if self.rules_weight < 0 or self.ml_weight < 0 or self.rules_weight + self.ml_weight <= 0:
            raise ValueError("fusion weights must be non-negative and not both zero")
        if not 0 <= self.warn_threshold <= self.block_threshold <= 1:
            raise ValueError("need 0 <= warn_threshold <= block_threshold <= 1")


def fuse(
    rules: RuleResult,
    ml: MlScores | None,
    config: FusionConfig | None = None,
    *,
    ml_expected: bool = False,
    exposure_after: int | None = None,
) -> RiskDecision:
    """Combine a rules result and (optionally) ML scores into a decision.

    Args:
        rules: the rules-tier result.
        ml: ML scores, or None when the ML tier did not answer.
        config: weights and thresholds.
        ml_expected: the ML tier is configured but failed; adds ``ML_UNAVAILABLE``.
        exposure_after: buyer exposure including this pair, paise; compared with the ML suggested
            credit limit (above it -> ``ML_ABOVE_SUGGESTED_LIMIT``, at least WARN).

    Returns:
        A :class:`RiskDecision` with outcome, reasons (rules first, then ML), penalty, trust,
        combined score, tiers and model versions.
    """
    cfg = config or FusionConfig()
    reasons = list(rules.reasons)
    if ml is None:
        combined = rules.score
        tiers: tuple[str, ...] = ("rules",)
        versions: dict[str, str] = {}
        if ml_expected:
            reasons.append(ML_UNAVAILABLE)
        floor = rules.outcome
    else:
        total = cfg.rules_weight + cfg.ml_weight
        combined = (cfg.rules_weight * rules.score + cfg.ml_weight * ml.score) / total
        tiers = ("rules", "ml")
        versions = dict(ml.versions)
        floor = rules.outcome
        if (
            ml.suggested_credit_limit is not None
            and exposure_after is not None
            and exposure_after > ml.suggested_credit_limit
        ):
            floor = worst(floor, Outcome.WARN)
            reasons.append(ML_ABOVE_SUGGESTED_LIMIT)
    if combined >= cfg.block_threshold:
        by_score = Outcome.BLOCK
    elif combined >= cfg.warn_threshold:
        by_score = Outcome.WARN
    else:
        by_score = Outcome.PASS
    outcome = worst(floor, by_score)
    if ml is not None and outcome != floor:  # escalated by the ML contribution
        named = False
        if ml.default_proba >= cfg.ml_reason_level:
            reasons.append(ML_DEFAULT_RISK)
            named = True
        if ml.anomaly >= cfg.ml_reason_level:
            reasons.append(ML_ORDER_ANOMALY)
            named = True
        if not named:
            reasons.append(ML_RISK)
    return RiskDecision(
        outcome=outcome,
        reasons=tuple(reasons),
        penalty=cfg.penalty if outcome == Outcome.WARN else 0.0,
        trust=round(1.0 - combined, 6),
        score=round(combined, 6),
        tiers=tiers,
        model_versions=versions,
    )
