"""Locate Agmarknet markets on the map (pure: reads the location files in ``data/locations`` once).

Resolution order for a (state, district, market) triple, each recorded as the row's ``method``:

1. ``market``: the market's own name (``Tiruvuru APMC`` -> ``Tiruvuru``; ``Botad(Haddad) APMC`` ->
   ``Botad``, ``Haddad``; ``APMCKHEDBRAHMA`` -> ``Khedbrahma``) found as a place or sub-district in the
   GeoNames postal gazetteer of the same state. GeoNames rules (data/SOURCES.md): points with
   accuracy 1 are district centroids filled in for unknown places, so they never count as a market
   hit; village names repeat inside a state, so matches inside the row's district win, otherwise the
   median of the state's matches is used only when they lie within 60 km of it.
2. ``mandi_list``: the ICTD Agmarknet mandi list with lat/lon, when its point lies in the state and
   within 80 km of the district (the list has wrong points; this rejects them).
3. ``district``: the district through its spelling variants (Hissar/Hisar, Chattrapati
   Sambhajinagar/Aurangabad, ...) or, for districts newer than the gazetteer, its headquarters town
   (Botad, Gir Somnath -> Veraval, ...); the point is the median of the district's GeoNames points of
   accuracy >= 3 (accuracy 1 points when nothing better).
4. ``state``: fallback, the median of all GeoNames points of the state (a state centroid).

Coordinates: WGS84 decimal degrees. Regions: ISO 3166-2 codes (``IN-GJ``).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import statistics
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from actors.core.geo import haversine_km
from actors.core.regions import region_for_state

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "locations"

# Agmarknet district spelling -> GeoNames district name(s) or headquarters town (new districts)
DISTRICT_VARIANTS: dict[str, tuple[str, ...]] = {
    "hissar": ("hisar",),
    "mehsana": ("mahesana", "mehsana", "@mahesana", "@mehsana"),
    "belgaum": ("belagavi", "belgaum"),
    "chattrapati sambhajinagar": ("aurangabad",),
    "chhatrapati sambhajinagar": ("aurangabad",),
    "amarawati": ("amravati",),
    "jalana": ("jalna",),
    "banaskanth": ("banaskantha", "banas kantha"),
    "sabarkantha": ("sabarkantha", "sabar kantha"),
    "bhatinda": ("bathinda", "bhatinda"),
    "junagarh": ("junagadh",),
    "kachchh": ("kachchh", "kutch"),
    "jhajar": ("jhajjar",),
    "mewat": ("nuh", "mewat"),
    "vadodara(baroda)": ("vadodara",),
    "karwar(uttar kannad)": ("uttara kannada", "uttar kannada", "karwar"),
    "mysore": ("mysuru", "mysore"),
    "badwani": ("barwani",),
    "bolangir": ("balangir", "bolangir"),
    "ganganagar": ("sri ganganagar", "ganganagar"),
    "muktsar": ("muktsar", "sri muktsar sahib"),
    "panchmahals": ("panch mahals", "panchmahal", "panchmahals"),
    "mahbubnagar": ("mahabubnagar", "mahbubnagar"),
    "davangere": ("davanagere", "davangere"),
    "bellary": ("ballari", "bellary"),
    "bijapur": ("vijayapura", "bijapur"),
    "gulbarga": ("kalaburagi", "gulbarga"),
    "medak": ("medak",),
    "jodhpur rural": ("jodhpur",),
    "jaipur rural": ("jaipur",),
    "vashim": ("washim",),
    "dharashiv(usmanabad)": ("osmanabad", "dharashiv"),
    "prayagraj": ("allahabad", "prayagraj"),
    "gangapur city": ("@gangapur city", "sawai madhopur"),
    # districts newer than the gazetteer: their headquarters town (place name)
    "botad": ("@botad",),
    "gir somnath": ("@veraval",),
    "devbhumi dwarka": ("@khambhalia", "@jam khambhalia"),
    "morbi": ("@morbi", "@morvi"),
    "chhota udaipur": ("@chhota udaipur", "@chhotaudepur"),
    "palwal": ("@palwal",),
    "anupgarh": ("@anupgarh",),
    "beawar": ("@beawar",),
    "kekri": ("@kekri",),
    "khairthal tijara": ("@khairthal",),
    "kotputli- behror": ("@kotputli",),
    "kotputli-behror": ("@kotputli",),
    "phalodi": ("@phalodi",),
    "bhadradri kothagudem": ("@kothagudem",),
    "rajanna siricilla": ("@sircilla", "@siricilla"),
    "fazilka": ("@fazilka",),
    "alirajpur": ("@alirajpur",),
    "barnala": ("@barnala",),
    "jashpur": ("jashpur", "@jashpurnagar"),
}

# market stems that GeoNames spells otherwise
MARKET_VARIANTS: dict[str, tuple[str, ...]] = {
    "ch. dadri": ("charkhi dadri",),
    "ch dadri": ("charkhi dadri",),
    "barodamev": ("baroda",),
    "dhragradhra": ("dhrangadhra",),
    "vadhvan": ("wadhwan",),
    "umared": ("umred",),
    "varora": ("warora",),
    "mancharial": ("mancherial",),
    "sangriya": ("sangaria",),
    "sirguppa": ("siruguppa",),
}

METHODS = ("market", "mandi_list", "district", "state")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a market is: lat/lon (deg), ISO region, and which rule found it."""

    lat: float
    lon: float
    region: str
    method: str
    name: str = ""


