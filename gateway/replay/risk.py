"""The replay summary's risk section: what the risk engine decided during the replay.

Two sources, both over the HTTP API:

- **pool decisions** (every candidate pair the shards sent to the risk pool, BLOCKs included):
  ``GET /v1/admin/risk/health`` before and after the replay; each answer carries one replica's
  cumulative tally (``stats.decided``, :mod:`actors.risk_pool.tally`), so the health endpoint is read
  a few times to reach every replica, and the summary is the per-replica difference after - before
  (a replica that started during the replay counts from zero). Outcomes PASS / WARN / BLOCK per
  tier (``rules`` alone or ``rules+ml``), the ML share (decisions the ML tier answered / all
  decisions), the model versions that decided, the top reason codes and the distribution of the ML
  scores in tenths;
- **allocations** (exact, from the order answers): outcome and tiers of each allocation's risk
  record and the model versions in it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.replay.client import Client

HEALTH = "/v1/admin/risk/health"
HEALTH_READS = 8  # answers read per snapshot to reach each replica (requests are spread over them)
TOP_REASONS = 8


async def pool_snapshot(client: Client, token: str, reads: int = HEALTH_READS) -> dict[str, dict[str, Any]]:
    """Replica id -> its stats (the latest seen) from ``reads`` health answers; {} when the endpoint is
    missing or the key may not read it."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(reads):
        r = await client.call("GET", HEALTH, token, attempts=2)
        if r is None or r.status_code != 200:
            return seen
        stats = (r.json() or {}).get("stats") or {}
        if isinstance(stats, dict) and stats.get("replica"):
            seen[str(stats["replica"])] = stats
    return seen


def _counter(d: Any) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in (d or {}).items()})


def _diff(after: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    a, b = after.get("decided") or {}, (before or {}).get("decided") or {}
    outcomes: Counter[str] = Counter()
    for tiers, by in (a.get("outcomes") or {}).items():
        prev = (b.get("outcomes") or {}).get(tiers) or {}
        for outcome, n in by.items():
            outcomes[f"{tiers}:{outcome}"] += int(n) - int(prev.get(outcome, 0))
    scores = {}
    for key, hist in (a.get("ml_scores") or {}).items():
        prev = (b.get("ml_scores") or {}).get(key) or [0] * len(hist)
        scores[key] = [int(x) - int(y) for x, y in zip(hist, prev, strict=False)]
    return {
        "decisions": int(after.get("decisions", 0)) - int((before or {}).get("decisions", 0)),
        "ml_decisions": int(after.get("ml_decisions", 0)) - int((before or {}).get("ml_decisions", 0)),
        "outcomes": outcomes,
        "reasons": _counter(a.get("reasons")) - _counter(b.get("reasons")),
        "models": _counter(a.get("models")) - _counter(b.get("models")),
        "ml_scores": scores,
        "model_versions": dict(after.get("model_versions") or {}),
    }


def pool_summary(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """JSON-ready pool decisions of the replay (see the module doc) from two :func:`pool_snapshot`."""
    if not after:
        return {"available": False}
    parts = [_diff(st, before.get(rid)) for rid, st in after.items()]
    outcomes: Counter[str] = sum((p["outcomes"] for p in parts), Counter())
    by_tier: dict[str, dict[str, int]] = {}
    for key, n in sorted(outcomes.items()):
        tiers, _, outcome = key.rpartition(":")
        if n:
            by_tier.setdefault(tiers, {})[outcome] = n
    decisions = sum(p["decisions"] for p in parts)
    ml = sum(p["ml_decisions"] for p in parts)
    scores: dict[str, list[int]] = {}
    for p in parts:
        for key, hist in p["ml_scores"].items():
            cur = scores.setdefault(key, [0] * len(hist))
            scores[key] = [x + y for x, y in zip(cur, hist, strict=False)]
    return {
        "available": True,
        "replicas": len(after),
        "decisions": decisions,
        "ml_decisions": ml,
        "ml_share": round(ml / decisions, 4) if decisions else None,
        "outcomes_by_tier": by_tier,
        "models_that_decided": dict(sum((p["models"] for p in parts), Counter()).most_common()),
        "top_reasons": dict(sum((p["reasons"] for p in parts), Counter()).most_common(TOP_REASONS)),
        "ml_score_tenths": scores,
        "served_model_versions": parts[0]["model_versions"],
    }


def count_allocation_risk(counts: Counter[str], risk: Any) -> None:
    """Count one allocation's risk record: ``"<tiers>:<outcome>"`` and ``"model <name> v<version>"``."""
    if not isinstance(risk, dict):
        counts["none:UNKNOWN"] += 1
        return
    tiers = "+".join(str(t) for t in risk.get("tiers") or []) or "none"
    counts[f"{tiers}:{risk.get('outcome') or 'UNKNOWN'}"] += 1
    for m, v in (risk.get("model_versions") or {}).items():
        counts[f"model {m} v{v}"] += 1


def allocation_summary(counts: Counter[str]) -> dict[str, Any]:
    """JSON-ready allocations by tiers and outcome, and the model versions in their risk records."""
    by_tier: dict[str, dict[str, int]] = {}
    models: dict[str, int] = {}
    for key, n in sorted(counts.items()):
        if key.startswith("model "):
            models[key[len("model ") :]] = n
        else:
            tiers, _, outcome = key.rpartition(":")
            by_tier.setdefault(tiers, {})[outcome] = n
    return {"outcomes_by_tier": by_tier, "model_versions": models}


def risk_lines(risk: dict[str, Any]) -> list[str]:
    """Plain lines for the terminal summary."""
    pool, alloc = risk.get("pool") or {}, risk.get("allocations") or {}
    if not pool.get("available"):
        lines = ["risk pool: no decision counts (risk health endpoint not readable with this key)"]
    else:
        share, served = pool["ml_share"], pool["served_model_versions"] or "none"
        lines = [
            f"risk pool: {pool['decisions']} decisions, ML tier answered "
            f"{pool['ml_decisions']} ({(share or 0) * 100:.1f}%); served {served}"
        ]
        for tiers, by in pool["outcomes_by_tier"].items():
            counts = ", ".join(f"{o} {by.get(o, 0)}" for o in ("PASS", "WARN", "BLOCK"))
            lines.append(f"  tiers {tiers}: {counts}")
        if pool["models_that_decided"]:
            lines.append(
                "  decided with: " + ", ".join(f"{k} ({v})" for k, v in pool["models_that_decided"].items())
            )
        if pool["top_reasons"]:
            lines.append("  top reasons: " + ", ".join(f"{k} {v}" for k, v in pool["top_reasons"].items()))
        ml_hist = (pool.get("ml_score_tenths") or {}).get("ml")
        if ml_hist and sum(ml_hist):
            lines.append("  ML score by tenth [0,.1) .. [.9,1]: " + " ".join(map(str, ml_hist)))
    for tiers, by in (alloc.get("outcomes_by_tier") or {}).items():
        lines.append(f"allocations with tiers {tiers}: " + ", ".join(f"{o} {n}" for o, n in by.items()))
    return lines
