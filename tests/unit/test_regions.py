"""The one region table: current ISO 3166-2 codes, old codes as aliases, boxes from GeoNames."""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest

from actors.core.ids import shard_id_for, shard_of
from actors.core.regions import (
    REGION_ALIASES,
    REGIONS,
    UnknownRegion,
    is_region,
    normalize_region,
    region_contains,
    region_for_state,
)

GEONAMES = Path(__file__).resolve().parents[2] / "data" / "locations" / "geonames_postal_IN_2023.zip"


def test_old_codes_are_aliases_of_current_codes() -> None:
    assert dict(REGION_ALIASES) == {"IN-OR": "IN-OD", "IN-CT": "IN-CG", "IN-TG": "IN-TS", "IN-UT": "IN-UK"}
    for old, new in REGION_ALIASES.items():
        assert normalize_region(old) == new
        assert normalize_region(old.lower()) == new
        assert old not in REGIONS and new in REGIONS
    assert shard_id_for("IN-TG", "cotton") == shard_id_for("IN-TS", "Kapas") == "IN-TS.cotton"


def test_ids_of_old_shards_route_to_the_current_shard() -> None:
    assert shard_of("O-IN-TG.cotton-5") == "IN-TS.cotton"
    assert shard_of("A-IN-GJ.cotton-12") == "IN-GJ.cotton"
    assert shard_of("nonsense") is None and shard_of("O-IN-GJ.cotton-x") is None


def test_unknown_and_made_up_codes_are_refused() -> None:
    for code in ("ZZ-QQQQQQQQ", "XQ-SPAM0", "IN-XX", "IN-", ""):
        assert not is_region(code)
        with pytest.raises(UnknownRegion):
            normalize_region(code)
    assert is_region("US-TX") and is_region("BR-SP")  # other countries: pycountry's ISO 3166-2 data
    with pytest.raises(UnknownRegion):
        shard_id_for("ZZ-QQQQQQQQ", "cotton")


def test_state_names_in_every_spelling_of_the_data() -> None:
    assert region_for_state("Telangana") == "IN-TS"
    assert region_for_state("Chattisgarh") == region_for_state("Chhattisgarh") == "IN-CG"
    assert region_for_state("Orissa") == region_for_state("Odisha") == "IN-OD"
    assert region_for_state("Uttaranchal") == "IN-UK"
    assert region_for_state("Andaman & Nicobar Islands") == "IN-AN"
    assert region_for_state("Jammu & Kashmir") == "IN-JK"
    assert region_for_state("NCT of Delhi") == "IN-DL"
    assert region_for_state("Atlantis") is None


def test_points_inside_and_outside_their_region() -> None:
    assert region_contains("IN-GJ", 22.30, 70.80)  # Rajkot
    assert not region_contains("IN-GJ", -5.0, 70.80)
    assert not region_contains("IN-GJ", 17.39, 78.49)  # Hyderabad is in Telangana
    assert region_contains("IN-TG", 17.39, 78.49)
    assert region_contains("IN-PY", 16.73, 82.21)  # Yanam
    assert region_contains("US-TX", 0.0, 0.0)  # no box outside India


def test_every_gazetteer_point_lies_in_its_state_box() -> None:
    """The boxes are the GeoNames postal extents: every point of a state lies in its (widened) box."""
    outside: dict[str, int] = defaultdict(int)
    total = 0
    with zipfile.ZipFile(GEONAMES) as z, z.open("IN.txt") as fh:
        for line in io.TextIOWrapper(fh, encoding="utf-8"):
            f = line.rstrip("\n").split("\t")
            if not f[9] or not f[10]:
                continue
            code = region_for_state(f[3])
            assert code is not None, f[3]
            total += 1
            if not region_contains(code, float(f[9]), float(f[10])):
                outside[code] += 1
    assert total > 150_000 and dict(outside) == {}
