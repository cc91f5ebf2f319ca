"""What the replay counts from the API's answers, per (commodity, state) group, and what the season
after the match counts (:class:`SeasonStats`: contracts, deliveries, invoices, payments, ledger)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from gateway.replay.plan import Planned
from gateway.replay.risk import count_allocation_risk


@dataclass(frozen=True, slots=True)
class Trade:
    """One allocation of the replay: parties, kg, price paise/kg, epoch ms, the seller's offered
    lot quality and the summary group."""

    allocation_id: str
    buyer_id: str
    seller_id: str
    quantity_kg: int
    price: int
    ts: int
    quality: dict[str, float]
    group: tuple[str, str]


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
    trades: list[Trade] = field(default_factory=list)
    order_party: dict[str, str] = field(default_factory=dict)  # order id -> party id
    lot_quality: dict[str, dict[str, float]] = field(default_factory=dict)  # sell order id -> quality


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
    if res.get("order_id"):
        stats.order_party[str(res["order_id"])] = item.party_id
        if item.body.get("side") == "SELL":
            stats.lot_quality[str(res["order_id"])] = dict(item.body.get("quality") or {})
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
    sell, buy = str(a.get("sell_order_id")), str(a.get("buy_order_id"))
    buyer = a.get("buyer_id") or stats.order_party.get(buy)
    seller = a.get("seller_id") or stats.order_party.get(sell)
    if buyer and seller:
        quality = stats.lot_quality.get(sell, {})
        stats.trades.append(Trade(aid, buyer, seller, kg, price, int(a.get("ts") or 0), quality, g))
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


@dataclass(slots=True)
class SeasonStats:
    """What the season after the match did and ended with. Money paise, kg, epoch ms."""

    contracts: int = 0
    not_delivered: int = 0
    deliveries: int = 0
    delivered_kg: int = 0
    settled_kg: int = 0
    refused_kg: int = 0
    adjustments: Counter[str] = field(default_factory=Counter)  # parameter -> count
    adjustment_paise: int = 0  # sum of paise/kg x settled kg (negative: discounts)
    invoices: int = 0
    invoiced_paise: int = 0
    payments: int = 0
    paid_paise: int = 0
    planned_defaults: int = 0
    sweeps: int = 0
    first_ts: int = 0
    end_ts: int = 0
    last_ts: int = 0
    invoice_status: Counter[str] = field(default_factory=Counter)
    went_overdue: int = 0  # invoices a sweep declared OVERDUE at some point of the season
    went_overdue_paise: int = 0  # their amounts
    paise_days: int = 0  # sum over invoices of amount x days outstanding (issue -> paid / season end)
    outstanding_by_status: Counter[str] = field(default_factory=Counter)
    final_invoiced: int = 0
    final_paid: int = 0
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def record_delivery(self, d: dict[str, Any]) -> None:
        """Count a delivery answer: kg, quality adjustments (count per parameter, paise), its invoice."""
        self.deliveries += 1
        settled = int(d.get("settled_kg") or 0)
        self.delivered_kg += int(d.get("delivered_kg") or 0)
        self.settled_kg += settled
        self.refused_kg += int(d.get("refused_kg") or 0)
        for adj in d.get("adjustments") or []:
            self.adjustments[str(adj.get("parameter"))] += 1
            self.adjustment_paise += int(adj.get("paise_per_kg") or 0) * settled
        inv = d.get("invoice") or {}
        if inv.get("invoice_id"):
            self.invoices += 1
            self.invoiced_paise += int(inv.get("amount") or 0)

    def record_invoice(self, inv: dict[str, Any]) -> None:
        """Count one invoice's final state (status, amount, paid, outstanding)."""
        status = str(inv.get("status") or "UNKNOWN")
        self.invoice_status[status] += 1
        amount, issued = int(inv.get("amount") or 0), int(inv.get("issued_at") or 0)
        if inv.get("overdue_at") is not None:
            self.went_overdue += 1
            self.went_overdue_paise += amount
        paid_at = inv.get("paid_at")
        closed = int(paid_at) if paid_at is not None else self.end_ts
        if issued:
            self.paise_days += amount * max(0, closed - issued) // 86_400_000
        self.outstanding_by_status[status] += int(inv.get("outstanding") or 0)
        self.final_invoiced += int(inv.get("amount") or 0)
        self.final_paid += int(inv.get("paid") or 0)

    def record_balances(self, party_id: str, doc: dict[str, Any]) -> None:
        """Keep a buyer's ledger balances answer (exposure and limit are read from it)."""
        self.balances[party_id] = doc
