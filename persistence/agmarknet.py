"""The one reader of Agmarknet mandi price/arrival CSV files (no I/O except reading the given files).

Layouts of the same portal that are recognised:

- ``trinetra``: the data.gov.in/Agmarknet export shipped in ``data/agmarknet`` (header first; columns
  State, District, Market, Commodity, Variety, Grade, Min/Max/Modal Price, Price Unit, Arrival Quantity,
  Arrival Unit, Arrival Date; numbers quoted with thousands commas; dates dd-mm-yyyy).
- ``portal-report``: the agmarknet.gov.in "Price and Arrivals" report saved as CSV: one or more title
  lines first, then a header with other names (``Sl no.``, ``District Name``, ``Market Name``,
  ``Min Price (Rs./Quintal)``, ``Arrivals (Tonnes)``, ``Price Date`` / ``Reported Date``), dates such as
  ``07 Nov 2025``. A state column may be missing: the state is then taken from the title line
  ("... of Cotton in Gujarat ...") or refused. A state's single-commodity report (e.g. "Both Price
  And Arrival" for cotton) has no Commodity column: the caller names the commodity
  (``default_commodity``, ``tradedesk replay --commodity cotton``), otherwise it is refused.
- ``ogd-api``: the data.gov.in API CSV (``Arrival_Date`` dd/mm/yyyy, ``Min_x0020_Price``...).

Anything else is refused with :class:`AgmarknetFormatError` naming the columns that were found and
the ones that are missing. Rows with unusable values (no price, zero arrivals, bad date) are
skipped and counted by reason in :class:`ReadReport`.

Units out: prices are integer **paise/kg** (1 Rs./Quintal = 1 paise/kg), arrivals integer **kg**
(Metric Tonnes x 1000; Quintal x 100), dates :class:`datetime.date`.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from actors.core.commodities import COMMODITIES, canonical_commodity
from actors.core.regions import region_for_state
from actors.core.risk.market import PricePoint


class AgmarknetFormatError(ValueError):
    """The file is not an Agmarknet layout this reader understands."""


@dataclass(frozen=True, slots=True)
class MarketRow:
    """One market-day of one commodity variety.

    Prices: integer paise/kg. ``arrivals_kg``: integer kg. ``line``: 1-based line number in the file.
    """

    state: str
    district: str
    market: str
    commodity: str
    commodity_raw: str
    variety: str
    grade: str
    min_price: int
    max_price: int
    modal_price: int
    arrivals_kg: int
    day: date
    line: int
    source: str = ""


@dataclass(slots=True)
class ReadReport:
    """What reading a file found: layout, rows kept, rows skipped by reason."""

    path: str
    layout: str
    date_format: str
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


# canonical field -> accepted header names (normalised: lower case, alphanumerics only)
_ALIASES: dict[str, tuple[str, ...]] = {
    "state": ("state", "statename", "state_name"),
    "district": ("district", "districtname"),
    "market": ("market", "marketname", "mandi", "mandiname", "apmc"),
    "commodity": ("commodity", "commodityname"),
    "variety": ("variety",),
    "grade": ("grade",),
    "min_price": ("minprice", "minprice(rs./quintal)", "minx0020price", "minimumprice"),
    "max_price": ("maxprice", "maxprice(rs./quintal)", "maxx0020price", "maximumprice"),
    "modal_price": ("modalprice", "modalprice(rs./quintal)", "modalx0020price"),
    "price_unit": ("priceunit",),
    "arrivals": (
        "arrivalquantity",
        "arrivals",
        "arrivals(tonnes)",
        "arrival",
        "arrivalstonnes",
        "arrivalqty",
    ),
    "arrival_unit": ("arrivalunit",),
    "date": ("arrivaldate", "pricedate", "reporteddate", "date", "arrivalx0020date"),
}
_REQUIRED = ("district", "market", "commodity", "min_price", "max_price", "modal_price", "arrivals", "date")
# how the refusal names a missing column (the portal's own header names)
_COLUMN_NAMES = {
    "district": "District",
    "market": "Market",
    "commodity": "Commodity",
    "min_price": "Min Price",
    "max_price": "Max Price",
    "modal_price": "Modal Price",
    "arrivals": "Arrival Quantity / Arrivals (Tonnes)",
    "date": "Arrival Date / Price Date",
}
EXPECTED_LAYOUT = (
    "expected an Agmarknet price-and-arrivals CSV: optional title lines, then a header with District, "
    "Market, Commodity, Variety, Min/Max/Modal Price (Rs./Quintal), Arrival Quantity or Arrivals "
    "(Tonnes) and Arrival Date or Price Date (a State column, or the state named in the title)"
)
_DATE_FORMATS = ("%d-%m-%Y", "%d/%m/%Y", "%Y-%m-%d", "%d %b %Y", "%d-%b-%Y", "%d %B %Y", "%d-%b-%y")
_KG_PER_ARRIVAL_UNIT = {
    "metrictonnes": 1000,
    "tonnes": 1000,
    "tonne": 1000,
    "mt": 1000,
    "quintal": 100,
    "kg": 1,
}
_TITLE_STATE = re.compile(r"\bin\s+([A-Za-z &]+?)(?:\s+(?:from|on|for|during|between)\b|[,.;]|$)", re.I)


def portal_commodity(name: str) -> str | None:
    """Registry commodity for an Agmarknet commodity name (``Bengal Gram Dal(Chana Dal)`` -> chana).

    The name, each part in brackets and the name without them are looked up in the commodity
    registry (:mod:`actors.core.commodities`, the one alias table); None when none is listed.
    """
    parts = [name] + re.findall(r"\(([^)]*)\)", name) + [re.sub(r"\(.*?\)", "", name)]
    for part in parts:
        canon = canonical_commodity(part)
        if canon:
            return canon
    return None


def _norm(name: str) -> str:
    n = name.strip().lower().replace(" ", "").replace("_", "")
    return re.sub(r"[^a-z0-9()./]", "", n)


def _match_header(cells: list[str]) -> dict[str, int]:
    """Map canonical field -> column index for a candidate header row."""
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        n = _norm(cell)
        if not n:
            continue
        bare = re.sub(r"\(.*\)", "", n)
        for canon, names in _ALIASES.items():
            if canon in found:
                continue
            if n in names or bare in names or n.replace("(", "").replace(")", "") in names:
                found[canon] = i
                break
    return found


def parse_number(text: str) -> Decimal | None:
    """``"7,700.00"`` -> Decimal("7700.00"); blank, ``NA`` or ``-`` -> None."""
    t = (text or "").strip().replace(",", "").replace("\u00a0", "")
    if t in {"", "-", "NA", "N/A", "na", "nan", "NR"}:
        return None
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _to_int(d: Decimal) -> int:
    return int(d.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def detect_date_format(values: Iterable[str]) -> str:
    """The first format in which every non-empty value parses.

    Raises:
        AgmarknetFormatError: no known format fits all values (the message shows an example).
    """
    vals = [v.strip() for v in values if v and v.strip()]
    if not vals:
        raise AgmarknetFormatError("no dates in the file")
    for fmt in _DATE_FORMATS:
        try:
            for v in vals:
                datetime.strptime(v, fmt)
        except ValueError:
            continue
        return fmt
    raise AgmarknetFormatError(
        f"dates such as {vals[0]!r} are in no known format (expected dd-mm-yyyy, dd/mm/yyyy, yyyy-mm-dd "
        "or '07 Nov 2025')"
    )


def _layout_name(cols: dict[str, int], header: list[str], title_lines: int) -> str:
    norm = {_norm(h) for h in header}
    if any("x0020" in n for n in norm):
        return "ogd-api"
    if title_lines or "slno." in norm or "slno" in norm or "districtname" in norm:
        return "portal-report"
    return "trinetra"


def _find_header(lines: list[list[str]], source: str) -> tuple[int, dict[str, int]]:
    """(index of the header line, canonical field -> column) among the first 20 lines.

    Raises:
        AgmarknetFormatError: no line names at least a market and a modal price column.
    """
    best: dict[str, int] = {}
    for i, cells in enumerate(lines[:20]):
        cand = _match_header(cells)
        if len(cand) > len(best):
            best = cand
        if all(k in cand for k in ("market", "modal_price")):
            return i, cand
    raise AgmarknetFormatError(
        f"{source}: no Agmarknet header in the first 20 lines (closest match had columns "
        f"{', '.join(sorted(best)) or 'none known'}); {EXPECTED_LAYOUT}"
    )


def _check_columns(cols: dict[str, int], header: list[str], source: str, default: bool) -> None:
    """Raise :class:`AgmarknetFormatError` naming the required columns the header lacks."""
    missing = [k for k in _REQUIRED if k not in cols and not (k == "commodity" and default)]
    if not missing:
        return
    hint = ""
    if missing == ["commodity"]:
        hint = "; a single-commodity report: say which commodity it is (tradedesk replay --commodity NAME)"
    found = ", ".join(c.strip() for c in header if c.strip())
    raise AgmarknetFormatError(
        f"{source}: lacks columns {', '.join(_COLUMN_NAMES[k] for k in missing)} (found: {found})"
        f"{hint}; {EXPECTED_LAYOUT}"
    )


def read_text(
    text: str, source: str = "<text>", default_commodity: str | None = None
) -> tuple[list[MarketRow], ReadReport]:
    """Parse one Agmarknet CSV given as text. See :func:`read_file`."""
    default = None
    if default_commodity is not None:
        default = canonical_commodity(default_commodity)
        if default is None:
            raise AgmarknetFormatError(
                f"unknown commodity {default_commodity!r} (listed: {', '.join(COMMODITIES)})"
            )
    lines = list(csv.reader(io.StringIO(text)))
    header_at, cols = _find_header(lines, source)
    header = lines[header_at]
    title = " ".join(" ".join(c for c in row if c) for row in lines[:header_at])
    _check_columns(cols, header, source, default is not None)
    state_from_title = None
    if "state" not in cols:
        m = _TITLE_STATE.search(title)
        if not m:
            raise AgmarknetFormatError(
                f"{source}: no State column and no state named in the title line {title[:120]!r}"
            )
        state_from_title = m.group(1).strip().title()
    body = [r for r in lines[header_at + 1 :] if any(c.strip() for c in r)]
    date_idx = cols["date"]
    fmt = detect_date_format(r[date_idx] for r in body if len(r) > date_idx)
    layout = _layout_name(cols, header, header_at)
    report = ReadReport(path=source, layout=layout, date_format=fmt)
    unit_idx = cols.get("arrival_unit")
    price_unit_idx = cols.get("price_unit")
    header_unit = "metrictonnes"
    arr_header = _norm(header[cols["arrivals"]])
    if "quintal" in arr_header:
        header_unit = "quintal"
    out: list[MarketRow] = []
    width = len(header)
    for n, r in enumerate(lines[header_at + 1 :], start=header_at + 2):
        if not any(c.strip() for c in r):
            continue
        if len(r) < width:
            r = r + [""] * (width - len(r))

        def cell(key: str, r: list[str] = r) -> str:
            idx = cols.get(key)
            return r[idx].strip() if idx is not None else ""

        commodity_raw = cell("commodity")
        canon = portal_commodity(commodity_raw) if commodity_raw else default
        if canon is None:
            report.skipped["unknown_commodity"] += 1
            continue
        if price_unit_idx is not None and cell("price_unit") and _norm(cell("price_unit")) != "rs./quintal":
            report.skipped["price_unit"] += 1
            continue
        pmin, pmax, pmodal = parse_number(cell("min_price")), parse_number(cell("max_price")), None
        pmodal = parse_number(cell("modal_price"))
        if pmodal is None or pmodal <= 0:
            report.skipped["no_modal_price"] += 1
            continue
        pmin = pmin if pmin is not None and pmin > 0 else pmodal
        pmax = pmax if pmax is not None and pmax > 0 else pmodal
        arr = parse_number(cell("arrivals"))
        unit = _norm(cell("arrival_unit")) if unit_idx is not None and cell("arrival_unit") else header_unit
        factor = _KG_PER_ARRIVAL_UNIT.get(unit)
        if factor is None:
            report.skipped["arrival_unit"] += 1
            continue
        if arr is None or arr <= 0:
            report.skipped["no_arrivals"] += 1
            continue
        try:
            day = datetime.strptime(cell("date"), fmt).date()
        except ValueError:
            report.skipped["bad_date"] += 1
            continue
        lo, hi = min(pmin, pmodal, pmax), max(pmin, pmodal, pmax)
        out.append(
            MarketRow(
                state=cell("state") or (state_from_title or ""),
                district=cell("district"),
                market=cell("market"),
                commodity=canon,
                commodity_raw=commodity_raw,
                variety=cell("variety"),
                grade=cell("grade"),
                min_price=_to_int(lo),
                max_price=_to_int(hi),
                modal_price=_to_int(pmodal),
                arrivals_kg=_to_int(arr * factor),
                day=day,
                line=n,
                source=source,
            )
        )
    report.rows = len(out)
    return out, report


def read_file(path: str | Path, default_commodity: str | None = None) -> tuple[list[MarketRow], ReadReport]:
    """Read an Agmarknet CSV file (UTF-8, BOM tolerated) in any recognised layout.

    ``default_commodity`` (a registry name or alias) is the commodity of rows without one: a
    single-commodity portal report has no Commodity column. Without it such a file is refused.

    Returns:
        (rows in file order, report).

    Raises:
        AgmarknetFormatError: the layout is not recognised (one line: the columns found, the ones
            missing and the expected layout), or ``default_commodity`` is not a listed commodity.
        OSError: the file cannot be read.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    return read_text(text, source=str(p), default_commodity=default_commodity)


