"""What the replay counts from the API's answers, per (commodity, state) group."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from gateway.replay.plan import Planned
from gateway.replay.risk import count_allocation_risk


@dataclass(slots=True)
class Stats:
    """Per (commodity, state) counters filled from the API's answers."""

    orders: Counter[tuple[str, str]] = field(default_factory=Counter)
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    allocations: Counter[tuple[str, str]] = field(default_factory=Counter)
    alloc_kg: Counter[tuple[str, str]] = field(default_factory=Counter)
    alloc_value: Counter[tuple[str, str]] = field(default_factory=Counter)  # sum kg * paise/kg
    proposals: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejects: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    seen_allocations: set[str] = field(default_factory=set)
    http_retries: int = 0
    accepted_proposals: Counter[tuple[str, str]] = field(default_factory=Counter)
    negotiation_failures: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    pending: list[tuple[Planned, list[dict[str, Any]]]] = field(default_factory=list)
    # risk (gateway.replay.risk): allocations by tiers/outcome and models; the pool's health before/after
    alloc_risk: Counter[str] = field(default_factory=Counter)
    pool_before: dict[str, dict[str, Any]] = field(default_factory=dict)
    pool_after: dict[str, dict[str, Any]] = field(default_factory=dict)


def results_of(payload: Any) -> list[dict[str, Any]]:
    """The per-order results of an order answer (a list, or ``results``/``orders``/``items``, or one)."""
    if isinstance(payload, list):
        return [r if isinstance(r, dict) else {} for r in payload]
    if isinstance(payload, dict):
        for k in ("results", "orders", "items"):
            if isinstance(payload.get(k), list):
                return [r if isinstance(r, dict) else {} for r in payload[k]]
        return [payload]
    return []


def record(stats: Stats, item: Planned, res: dict[str, Any]) -> None:
    """Count one order's result: accepted or the reject reason, its allocations and proposals."""
    g = item.group
    status = str(res.get("status", "")).upper()
    if status in {"ACCEPTED", "OK"}:
        stats.accepted[g] += 1
    else:
        stats.rejects[g][str(res.get("reason") or res.get("title") or status or "unknown")] += 1
    for a in res.get("allocations") or []:
        count_allocation(stats, g, a)
    props = [p for p in res.get("proposals") or [] if isinstance(p, dict) and p.get("proposal_id")]
    stats.proposals[g] += len(props)
    if props and item.body.get("side") == "BUY":
        stats.pending.append((item, props))


def count_allocation(stats: Stats, g: tuple[str, str], a: dict[str, Any]) -> None:
    """Count an allocation once (by id): kg and kg * paise/kg for the group's VWAP."""
    aid = str(a.get("allocation_id"))
    if aid in stats.seen_allocations:
        return
    stats.seen_allocations.add(aid)
    kg, price = int(a.get("quantity_kg") or 0), int(a.get("price") or 0)
    stats.allocations[g] += 1
    stats.alloc_kg[g] += kg
    stats.alloc_value[g] += kg * price
    count_allocation_risk(stats.alloc_risk, a.get("risk"))


def record_response(stats: Stats, chunk: list[Planned], r: Any) -> None:
    """Count an HTTP answer for ``chunk`` (4xx/5xx: every order rejected with the problem's reason)."""
    if r.status_code >= 400:
        reason = f"http_{r.status_code}"
        try:
            body = r.json()
            if isinstance(body, dict) and body.get("reason"):
                reason = str(body["reason"])  # a single order rejected by the shard (problem+json)
            elif isinstance(body, dict) and body.get("title"):
                reason = f"http_{r.status_code}:{body['title']}"
        except ValueError:
            pass
        for it in chunk:
            stats.rejects[it.group][reason] += 1
        return
    results = results_of(r.json())
    for i, it in enumerate(chunk):
        record(stats, it, results[i] if i < len(results) else {"status": "MISSING"})
