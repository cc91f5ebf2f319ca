"""``tradedesk replay``: drive real Agmarknet market data through the HTTP API as ordinary clients.

For each Agmarknet row (one market-day-variety of one commodity):

- an **availability** (SELL) from a seller party at that market: quantity = arrivals (kg), price =
  modal price (paise/kg, = Rs./quintal); located by :mod:`gateway.locations`. Cotton quality is drawn
  reproducibly from the real HVI distributions of ``data/cotton_quality`` (one whole trial entry, so
  length, micronaire, strength and uniformity keep their joint correlation); the staple length is
  the variety's when its name states one (``Shanker 6 (B) 30mm FIne`` -> 30 mm). Other commodities get
  moisture / foreign matter / oil content drawn from the AGMARK grade ranges below.
- a **requirement** (BUY) from a buyer (a mill or processor at a real city of that state from
  ``simplemaps_in_cities.csv``): quantity 40-110 % of arrivals, a maximum price uniformly between the
  modal and the max price, quality ranges around the mill's target, a distance limit of 150-600 km,
  intent DIRECT_BUY (85 %) or NEGOTIATE (15 %).

Every random draw uses ``random.Random(f"{seed}:{file}:{line}")``: the same row always yields the same
orders, whatever ``--limit`` or file order. Rows are replayed day by day in date order; each day the
availabilities go first (sellers' arrivals of the morning), then the requirements. Parties and API keys
are created through the admin API (``--api-key-file`` holds an admin key; ``tradedesk serve`` writes
it). Orders go per party through the batch endpoint. Client order ids are deterministic, so a repeated
replay against the same server is an idempotent retry.

The summary (per commodity and state): rows, orders, accepted, allocations, tonnes allocated, fill
rate (allocated / required kg), volume-weighted trade price vs the portal's arrivals-weighted modal
price (paise/kg), proposals, rejects by reason; plus how many rows were located by each rule.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gateway.locations import City, Location, Locator, load_cities
from persistence.agmarknet import AgmarknetFormatError, MarketRow, in_date_order, read_file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = (ROOT / "data" / "agmarknet" / "trinetra_cotton_2025-11_2026-01.csv",)
HVI_FILE = ROOT / "data" / "cotton_quality" / "uga_variety_trials_2020-2024_hvi_long.csv"

BUYER_KIND = {
    "cotton": ("Spinning Mills", "Textiles", "Cotton Ginners"),
    "soybean": ("Solvent Extractors", "Soya Foods", "Feed Mills"),
    "mustard": ("Oil Mills", "Expellers", "Edible Oils"),
    "chana": ("Dal Mills", "Pulse Processors", "Besan Mills"),
    "wheat": ("Flour Mills", "Roller Mills", "Foods"),
}
BUYERS_PER_STATE = 3
# AGMARK-style ranges for non-cotton quality draws: (low, high) per parameter, %
OTHER_QUALITY: dict[str, dict[str, tuple[float, float]]] = {
    "soybean": {"moisture_pct": (8.0, 12.0), "foreign_matter_pct": (0.5, 3.0), "oil_pct": (17.0, 21.0)},
    "mustard": {"moisture_pct": (6.0, 9.0), "foreign_matter_pct": (0.5, 3.0), "oil_pct": (35.0, 42.0)},
    "chana": {"moisture_pct": (8.0, 12.0), "foreign_matter_pct": (0.3, 2.0)},
    "wheat": {"moisture_pct": (9.0, 13.0), "foreign_matter_pct": (0.3, 2.0), "protein_pct": (10.0, 13.0)},
}
# what buyers accept for non-cotton parameters
OTHER_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "soybean": {"moisture_pct": (0.0, 12.0), "foreign_matter_pct": (0.0, 3.0), "oil_pct": (17.0, 25.0)},
    "mustard": {"moisture_pct": (0.0, 8.5), "foreign_matter_pct": (0.0, 2.5), "oil_pct": (36.0, 50.0)},
    "chana": {"moisture_pct": (0.0, 12.0), "foreign_matter_pct": (0.0, 2.0)},
    "wheat": {"moisture_pct": (0.0, 12.0), "foreign_matter_pct": (0.0, 2.0), "protein_pct": (10.5, 20.0)},
}
_STAPLE = re.compile(r"(\d{2}(?:\.\d)?)\s*mm", re.I)


# --- data -----------------------------------------------------------------------------------------


def staple_from_variety(variety: str) -> float | None:
    """Staple length (mm) stated in a variety name (``Shanker 6 (B) 30mm FIne`` -> 30.0), else None."""
    m = _STAPLE.search(variety or "")
    if not m:
        return None
    v = float(m.group(1))
    return v if 15.0 <= v <= 40.0 else None


def load_hvi(path: Path = HVI_FILE) -> list[tuple[float, float, float, float]]:
    """HVI entries of the UGA trials: (length_mm, micronaire, strength g/tex, uniformity %) each.

    One entry per (year, irrigation, site, trial, variety) with all four measured, so a draw keeps
    the real correlation between the properties.
    """
    want = {"length_mm": 0, "mic": 1, "strength_gtex": 2, "uniformity": 3}
    acc: dict[tuple[str, str, str, str, str], list[float | None]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            i = want.get(row["resp_var"])
            if i is None:
                continue
            key = (row["year"], row["irrigation"], row["site"], row["trial"], row["variety"])
            try:
                val = float(row["resp_val"])
            except ValueError:
                continue
            acc.setdefault(key, [None, None, None, None])[i] = val
    out = []
    for key in sorted(acc):
        v = acc[key]
        if all(x is not None for x in v):
            out.append((float(v[0] or 0), float(v[1] or 0), float(v[2] or 0), float(v[3] or 0)))
    if not out:
        raise ValueError(f"{path}: no complete HVI entries")
    return out


def _r1(x: float) -> float:
    return round(x, 1)


def cotton_quality(
    rng: random.Random, hvi: Sequence[tuple[float, float, float, float]], variety: str
) -> dict:
    """Measured cotton quality of one lot: HVI entry drawn at random; trash/moisture from kapas ranges."""
    length, mic, strength, unif = hvi[rng.randrange(len(hvi))]
    stated = staple_from_variety(variety)
    return {
        "staple_length_mm": _r1(stated if stated is not None else length),
        "micronaire": _r1(mic),
        "strength_gtex": _r1(strength),
        "uniformity_pct": _r1(unif),
        "trash_pct": _r1(rng.uniform(1.5, 5.0)),
        "moisture_pct": _r1(rng.uniform(6.0, 10.0)),
    }


def cotton_ranges(rng: random.Random, hvi: Sequence[tuple[float, float, float, float]]) -> dict:
    """A mill's accepted ranges: staple around a target drawn from HVI, usual spinning-mill limits."""
    target = round(hvi[rng.randrange(len(hvi))][0])
    return {
        "staple_length_mm": {"min": target - 2.0, "max": target + 3.0},
        "micronaire": {"min": 3.5, "max": 5.0},
        "strength_gtex": {"min": float(rng.choice((26, 27, 28))), "max": 40.0},
        "uniformity_pct": {"min": 79.0, "max": 90.0},
        "trash_pct": {"min": 0.0, "max": float(rng.choice((4, 5, 6)))},
        "moisture_pct": {"min": 0.0, "max": 10.0},
    }


