"""The replay loop: create parties and keys, send each day's orders, let NEGOTIATE buyers accept;
then, with a :class:`SeasonSetup`, play the season after the match (:mod:`gateway.replay.season`)."""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from gateway.replay.behaviour import Behaviour
from gateway.replay.client import Client, Endpoints, key_from, problem_reason
from gateway.replay.plan import Party, Plan, Planned
from gateway.replay.quality import HVI
from gateway.replay.risk import pool_snapshot
from gateway.replay.stats import SeasonStats, Stats, count_allocation, record_response


@dataclass(frozen=True, slots=True)
class SeasonSetup:
    """What the season after the match draws from: the HVI trial entries (delivered quality), the
    UCI payment behaviours and the seed."""

    hvi: list[HVI]
    behaviours: list[Behaviour]
    seed: int


async def _negotiate(
    client: Client, keys: dict[str, str], item: Planned, proposals: list[dict[str, Any]], stats: Stats
) -> None:
    """A NEGOTIATE requirement's buyer accepts proposals best-first until its quantity is covered; the
    seller of each reservation confirms it, which makes it an allocation."""
    need = int(item.body["quantity"]["value"])  # the replay states requirement quantities in kg
    g = item.group
    for p in proposals:
        if need <= 0:
            break
        qty = min(int(p.get("quantity_kg") or 0), need)
        if qty <= 0:
            continue
        r = await client.call(
            "POST",
            f"/v1/proposals/{p['proposal_id']}/accept",
            keys[item.party_id],
            {"quantity": {"value": qty}},
        )
        if r.status_code >= 400:
            stats.negotiation_failures[g][f"accept:{problem_reason(r)}"] += 1
            continue
        res = (r.json() or {}).get("reservation") or {}
        rid, seller = res.get("reservation_id"), res.get("seller_id") or p.get("seller_id")
        if not rid or seller not in keys:
            stats.negotiation_failures[g]["accept:no_reservation"] += 1
            continue
        stats.accepted_proposals[g] += 1
        r = await client.call("POST", f"/v1/reservations/{rid}/confirm", keys[seller])
        if r.status_code >= 400:
            stats.negotiation_failures[g][f"confirm:{problem_reason(r)}"] += 1
            continue
        alloc = (r.json() or {}).get("allocation") or {}
        if alloc:
            count_allocation(stats, g, alloc)
            need -= int(alloc.get("quantity_kg") or 0)


async def _create_parties(client: Client, ep: Endpoints, admin: str, plan: Plan) -> dict[str, str]:
    """Create every party (409 = exists, fine) and one API key each; returns party_id -> token."""

    async def one(p: Party) -> tuple[str, str]:
        body = {
            "party_id": p.party_id,
            "name": p.name[:200],
            "role": p.role,
            "kyc_status": "VERIFIED",
            "country": "IN",
            "credit_limit_paise": 10**14,
        }
        r = await client.call("POST", ep.parties, admin, body)
        if r.status_code not in (200, 201, 409):
            raise RuntimeError(f"creating party {p.party_id}: HTTP {r.status_code} {r.text[:300]}")
        r = await client.call(
            "POST", ep.api_keys, admin, {"party_id": p.party_id, "roles": [p.role], "label": "replay"}
        )
        if r.status_code not in (200, 201):
            raise RuntimeError(f"issuing key for {p.party_id}: HTTP {r.status_code} {r.text[:300]}")
        tok = key_from(r.json())
        if tok is None:
            raise RuntimeError(f"issuing key for {p.party_id}: no token in the answer")
        return p.party_id, tok

    pairs = await asyncio.gather(*(one(p) for p in plan.parties.values()))
    return dict(pairs)


async def _send(
    client: Client, ep: Endpoints, token: str, items: list[Planned], stats: Stats, batch_max: int
) -> None:
    for g in (it.group for it in items):
        stats.orders[g] += 1
    for start in range(0, len(items), batch_max):
        chunk = items[start : start + batch_max]
        if ep.batch and len(chunk) > 1:
            r = await client.call("POST", ep.batch, token, {"orders": [it.body for it in chunk]})
        else:
            r = await client.call("POST", ep.single(chunk[0].body), token, chunk[0].body)
            if len(chunk) > 1:  # no batch endpoint: one by one
                rs = [r] + [await client.call("POST", ep.single(it.body), token, it.body) for it in chunk[1:]]
                for it, rr in zip(chunk, rs, strict=True):
                    record_response(stats, [it], rr)
                continue
        record_response(stats, chunk, r)


async def run_replay(
    plan: Plan,
    base: str,
    admin_token: str,
    *,
    batch_max: int = 200,
    concurrency: int = 32,
    progress: bool = True,
    season: SeasonSetup | None = None,
) -> tuple[Stats, SeasonStats | None]:
    """Create parties and keys, then send the plan's orders day by day; then the season when
    ``season`` is given. Returns the collected stats (and the season's, or None)."""
    client = Client(base, concurrency=concurrency)
    stats = Stats()
    played: SeasonStats | None = None
    try:
        r = await client.call("GET", "/openapi.json", None)
        ep = Endpoints.discover(r.json()) if r.status_code == 200 else Endpoints()
        stats.pool_before = await pool_snapshot(client, admin_token)
        keys = await _create_parties(client, ep, admin_token, plan)
        total = sum(len(s) + len(b) for _, s, b in plan.days)
        bar = _progress(total, progress)
        try:
            for day, sells, buys in plan.days:
                for side in (sells, buys):
                    per_party: dict[str, list[Planned]] = defaultdict(list)
                    for it in side:
                        per_party[it.party_id].append(it)
                    await asyncio.gather(
                        *(
                            _send(client, ep, keys[p], items, stats, batch_max)
                            for p, items in per_party.items()
                        )
                    )
                    bar.update(len(side))
                pending, stats.pending = stats.pending, []
                await asyncio.gather(*(_negotiate(client, keys, it, props, stats) for it, props in pending))
                bar.set_postfix_str(f"{day:%d %b %Y}")
        finally:
            bar.close()
        if season is not None:
            from gateway.replay.season import Season

            s = Season(client, keys, admin_token, season.hvi, season.behaviours, season.seed)
            played = await s.run(stats.trades, progress)
        stats.http_retries = client.retries
        stats.pool_after = await pool_snapshot(client, admin_token)
    finally:
        await client.close()
    return stats, played


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="order", desc="replay", disable=not enabled, file=sys.stderr)