@dataclass(slots=True)
class _Point:
    place: str
    district: str
    sub: str
    lat: float
    lon: float
    acc: int


def norm(name: str) -> str:
    """Lower case, ``&`` -> ``and``, punctuation to spaces, single spaces."""
    n = name.lower().replace("&", " and ")
    n = re.sub(r"[^a-z0-9()\- ]", " ", n)
    return re.sub(r"\s+", " ", n).strip()


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def region_of(state: str) -> str | None:
    """Current ISO 3166-2 code of an Indian state name in any of the spellings the data uses."""
    return region_for_state(state)


def market_stems(market: str) -> list[str]:
    """Candidate place names for an Agmarknet market name, best first."""
    m = re.sub(r"(?i)\bapmc\b", " ", market)
    m = re.sub(r"(?i)^apmc", "", m.strip())
    inner = re.findall(r"\(([^)]*)\)", m)
    outer = re.sub(r"\(.*?\)", " ", m)
    out: list[str] = []
    for cand in [outer, *inner]:
        c = norm(cand).replace("(", "").replace(")", "")
        c = re.sub(r"\b(mandi|market yard|yard|krishi upaj|sub yard|f and v|grain)\b", " ", c)
        c = re.sub(r"\s+", " ", c).strip(" -")
        if c and c not in out:
            out.append(c)
        for v in MARKET_VARIANTS.get(c, ()) + DISTRICT_VARIANTS.get(c, ()):
            v = v.lstrip("@")
            if v not in out:
                out.append(v)
    return out