def _slug(text: str, n: int = 24) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:n]
    return s or "x"


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]


@dataclass(slots=True)
class Party:
    """A counterparty to create: id, display name, role (seller/buyer) and where it is."""

    party_id: str
    name: str
    role: str
    region: str
    lat: float
    lon: float
    city: str | None = None


@dataclass(slots=True)
class Planned:
    """One order to send: the party, the JSON body, and the summary group (commodity, state)."""

    party_id: str
    body: dict[str, Any]
    group: tuple[str, str]


@dataclass(slots=True)
class Plan:
    """Parties and the per-day orders of a replay, plus the per-group portal figures."""

    parties: dict[str, Party] = field(default_factory=dict)
    days: list[tuple[date, list[Planned], list[Planned]]] = field(default_factory=list)
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)
    modal_value: Counter[tuple[str, str]] = field(default_factory=Counter)  # sum modal * arrivals_kg
    arrivals_kg: Counter[tuple[str, str]] = field(default_factory=Counter)
    required_kg: Counter[tuple[str, str]] = field(default_factory=Counter)
    located: Counter[str] = field(default_factory=Counter)
    unlocated: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)


def _buyers_for(
    region: str, commodity: str, state: str, cities: dict[str, list[City]], fallback: Location
) -> list[Party]:
    kinds = BUYER_KIND.get(commodity, ("Processors",))
    spots = cities.get(region) or []
    out = []
    for i in range(BUYERS_PER_STATE):
        if spots:
            c = spots[i % len(spots)]
            lat, lon, city = c.lat, c.lon, c.name
        else:  # no listed city in the state: the state's first located market (documented fallback)
            lat, lon, city = fallback.lat, fallback.lon, None
        place = city or state
        pid = f"B-{region}-{commodity[:4]}-{i + 1}"
        out.append(Party(pid, f"{place} {kinds[i % len(kinds)]}", "buyer", region, lat, lon, city))
    return out


