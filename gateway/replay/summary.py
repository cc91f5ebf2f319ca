"""The replay's summary: per (commodity, state) figures as JSON and as a table.

Per group: rows, orders, accepted, allocations, tonnes allocated, fill rate (allocated / required kg),
volume-weighted trade price vs the portal's arrivals-weighted modal price (paise/kg), proposals,
rejects by reason; plus how many rows were located by each rule, and what the risk engine decided
(:mod:`gateway.replay.risk`: PASS / WARN / BLOCK by tier, ML share, model versions, top reasons).

The season after the match (:func:`summarize_season`): contracts, delivered tonnes, quality
adjustments (count per parameter and their total in paise), invoiced, paid, overdue and defaulted
(count and paise at the end), days sales outstanding and the buyers' exposure against their limits
at the end. Two receivable-days figures: ``dso_days``, the amount-weighted mean of days each invoice
stayed outstanding (issue to full payment, or to the season's end when never fully paid: the
collection period of the season's sales), and ``dso_end_days``, the textbook period-end form
(receivables at the end / invoiced x the season's days), which is near 0 once a season is collected.
"Overdue" counts the invoices a sweep declared OVERDUE during the season (at the end every invoice
is paid or DEFAULTED, the last sweep running past the grace period).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from gateway.replay.plan import Plan
from gateway.replay.risk import allocation_summary, pool_summary, risk_lines
from gateway.replay.stats import SeasonStats, Stats

DAY_MS = 86_400_000


def summarize(plan: Plan, stats: Stats, wall_s: float) -> dict[str, Any]:
    """JSON-ready summary: per (commodity, state) rows and totals. Prices paise/kg, tonnes = kg / 1000."""
    groups = []
    for g in sorted(plan.rows):
        akg, req = stats.alloc_kg[g], plan.required_kg[g]
        vwap = stats.alloc_value[g] / akg if akg else None
        modal = plan.modal_value[g] / plan.arrivals_kg[g] if plan.arrivals_kg[g] else None
        groups.append(
            {
                "commodity": g[0],
                "state": g[1],
                "rows": plan.rows[g],
                "orders": stats.orders[g],
                "accepted": stats.accepted[g],
                "allocations": stats.allocations[g],
                "tonnes_allocated": round(akg / 1000, 3),
                "tonnes_required": round(req / 1000, 3),
                "fill_rate": round(akg / req, 4) if req else None,
                "vwap_paise_per_kg": round(vwap, 1) if vwap is not None else None,
                "portal_modal_paise_per_kg": round(modal, 1) if modal is not None else None,
                "vwap_vs_modal_pct": round(100 * (vwap - modal) / modal, 2) if vwap and modal else None,
                "proposals": stats.proposals[g],
                "proposals_accepted": stats.accepted_proposals[g],
                "negotiation_failures": dict(stats.negotiation_failures[g].most_common()),
                "rejects": dict(stats.rejects[g].most_common()),
            }
        )
    tot_kg = sum(stats.alloc_kg.values())
    tot_req = sum(plan.required_kg.values())
    return {
        "files": plan.files,
        "rows": sum(plan.rows.values()),
        "unlocated_rows": plan.unlocated,
        "location_method_rows": dict(plan.located),
        "parties": len(plan.parties),
        "orders": sum(stats.orders.values()),
        "accepted": sum(stats.accepted.values()),
        "allocations": sum(stats.allocations.values()),
        "tonnes_allocated": round(tot_kg / 1000, 3),
        "fill_rate": round(tot_kg / tot_req, 4) if tot_req else None,
        "rejects": dict(sum((c for c in stats.rejects.values()), Counter()).most_common()),
        "proposals": sum(stats.proposals.values()),
        "proposals_accepted": sum(stats.accepted_proposals.values()),
        "negotiation_failures": dict(
            sum((c for c in stats.negotiation_failures.values()), Counter()).most_common()
        ),
        "http_retries": stats.http_retries,
        "wall_s": round(wall_s, 2),
        "orders_per_s": round(sum(stats.orders.values()) / wall_s, 1) if wall_s > 0 else None,
        "risk": {
            "pool": pool_summary(stats.pool_before, stats.pool_after),
            "allocations": allocation_summary(stats.alloc_risk),
        },
        "groups": groups,
    }


def print_summary(summary: dict[str, Any]) -> None:
    """Rich table of the summary on stdout."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="tradedesk replay: real Agmarknet data through the HTTP API")
    for col in (
        "commodity",
        "state",
        "rows",
        "orders",
        "alloc",
        "t alloc",
        "fill",
        "VWAP p/kg",
        "modal p/kg",
        "vs modal",
        "prop",
        "rejects",
    ):
        t.add_column(col, justify="left" if col in ("commodity", "state", "rejects") else "right")
    for g in summary["groups"]:
        rej = ", ".join(f"{k} {v}" for k, v in list(g["rejects"].items())[:3])
        t.add_row(
            g["commodity"],
            g["state"],
            str(g["rows"]),
            str(g["orders"]),
            str(g["allocations"]),
            f"{g['tonnes_allocated']:,.1f}",
            f"{(g['fill_rate'] or 0) * 100:.1f}%",
            f"{g['vwap_paise_per_kg']:,.0f}" if g["vwap_paise_per_kg"] else "-",
            f"{g['portal_modal_paise_per_kg']:,.0f}" if g["portal_modal_paise_per_kg"] else "-",
            f"{g['vwap_vs_modal_pct']:+.2f}%" if g["vwap_vs_modal_pct"] is not None else "-",
            str(g["proposals"]),
            rej or "-",
        )
    con = Console(width=None if sys.stdout.isatty() else 160)
    con.print(t)
    lm = summary["location_method_rows"]
    con.print(
        f"rows {summary['rows']} (unlocated {summary['unlocated_rows']}); located by market name "
        f"{lm.get('market', 0)}, mandi list {lm.get('mandi_list', 0)}, district {lm.get('district', 0)}, "
        f"state fallback {lm.get('state', 0)}"
    )
    con.print(
        f"orders {summary['orders']}, accepted {summary['accepted']}, allocations {summary['allocations']}, "
        f"{summary['tonnes_allocated']:,.1f} t allocated, fill {(summary['fill_rate'] or 0) * 100:.1f}%, "
        f"{summary['wall_s']} s ({summary['orders_per_s']} orders/s), HTTP retries {summary['http_retries']}"
    )
    con.print(
        f"NEGOTIATE: {summary['proposals']} proposals, {summary['proposals_accepted']} accepted by the buyer "
        f"(then confirmed by the seller); failures {summary['negotiation_failures'] or 'none'}"
    )
    for line in risk_lines(summary.get("risk") or {}):
        con.print(line, markup=False)