def _median(points: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


@dataclass(slots=True)
class Locator:
    """Resolves markets; keeps per-method counts in ``counts`` (rows, not distinct markets)."""

    places: dict[str, dict[str, list[_Point]]] = field(default_factory=dict)  # region -> key -> points
    subs: dict[str, dict[str, list[_Point]]] = field(default_factory=dict)  # sub-district -> points
    districts: dict[str, dict[str, list[_Point]]] = field(default_factory=dict)  # region -> key -> points
    states: dict[str, tuple[float, float]] = field(default_factory=dict)
    mandis: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # region -> key -> pt
    counts: Counter[str] = field(default_factory=Counter)
    _cache: dict[tuple[str, str, str], Location | None] = field(default_factory=dict)
    _district_cache: dict[tuple[str, str], tuple[float, float] | None] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: str | Path = DATA_DIR) -> Locator:
        """Load GeoNames (``geonames_postal_IN_2023.zip``) and the ICTD mandi list from ``data_dir``."""
        d = Path(data_dir)
        loc = cls()
        all_state: dict[str, list[tuple[float, float]]] = defaultdict(list)
        with zipfile.ZipFile(d / "geonames_postal_IN_2023.zip") as zf, zf.open("IN.txt") as fh:
            for line in io.TextIOWrapper(fh, encoding="utf-8"):
                f = line.rstrip("\n").split("\t")
                if len(f) < 12:
                    continue
                region = region_of(f[3])
                if region is None or not f[9] or not f[10]:
                    continue
                try:
                    lat, lon, acc = float(f[9]), float(f[10]), int(f[11] or 1)
                except ValueError:
                    continue
                p = _Point(norm(f[2]), norm(f[5]), norm(f[7]), lat, lon, acc)
                loc.places.setdefault(region, {}).setdefault(_key(f[2]), []).append(p)
                if f[7]:
                    loc.subs.setdefault(region, {}).setdefault(_key(f[7]), []).append(p)
                loc.districts.setdefault(region, {}).setdefault(_key(f[5]), []).append(p)
                all_state[region].append((lat, lon))
        loc.states = {r: _median(pts) for r, pts in all_state.items()}
        loc._load_mandis(d)
        return loc

    def _load_mandis(self, d: Path) -> None:
        states: dict[str, str] = {}
        path = d / "ictd_states.csv"
        if path.exists():
            for row in csv.DictReader(path.open(encoding="utf-8")):
                r = region_of(row["STATE"])
                if r:
                    states[row["STATECODE"].strip()] = r
        path = d / "ictd_mandis.csv"
        if not path.exists():
            return
        for row in csv.DictReader(path.open(encoding="utf-8")):
            region = states.get(row["STATECODE"].strip())
            try:
                lat, lon = float(row["LATITUDE"]), float(row["LONGITUDE"])
            except (TypeError, ValueError):
                continue
            if region and 6.0 <= lat <= 37.5 and 68.0 <= lon <= 97.5:
                self.mandis.setdefault(region, {})[_key(row["MANDINAME"])] = (lat, lon)

    # -- districts --------------------------------------------------------------------------------
    def _named(self, region: str, name: str) -> list[_Point]:
        """Points of a place called ``name`` (accuracy > 1), else of the sub-district of that name."""
        k = _key(name)
        pts = [p for p in self.places.get(region, {}).get(k, []) if p.acc > 1]
        return pts or [p for p in self.subs.get(region, {}).get(k, []) if p.acc > 1]

    def district_point(self, region: str, district: str) -> tuple[float, float] | None:
        """Median of the district's GeoNames points (accuracy >= 3 preferred), variants and HQ towns tried."""
        ck = (region, district)
        if ck in self._district_cache:
            return self._district_cache[ck]
        dists = self.districts.get(region, {})
        n = norm(district)
        names = DISTRICT_VARIANTS.get(n, ()) + (n,) + tuple(re.findall(r"\(([^)]*)\)", n))
        names += (re.sub(r"\(.*?\)", "", n).strip(),)
        pt: tuple[float, float] | None = None
        for name in names:
            if name.startswith("@"):
                pts = self._named(region, name[1:])
                if pts:
                    pt = _median([(p.lat, p.lon) for p in pts])
                    break
                continue
            pts = dists.get(_key(name), [])
            if pts:
                good = [p for p in pts if p.acc >= 3] or pts
                pt = _median([(p.lat, p.lon) for p in good])
                break
        if pt is None and dists:
            close = difflib.get_close_matches(_key(n), list(dists), n=1, cutoff=0.85)
            if close:
                pts = dists[close[0]]
                good = [p for p in pts if p.acc >= 3] or pts
                pt = _median([(p.lat, p.lon) for p in good])
        if pt is None:
            # a district named after its HQ town
            pts = self._named(region, n)
            if pts:
                pt = _median([(p.lat, p.lon) for p in pts])
        self._district_cache[ck] = pt
        return pt

    # -- markets ----------------------------------------------------------------------------------
    def _market_point(self, region: str, district: str, market: str) -> tuple[float, float] | None:
        dnorm = {
            _key(x) for x in (district, *DISTRICT_VARIANTS.get(norm(district), ())) if not x.startswith("@")
        }
        dpt = self.district_point(region, district)
        for stem in market_stems(market):
            pts = self._named(region, stem)
            if not pts:
                continue
            same = [p for p in pts if _key(p.district) in dnorm]
            if same:
                return _median([(p.lat, p.lon) for p in same])
            if dpt is not None:
                near = [p for p in pts if haversine_km(p.lat, p.lon, dpt[0], dpt[1]) <= 80.0]
                if near:
                    return _median([(p.lat, p.lon) for p in near])
            med = _median([(p.lat, p.lon) for p in pts])
            if all(haversine_km(p.lat, p.lon, med[0], med[1]) <= 60.0 for p in pts):
                return med
        return None

    def _mandi_point(self, region: str, district: str, market: str) -> tuple[float, float] | None:
        mandis = self.mandis.get(region, {})
        dpt = self.district_point(region, district)
        for stem in market_stems(market):
            pt = mandis.get(_key(stem))
            if pt is None:
                continue
            if dpt is None or haversine_km(pt[0], pt[1], dpt[0], dpt[1]) <= 80.0:
                return pt
        return None

    def locate(self, state: str, district: str, market: str) -> Location | None:
        """Locate one market; counts the method used. None only for an unknown state."""
        region = region_of(state)
        if region is None:
            self.counts["unknown_state"] += 1
            return None
        ck = (region, district, market)
        if ck not in self._cache:
            self._cache[ck] = self._resolve(region, district, market)
        loc = self._cache[ck]
        self.counts[loc.method if loc else "unknown_state"] += 1
        return loc

    def _resolve(self, region: str, district: str, market: str) -> Location | None:
        pt = self._market_point(region, district, market)
        if pt:
            return Location(pt[0], pt[1], region, "market", market)
        pt = self._mandi_point(region, district, market)
        if pt:
            return Location(pt[0], pt[1], region, "mandi_list", market)
        pt = self.district_point(region, district)
        if pt:
            return Location(pt[0], pt[1], region, "district", district)
        st = self.states.get(region)
        if st:
            return Location(st[0], st[1], region, "state", region)
        return None


@dataclass(frozen=True, slots=True)
class City:
    """A city from ``simplemaps_in_cities.csv``: name, lat/lon (deg), ISO region, population."""

    name: str
    lat: float
    lon: float
    region: str
    population: int


def load_cities(data_dir: str | Path = DATA_DIR) -> dict[str, list[City]]:
    """Cities by ISO region, most populous first."""
    out: dict[str, list[City]] = defaultdict(list)
    with (Path(data_dir) / "simplemaps_in_cities.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            region = region_of(row["admin_name"])
            if not region:
                continue
            try:
                pop = int(float(row.get("population") or 0))
                out[region].append(City(row["city"], float(row["lat"]), float(row["lng"]), region, pop))
            except ValueError:
                continue
    for cities in out.values():
        cities.sort(key=lambda c: -c.population)
    return dict(out)