def build_plan(
    rows: Sequence[MarketRow],
    locator: Locator,
    cities: dict[str, list[City]],
    hvi: Sequence[tuple[float, float, float, float]],
    seed: int = 7,
) -> Plan:
    """Turn market rows (any order) into parties and per-day orders (date order). Pure and seeded."""
    plan = Plan()
    buyers: dict[tuple[str, str], list[Party]] = {}
    by_day: dict[date, tuple[list[Planned], list[Planned]]] = {}
    for row in in_date_order(rows):
        loc = locator.locate(row.state, row.district, row.market)
        if loc is None:
            plan.unlocated += 1
            continue
        plan.located[loc.method] += 1
        group = (row.commodity, row.state)
        plan.rows[group] += 1
        plan.modal_value[group] += row.modal_price * row.arrivals_kg
        plan.arrivals_kg[group] += row.arrivals_kg
        rng = random.Random(f"{seed}:{Path(row.source).name}:{row.line}")
        sid = f"S-{loc.region}-{_slug(row.market, 20)}-{_short_hash(row.state + row.district + row.market)}"
        if sid not in plan.parties:
            plan.parties[sid] = Party(
                sid,
                f"Sellers at {row.market}, {row.district}",
                "seller",
                loc.region,
                loc.lat,
                loc.lon,
                row.market,
            )
        bkey = (loc.region, row.commodity)
        if bkey not in buyers:
            buyers[bkey] = _buyers_for(loc.region, row.commodity, row.state, cities, loc)
            for b in buyers[bkey]:
                plan.parties.setdefault(b.party_id, b)
        buyer = buyers[bkey][rng.randrange(len(buyers[bkey]))]
        tag = f"{row.commodity[:3]}{row.day:%y%m%d}-{_short_hash(Path(row.source).name)}-{row.line}"
        location = {
            "lat": round(loc.lat, 5),
            "lon": round(loc.lon, 5),
            "region": loc.region,
            "city": row.market[:100],
            "district": row.district[:100],
        }
        if row.commodity == "cotton":
            quality = cotton_quality(rng, hvi, row.variety)
            ranges = cotton_ranges(rng, hvi)
        else:
            quality = {
                k: _r1(rng.uniform(a, b)) for k, (a, b) in OTHER_QUALITY.get(row.commodity, {}).items()
            }
            ranges = {k: {"min": a, "max": b} for k, (a, b) in OTHER_RANGES.get(row.commodity, {}).items()}
        sell = {
            "side": "SELL",
            "client_order_id": f"{tag}-S",
            "commodity": row.commodity,
            "quantity": {"value": row.arrivals_kg / 1000, "unit": "tonne"},
            "price_paise_per_kg": row.modal_price,
            "location": location,
            "quality": quality,
        }
        want_kg = max(100, int(row.arrivals_kg * rng.uniform(0.4, 1.1)))
        price = row.modal_price + int(rng.random() * (row.max_price - row.modal_price + 1))
        price = min(max(price, row.modal_price), row.max_price)
        buy = {
            "side": "BUY",
            "client_order_id": f"{tag}-B",
            "commodity": row.commodity,
            "quantity": {"value": want_kg, "unit": "kg"},
            "max_price_paise_per_kg": price,
            "location": {
                "lat": round(buyer.lat, 5),
                "lon": round(buyer.lon, 5),
                "region": buyer.region,
                **({"city": buyer.city} if buyer.city else {}),
            },
            "quality_ranges": ranges,
            "max_distance_km": float(rng.choice((150, 250, 400, 600))),
            "intent": "NEGOTIATE" if rng.random() < 0.15 else "DIRECT_BUY",
        }
        plan.required_kg[group] += want_kg
        sells, buys = by_day.setdefault(row.day, ([], []))
        sells.append(Planned(sid, sell, group))
        buys.append(Planned(buyer.party_id, buy, group))
    plan.days = [(d, s, b) for d, (s, b) in sorted(by_day.items())]
    return plan


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Endpoints:
    """API paths, discovered from the server's OpenAPI document (defaults when absent)."""

    parties: str = "/v1/admin/parties"
    api_keys: str = "/v1/admin/api-keys"
    sell: str = "/v1/orders/availabilities"
    buy: str = "/v1/orders/requirements"
    batch: str | None = "/v1/orders/batch"

    def single(self, body: dict[str, Any]) -> str:
        """Path for placing one order of ``body["side"]``."""
        return self.sell if body.get("side") == "SELL" else self.buy

    @classmethod
    def discover(cls, openapi: dict[str, Any]) -> Endpoints:
        ep = cls(batch=None)
        posts = [p for p, ops in (openapi.get("paths") or {}).items() if "post" in ops and "{" not in p]
        for p in posts:
            low = p.lower()
            if low.endswith("/parties"):
                ep.parties = p
            elif (
                "key" in low and "admin" in low and low.rstrip("/").endswith(("keys", "api-keys", "api_keys"))
            ):
                ep.api_keys = p
            elif low.endswith("/orders/batch") or low.endswith("/orders:batch"):
                ep.batch = p
            elif low.endswith("/availabilities"):
                ep.sell = p
            elif low.endswith("/requirements"):
                ep.buy = p
        return ep


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


