"""Regions: the one table of ISO 3166-2 subdivision codes (pure: packaged data, no I/O of ours).

A region is valid when it is a current ISO 3166-2 subdivision code: India's states and union
territories from the table below, every other country's from the ISO 3166-2 data that the
``pycountry`` package ships (Debian's iso-codes). Indian codes are the current ISO 3166-2:IN codes,
after the ISO 3166 newsletters that replaced Odisha ``IN-OR`` -> ``IN-OD``, Chhattisgarh ``IN-CT`` ->
``IN-CG``, Telangana ``IN-TG`` -> ``IN-TS`` and Uttarakhand ``IN-UT`` -> ``IN-UK``. The superseded
codes are accepted as aliases at the edge and in shard ids (:func:`normalize_region`), so an order
sent as ``IN-TG`` lands in ``IN-TS``.

Bounding boxes (WGS84 degrees) are the minimum and maximum latitude and longitude of the state's
points in the GeoNames India postal gazetteer (``data/locations/geonames_postal_IN_2023.zip``, CC BY
4.0, geonames.org), widened by :data:`BOX_MARGIN_DEG` on every side; Ladakh, which the gazetteer
files under Jammu and Kashmir, uses its published extent (32.3-36.0 N, 75.3-80.3 E), and Puducherry's
box is widened to take in Yanam (16.73 N, 82.21 E), which the gazetteer places inland.
``tests/unit/test_regions.py`` checks every gazetteer point against its state's box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

# ~55 km of latitude: postal points are place centroids, so border villages can lie outside their box.
BOX_MARGIN_DEG = 0.5

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


class UnknownRegion(ValueError):
    """A region code that is not a current or superseded ISO 3166-2 subdivision code."""


@dataclass(frozen=True, slots=True)
class Region:
    """One ISO 3166-2 subdivision: ``code`` (``IN-GJ``), English ``name``, bounding box in degrees."""

    code: str
    name: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    @property
    def center(self) -> tuple[float, float]:
        """(lat, lon) of the middle of the box, degrees."""
        return ((self.lat_min + self.lat_max) / 2, (self.lon_min + self.lon_max) / 2)

    def contains(self, lat: float, lon: float, margin_deg: float = BOX_MARGIN_DEG) -> bool:
        """True when (lat, lon) lies in the box widened by ``margin_deg`` degrees on each side."""
        return (
            self.lat_min - margin_deg <= lat <= self.lat_max + margin_deg
            and self.lon_min - margin_deg <= lon <= self.lon_max + margin_deg
        )


def _r(code: str, name: str, lat: tuple[float, float], lon: tuple[float, float]) -> Region:
    return Region(code, name, lat[0], lat[1], lon[0], lon[1])


# code, name, (lat min, lat max), (lon min, lon max): GeoNames postal extents, see the module docstring.
_TABLE = (
    _r("IN-AN", "Andaman and Nicobar Islands", (7.52, 13.27), (92.62, 93.60)),
    _r("IN-AP", "Andhra Pradesh", (12.70, 19.13), (76.85, 84.69)),
    _r("IN-AR", "Arunachal Pradesh", (27.02, 28.98), (91.92, 96.67)),
    _r("IN-AS", "Assam", (24.32, 27.83), (89.76, 95.77)),
    _r("IN-BR", "Bihar", (24.34, 27.25), (83.40, 88.13)),
    _r("IN-CH", "Chandigarh", (30.60, 31.21), (75.70, 76.76)),
    _r("IN-CG", "Chhattisgarh", (17.84, 24.03), (80.31, 84.37)),
    _r("IN-DH", "Dadra and Nagar Haveli and Daman and Diu", (20.10, 23.09), (70.96, 73.97)),
    _r("IN-DL", "Delhi", (28.47, 28.85), (76.90, 77.32)),
    _r("IN-GA", "Goa", (14.94, 15.78), (73.70, 74.24)),
    _r("IN-GJ", "Gujarat", (20.19, 24.53), (68.52, 74.44)),
    _r("IN-HR", "Haryana", (27.75, 30.84), (74.52, 77.47)),
    _r("IN-HP", "Himachal Pradesh", (30.44, 33.12), (75.64, 78.65)),
    _r("IN-JK", "Jammu and Kashmir", (32.33, 34.78), (73.84, 78.36)),
    _r("IN-JH", "Jharkhand", (21.99, 25.25), (83.39, 87.89)),
    _r("IN-KA", "Karnataka", (11.70, 18.43), (74.13, 78.56)),
    _r("IN-KL", "Kerala", (8.31, 12.76), (74.89, 77.22)),
    _r("IN-LA", "Ladakh", (32.30, 36.00), (75.30, 80.30)),
    _r("IN-LD", "Lakshadweep", (8.29, 10.08), (73.06, 73.64)),
    _r("IN-MP", "Madhya Pradesh", (21.16, 26.83), (74.14, 82.70)),
    _r("IN-MH", "Maharashtra", (15.65, 21.88), (72.68, 80.60)),
    _r("IN-MN", "Manipur", (24.08, 25.62), (93.11, 94.54)),
    _r("IN-ML", "Meghalaya", (25.18, 25.96), (89.85, 92.57)),
    _r("IN-MZ", "Mizoram", (22.15, 24.22), (92.36, 93.38)),
    _r("IN-NL", "Nagaland", (25.61, 26.81), (93.72, 95.06)),
    _r("IN-OD", "Odisha", (18.09, 22.50), (81.54, 87.46)),
    _r("IN-PY", "Puducherry", (10.91, 16.75), (75.53, 82.25)),  # + Yanam (16.73 N, 82.21 E)
    _r("IN-PB", "Punjab", (29.61, 32.48), (73.91, 76.91)),
    _r("IN-RJ", "Rajasthan", (23.12, 30.15), (69.71, 78.25)),
    _r("IN-SK", "Sikkim", (27.09, 27.73), (88.13, 88.84)),
    _r("IN-TN", "Tamil Nadu", (8.09, 13.53), (76.28, 80.32)),
    _r("IN-TS", "Telangana", (15.88, 19.86), (77.31, 81.59)),
    _r("IN-TR", "Tripura", (23.00, 24.33), (91.21, 92.16)),
    _r("IN-UP", "Uttar Pradesh", (24.02, 30.32), (77.12, 84.48)),
    _r("IN-UK", "Uttarakhand", (28.82, 31.04), (77.62, 80.86)),
    _r("IN-WB", "West Bengal", (21.63, 27.15), (85.84, 89.97)),
)

REGIONS: MappingProxyType[str, Region] = MappingProxyType({r.code: r for r in _TABLE})

# Superseded ISO 3166-2:IN codes still found in other data sets -> current code.
REGION_ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {"IN-OR": "IN-OD", "IN-CT": "IN-CG", "IN-TG": "IN-TS", "IN-UT": "IN-UK"}
)

# State and union-territory spellings (lower case, single spaces, "&" read as "and") used by
# Agmarknet, GeoNames, ICTD and simplemaps -> current code.
_STATE_SPELLINGS: MappingProxyType[str, str] = MappingProxyType(
    {
        **{r.name.lower(): r.code for r in _TABLE},
        "andaman and nicobar": "IN-AN",
        "chattisgarh": "IN-CG",
        "dadra and nagar haveli": "IN-DH",
        "daman and diu": "IN-DH",
        "nct of delhi": "IN-DL",
        "orissa": "IN-OD",
        "pondicherry": "IN-PY",
        "uttaranchal": "IN-UK",
    }
)


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    import pycountry

    return frozenset(sd.code for sd in pycountry.subdivisions) | frozenset(REGIONS)


def current_code(region: str) -> str:
    """``region`` upper-cased with a superseded code mapped to its current one; not checked."""
    code = region.strip().upper()
    return REGION_ALIASES.get(code, code)


def normalize_region(region: str) -> str:
    """The current ISO 3166-2 code for ``region`` (case-insensitive; superseded codes mapped).

    Raises :class:`UnknownRegion` when the code is not in the table.
    """
    code = current_code(region)
    if code not in REGIONS and code not in _iso_codes():
        raise UnknownRegion(f"unknown region {region!r}: expected an ISO 3166-2 code such as IN-GJ")
    return code


def is_region(region: str) -> bool:
    """True when ``region`` is a current or superseded ISO 3166-2 subdivision code."""
    code = current_code(region)
    return code in REGIONS or code in _iso_codes()


def region_for_state(state: str) -> str | None:
    """Current code for an Indian state or union territory name in any known spelling, or None."""
    key = " ".join(_NON_ALNUM.sub(" ", state.lower().replace("&", " and ")).split())
    return _STATE_SPELLINGS.get(key)


def region_contains(region: str, lat: float, lon: float) -> bool:
    """True when the point lies in the (widened) bounding box of ``region``.

    Regions without a box in the table (outside India) contain every point. Raises UnknownRegion.
    """
    box = REGIONS.get(normalize_region(region))
    return box is None or box.contains(lat, lon)


def iso_subdivision_codes() -> frozenset[str]:
    """Every valid current code: India's table plus pycountry's ISO 3166-2 subdivisions."""
    return _iso_codes()


def outside_region(region: str, lat: float, lon: float) -> str | None:
    """Why (lat, lon) cannot lie in ``region``, or None when it lies in the region's widened box.

    The message names the region and the accepted box, e.g. ``point (-5, 72.8) lies outside IN-GJ
    (Gujarat): lat 19.69..25.03, lon 68.02..74.94 (its bounding box widened by 0.5 deg)``.
    Raises UnknownRegion.
    """
    if region_contains(region, lat, lon):
        return None
    box = REGIONS[normalize_region(region)]
    m = BOX_MARGIN_DEG
    return (
        f"point ({lat:g}, {lon:g}) lies outside {box.code} ({box.name}): "
        f"lat {box.lat_min - m:.2f}..{box.lat_max + m:.2f}, lon {box.lon_min - m:.2f}..{box.lon_max + m:.2f}"
        f" (its bounding box widened by {m:g} deg)"
    )