def _num(doc: Any, *keys: str) -> int | None:
    """The first integer found under ``keys`` in ``doc`` (a value, or a dict with ``balance``)."""
    if not isinstance(doc, dict):
        return None
    for k in keys:
        v = doc.get(k)
        if isinstance(v, dict):
            v = v.get("balance", v.get("amount"))
        if isinstance(v, int | float) and not isinstance(v, bool):
            return int(v)
    return None


def exposure_of(doc: dict[str, Any]) -> tuple[int | None, int | None]:
    """(exposure, credit limit) in paise from a ``GET /v1/ledger/balances`` answer, None when absent."""
    return _num(doc, "exposure", "credit_exposure"), _num(doc, "credit_limit", "limit")


def summarize_season(s: SeasonStats) -> dict[str, Any]:
    """JSON-ready figures of the season (money paise, tonnes = kg / 1000, days)."""
    days = (s.end_ts - s.first_ts) / DAY_MS if s.end_ts > s.first_ts else 0.0
    receivable = sum(s.outstanding_by_status.values())
    invoiced = s.final_invoiced or s.invoiced_paise
    exposures: list[dict[str, Any]] = []
    ratios: list[float] = []
    total: int | None = None
    for party, doc in sorted(s.balances.items()):
        exp, limit = exposure_of(doc)
        exposures.append({"party_id": party, "exposure_paise": exp, "credit_limit_paise": limit})
        if exp is not None:
            total = (total or 0) + exp
            if limit:
                ratios.append(exp / limit)
    return {
        "contracts": s.contracts,
        "not_delivered": s.not_delivered,
        "deliveries": s.deliveries,
        "tonnes_delivered": round(s.delivered_kg / 1000, 3),
        "tonnes_settled": round(s.settled_kg / 1000, 3),
        "quality_adjustments": sum(s.adjustments.values()),
        "quality_adjustments_by_parameter": dict(s.adjustments.most_common()),
        "quality_adjustment_paise": s.adjustment_paise,
        "invoices": s.invoices,
        "invoiced_paise": invoiced,
        "payments": s.payments,
        "paid_paise": s.final_paid or s.paid_paise,
        "invoice_status": dict(s.invoice_status.most_common()),
        "overdue_invoices": s.went_overdue,
        "overdue_invoice_paise": s.went_overdue_paise,
        "overdue_at_end_paise": s.outstanding_by_status.get("OVERDUE", 0),
        "defaulted_invoices": s.invoice_status.get("DEFAULTED", 0),
        "defaulted_paise": s.outstanding_by_status.get("DEFAULTED", 0),
        "receivables_paise": receivable,
        "season_days": round(days, 1),
        "dso_days": round(s.paise_days / invoiced, 1) if invoiced else None,
        "dso_end_days": round(receivable / invoiced * days, 1) if invoiced and days else None,
        "sweeps": s.sweeps,
        "exposure_paise_total": total,
        "exposure_max_utilisation": max(ratios, default=None),
        "exposures": exposures,
        "errors": dict(s.errors.most_common()),
    }


def print_season(season: dict[str, Any]) -> None:
    """The season's figures as a few lines on stdout."""
    from rich.console import Console

    con = Console(width=None if sys.stdout.isatty() else 160)

    def rs(paise: int | None) -> str:
        return "-" if paise is None else f"Rs {paise / 100:,.2f}"

    s = season
    con.print(
        f"season: {s['contracts']} contracts, {s['deliveries']} delivered ({s['tonnes_delivered']:,.1f} t,"
        f" {s['tonnes_settled']:,.1f} t settled), {s['not_delivered']} not delivered;"
        f" {s['season_days']} days, {s['sweeps']} sweeps"
    )
    by = ", ".join(f"{k} {v}" for k, v in s["quality_adjustments_by_parameter"].items()) or "none"
    con.print(f"quality adjustments: {s['quality_adjustments']} ({by}), {rs(s['quality_adjustment_paise'])}")
    con.print(
        f"invoiced {s['invoices']} for {rs(s['invoiced_paise'])}; paid {rs(s['paid_paise'])} in"
        f" {s['payments']} payments; went overdue {s['overdue_invoices']} ({rs(s['overdue_invoice_paise'])});"
        f" defaulted {s['defaulted_invoices']} ({rs(s['defaulted_paise'])} outstanding); DSO {s['dso_days']}"
        f" days (period-end {s['dso_end_days']})"
    )
    util = s["exposure_max_utilisation"]
    con.print(
        f"exposure at the end: {rs(s['exposure_paise_total'])} over {len(s['exposures'])} buyers;"
        f" highest use of a credit limit {'-' if util is None else f'{util:.1%}'}"
        + (f"; errors {s['errors']}" if s["errors"] else "")
    )