def _results_of(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, list):
        return [r if isinstance(r, dict) else {} for r in payload]
    if isinstance(payload, dict):
        for k in ("results", "orders", "items"):
            if isinstance(payload.get(k), list):
                return [r if isinstance(r, dict) else {} for r in payload[k]]
        return [payload]
    return []


def _record(stats: Stats, item: Planned, res: dict[str, Any]) -> None:
    g = item.group
    status = str(res.get("status", "")).upper()
    if status in {"ACCEPTED", "OK"}:
        stats.accepted[g] += 1
    else:
        stats.rejects[g][str(res.get("reason") or res.get("title") or status or "unknown")] += 1
    for a in res.get("allocations") or []:
        _count_allocation(stats, g, a)
    props = [p for p in res.get("proposals") or [] if isinstance(p, dict) and p.get("proposal_id")]
    stats.proposals[g] += len(props)
    if props and item.body.get("side") == "BUY":
        stats.pending.append((item, props))


def _count_allocation(stats: Stats, g: tuple[str, str], a: dict[str, Any]) -> None:
    aid = str(a.get("allocation_id"))
    if aid in stats.seen_allocations:
        return
    stats.seen_allocations.add(aid)
    kg, price = int(a.get("quantity_kg") or 0), int(a.get("price") or 0)
    stats.allocations[g] += 1
    stats.alloc_kg[g] += kg
    stats.alloc_value[g] += kg * price


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
            stats.negotiation_failures[g][f"accept:{_problem_reason(r)}"] += 1
            continue
        res = (r.json() or {}).get("reservation") or {}
        rid, seller = res.get("reservation_id"), res.get("seller_id") or p.get("seller_id")
        if not rid or seller not in keys:
            stats.negotiation_failures[g]["accept:no_reservation"] += 1
            continue
        stats.accepted_proposals[g] += 1
        r = await client.call("POST", f"/v1/reservations/{rid}/confirm", keys[seller])
        if r.status_code >= 400:
            stats.negotiation_failures[g][f"confirm:{_problem_reason(r)}"] += 1
            continue
        alloc = (r.json() or {}).get("allocation") or {}
        if alloc:
            _count_allocation(stats, g, alloc)
            need -= int(alloc.get("quantity_kg") or 0)


def _problem_reason(r: Any) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"http_{r.status_code}"
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("title") or f"http_{r.status_code}")
    return f"http_{r.status_code}"


class Client:
    """Thin async HTTP client: auth header, retries on 429/5xx/connection errors (honours Retry-After)."""

    def __init__(self, base: str, timeout_s: float = 60.0, concurrency: int = 8) -> None:
        import httpx

        self.http = httpx.AsyncClient(base_url=base.rstrip("/"), timeout=timeout_s)
        self.sem = asyncio.Semaphore(concurrency)
        self.retries = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, token: str, body: Any = None, attempts: int = 8) -> Any:
        """Returns the httpx response of the last attempt."""
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        delay = 0.2
        for i in range(attempts):
            async with self.sem:
                try:
                    resp = await self.http.request(method, path, json=body, headers=headers)
                except httpx.TransportError:
                    if i == attempts - 1:
                        raise
                    resp = None
            # 500 too: the replay's client order ids are deterministic, so a retried order that did go
            # through returns its original result (the shard deduplicates per party and client order id)
            if resp is not None and resp.status_code not in (429, 500, 502, 503, 504):
                return resp
            self.retries += 1
            wait = delay
            if resp is not None:
                with contextlib.suppress(ValueError):
                    wait = max(wait, float(resp.headers.get("retry-after", delay)))
            await asyncio.sleep(min(wait, 5.0))
            delay = min(delay * 2, 5.0)
        return resp


