"""The replay's summary: per (commodity, state) figures as JSON and as a table.

Per group: rows, orders, accepted, allocations, tonnes allocated, fill rate (allocated / required kg),
volume-weighted trade price vs the portal's arrivals-weighted modal price (paise/kg), proposals,
rejects by reason; plus how many rows were located by each rule, and what the risk engine decided
(:mod:`gateway.replay.risk`: PASS / WARN / BLOCK by tier, ML share, model versions, top reasons).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from gateway.replay.plan import Plan
from gateway.replay.risk import allocation_summary, pool_summary, risk_lines
from gateway.replay.stats import Stats


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
