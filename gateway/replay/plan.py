"""The replay's plan: parties and per-day orders from Agmarknet market rows (pure and seeded).

For each row (one market-day-variety of one commodity):

- an **availability** (SELL) from a seller party at that market: quantity = arrivals (kg), price =
  modal price (paise/kg, = Rs./quintal); located by :mod:`gateway.replay.locations`; quality from
  :mod:`gateway.replay.quality`.
- a **requirement** (BUY) from a buyer (a mill or processor at a real city of that state from
  ``simplemaps_in_cities.csv``): quantity 40-110 % of arrivals, a maximum price uniformly between the
  modal and the max price, quality ranges around the mill's target, a distance limit of 150-600 km,
  intent DIRECT_BUY (85 %) or NEGOTIATE (15 %).

Every random draw uses ``random.Random(f"{seed}:{file}:{line}")``: the same row always yields the same
orders, whatever ``--limit`` or file order. Days are in date order; each day the availabilities go
first (sellers' arrivals of the morning), then the requirements. Client order ids are deterministic,
so a repeated replay against the same server is an idempotent retry.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gateway.replay.locations import City, Location, Locator
from gateway.replay.quality import HVI, ROOT, lot_quality
from persistence.agmarknet import MarketRow, in_date_order, read_file

DEFAULT_FILES = (ROOT / "data" / "agmarknet" / "trinetra_cotton_2025-11_2026-01.csv",)

BUYER_KIND = {
    "cotton": ("Spinning Mills", "Textiles", "Cotton Ginners"),
    "soybean": ("Solvent Extractors", "Soya Foods", "Feed Mills"),
    "mustard": ("Oil Mills", "Expellers", "Edible Oils"),
    "chana": ("Dal Mills", "Pulse Processors", "Besan Mills"),
    "wheat": ("Flour Mills", "Roller Mills", "Foods"),
}
BUYERS_PER_STATE = 3


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
    hvi: Sequence[HVI],
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
        quality, ranges = lot_quality(rng, hvi, row.commodity, row.variety)
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


def load_rows(
    files: Sequence[Path], limit: int | None = None, commodity: str | None = None
) -> tuple[list[MarketRow], list[dict[str, Any]]]:
    """Read all files; return the first ``limit`` rows in date order and per-file reports.

    ``commodity`` is the commodity of files without a Commodity column (single-commodity reports).

    Raises:
        AgmarknetFormatError: a file in an unknown layout (or ``commodity`` is not listed).
        OSError: a file cannot be read.
    """
    rows: list[MarketRow] = []
    reports = []
    for f in files:
        r, rep = read_file(f, default_commodity=commodity)
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