def in_date_order(rows: Iterable[MarketRow]) -> Iterator[MarketRow]:
    """Rows sorted by (day, source, line): a stable, reproducible replay order."""
    return iter(sorted(rows, key=lambda r: (r.day, r.source, r.line)))


def default_agmarknet_paths(data_dir: str | Path | None = None) -> list[Path]:
    """The Agmarknet CSV files shipped in ``data/agmarknet`` (repository root by default)."""
    base = Path(data_dir) if data_dir is not None else Path(__file__).resolve().parent.parent / "data"
    return sorted((base / "agmarknet").glob("*.csv"))


def load_price_points(paths: Iterable[str | Path]) -> list[PricePoint]:
    """Modal prices of Agmarknet files as market price points, oldest first.

    Each kept row (see :func:`read_file`) of a state in the region table gives one
    :class:`~actors.core.risk.market.PricePoint` (commodity, ISO 3166-2 region, day, modal paise/kg);
    rows of unknown states are left out.

    Raises:
        AgmarknetFormatError: a file is not an Agmarknet layout.
    """
    points: list[PricePoint] = []
    for path in paths:
        rows, _ = read_file(path)
        for row in rows:
            region = region_for_state(row.state)
            if region is not None:
                points.append(PricePoint(row.commodity, region, row.day, row.modal_price))
    points.sort(key=lambda p: p.day)
    return points
