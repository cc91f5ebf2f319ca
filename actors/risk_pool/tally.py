"""Decision tally of one risk replica: outcomes per tier, reason codes, model versions that decided.

``RiskPoolReplica.stats()`` reports it under ``"decided"``; ``tradedesk replay`` reads it from
``GET /v1/admin/risk/health`` before and after the replay and prints the difference
(:mod:`gateway.replay.risk`). The ML tier's scores are summarised too, in tenths: the per-pair ML
score (``max(default probability, rescaled anomaly)``, docs/risk.md "Fusion"), the buyer's default
probability and the rescaled order anomaly, so their distribution over a replay can be reported
without keeping every score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from actors.core.risk.fusion import MlScores
from actors.core.risk.types import RiskDecision

SCORE_BUCKETS = 10  # ML scores counted in tenths: [0, 0.1), ..., [0.9, 1.0]


@dataclass
class DecisionTally:
    """Counters over every decision a replica took (cumulative since the replica started)."""

    outcomes: Counter[str] = field(default_factory=Counter)  # "rules+ml:PASS" -> n
    reasons: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)  # "payment_default v1" -> n
    ml_scores: dict[str, list[int]] = field(
        default_factory=lambda: {k: [0] * SCORE_BUCKETS for k in ("ml", "default_proba", "anomaly")}
    )

    def add(self, d: RiskDecision) -> None:
        """Count one decision."""
        self.outcomes[f"{'+'.join(d.tiers)}:{d.outcome}"] += 1
        for r in d.reasons:
            self.reasons[r] += 1
        for m, v in d.model_versions.items():
            self.models[f"{m} v{v}"] += 1

    def add_ml(self, ml: MlScores) -> None:
        """Count one pair's ML scores (each in [0, 1], higher = riskier) in their tenths."""
        for key, score in (("ml", ml.score), ("default_proba", ml.default_proba), ("anomaly", ml.anomaly)):
            self.ml_scores[key][min(SCORE_BUCKETS - 1, max(0, int(score * SCORE_BUCKETS)))] += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"outcomes": {tiers: {outcome: n}}, "reasons", "models", "ml_scores"}``."""
        by_tier: dict[str, dict[str, int]] = {}
        for key, n in self.outcomes.items():
            tiers, _, outcome = key.rpartition(":")
            by_tier.setdefault(tiers, {})[outcome] = n
        return {
            "outcomes": by_tier,
            "reasons": dict(self.reasons.most_common()),
            "models": dict(self.models.most_common()),
            "ml_scores": {k: list(v) for k, v in self.ml_scores.items()},
        }
