"""Quality of the replay's lots and what the buyers accept.

Cotton: drawn reproducibly from the real HVI distributions of ``data/cotton_quality`` (one whole trial
entry, so length, micronaire, strength and uniformity keep their joint correlation); the staple
length is the variety's when its name states one (``Shanker 6 (B) 30mm FIne`` -> 30 mm). Other
commodities: moisture / foreign matter / oil or protein content drawn from AGMARK grade ranges.
Units: mm, micronaire, g/tex, % (as :mod:`actors.core.commodities` names them).
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HVI_FILE = ROOT / "data" / "cotton_quality" / "uga_variety_trials_2020-2024_hvi_long.csv"

HVI = tuple[float, float, float, float]

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


def staple_from_variety(variety: str) -> float | None:
    """Staple length (mm) stated in a variety name (``Shanker 6 (B) 30mm FIne`` -> 30.0), else None."""
    m = _STAPLE.search(variety or "")
    if not m:
        return None
    v = float(m.group(1))
    return v if 15.0 <= v <= 40.0 else None


def load_hvi(path: Path = HVI_FILE) -> list[HVI]:
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


def cotton_quality(rng: random.Random, hvi: Sequence[HVI], variety: str) -> dict:
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


def cotton_ranges(rng: random.Random, hvi: Sequence[HVI]) -> dict:
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


def other_quality(rng: random.Random, commodity: str) -> dict[str, float]:
    """Measured quality of a non-cotton lot: each AGMARK parameter drawn uniformly in its range (%)."""
    return {k: _r1(rng.uniform(a, b)) for k, (a, b) in OTHER_QUALITY.get(commodity, {}).items()}


def other_ranges(commodity: str) -> dict[str, dict[str, float]]:
    """What buyers of a non-cotton commodity accept: ``{param: {"min": %, "max": %}}``."""
    return {k: {"min": a, "max": b} for k, (a, b) in OTHER_RANGES.get(commodity, {}).items()}


def lot_quality(
    rng: random.Random, hvi: Sequence[HVI], commodity: str, variety: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(measured quality of the seller's lot, the buyer's accepted ranges) for one market row."""
    if commodity == "cotton":
        return cotton_quality(rng, hvi, variety), cotton_ranges(rng, hvi)
    return other_quality(rng, commodity), other_ranges(commodity)