def _key_from(payload: Any) -> str | None:
    if isinstance(payload, dict):
        for k in ("token", "api_key", "key", "secret"):
            v = payload.get(k)
            if isinstance(v, str) and len(v) >= 16:
                return v
    return None


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
        tok = _key_from(r.json())
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
                    _record_response(stats, [it], rr)
                continue
        _record_response(stats, chunk, r)


def _record_response(stats: Stats, chunk: list[Planned], r: Any) -> None:
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
    results = _results_of(r.json())
    for i, it in enumerate(chunk):
        _record(stats, it, results[i] if i < len(results) else {"status": "MISSING"})


async def run_replay(
    plan: Plan,
    base: str,
    admin_token: str,
    *,
    batch_max: int = 200,
    concurrency: int = 32,
    progress: bool = True,
) -> Stats:
    """Create parties and keys, then send the plan's orders day by day. Returns the collected stats."""
    client = Client(base, concurrency=concurrency)
    stats = Stats()
    try:
        r = await client.http.get("/openapi.json")
        ep = Endpoints.discover(r.json()) if r.status_code == 200 else Endpoints()
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
        stats.http_retries = client.retries
    finally:
        await client.close()
    return stats


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="order", desc="replay", disable=not enabled, file=sys.stderr)


# --- summary --------------------------------------------------------------------------------------


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


# --- CLI ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tradedesk replay", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="Agmarknet CSV files (default: the real cotton file)")
    p.add_argument("--gateway", default="http://127.0.0.1:8000", help="gateway base URL")
    p.add_argument(
        "--api-key-file",
        type=Path,
        default=None,
        help="file holding an admin API key (default: <data dir>/admin.key, written by serve)",
    )
    p.add_argument("--limit", type=int, default=None, help="replay only the first N rows in date order")
    p.add_argument("--seed", type=int, default=7, help="seed of the reproducible quality/buyer draws")
    p.add_argument("--batch", type=int, default=200, help="orders per batch request (per party)")
    p.add_argument("--concurrency", type=int, default=32, help="HTTP requests in flight")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def default_key_file() -> Path:
    """``<TRADEDESK_DATA_DIR>/admin.key``: where ``tradedesk serve`` writes the admin key."""
    from actors.settings import Settings

    return Path(Settings().data_dir) / "admin.key"


def load_rows(
    files: Sequence[Path], limit: int | None = None
) -> tuple[list[MarketRow], list[dict[str, Any]]]:
    """Read all files; return the first ``limit`` rows in date order and per-file reports.

    Raises:
        AgmarknetFormatError: a file in an unknown layout.
    """
    rows: list[MarketRow] = []
    reports = []
    for f in files:
        r, rep = read_file(f)
        rows.extend(r)
        reports.append(
            {
                "path": str(f),
                "layout": rep.layout,
                "date_format": rep.date_format,
                "rows": rep.rows,
                "skipped": dict(rep.skipped),
            }
        )
    ordered = list(in_date_order(rows))
    return (ordered[:limit] if limit is not None else ordered), reports


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    files = args.files or list(DEFAULT_FILES)
    try:
        rows, reports = load_rows(files, args.limit)
    except AgmarknetFormatError as exc:
        print(f"tradedesk replay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tradedesk replay: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    key_file = args.api_key_file or default_key_file()
    try:
        admin = key_file.read_text(encoding="utf-8").strip()
    except OSError:
        print(
            f"tradedesk replay: no admin API key at {key_file} (start `tradedesk serve` first, or pass "
            "--api-key-file)",
            file=sys.stderr,
        )
        return 2
    t0 = time.perf_counter()
    plan = build_plan(rows, Locator.load(), load_cities(), load_hvi(), seed=args.seed)
    plan.files = reports
    try:
        stats = asyncio.run(
            run_replay(
                plan,
                args.gateway,
                admin,
                batch_max=args.batch,
                concurrency=args.concurrency,
                progress=not (args.no_progress or args.json),
            )
        )
    except RuntimeError as exc:
        print(f"tradedesk replay: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tradedesk replay: cannot reach {args.gateway}: {exc}", file=sys.stderr)
        return 1
    summary = summarize(plan, stats, time.perf_counter() - t0)
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
