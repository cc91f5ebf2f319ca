"""Market location: market name, else mandi list, else district (variants, HQ towns), else state."""

from __future__ import annotations

from collections import Counter

import pytest

from actors.core.geo import haversine_km
from gateway.replay.locations import Locator, load_cities, market_stems, region_of
from persistence.agmarknet import read_file
from tests.unit.test_agmarknet import COTTON


@pytest.fixture(scope="module")
def locator() -> Locator:
    return Locator.load()


def test_region_codes() -> None:
    assert region_of("Gujarat") == "IN-GJ"
    assert region_of("Chattisgarh") == "IN-CG"
    assert region_of("Telangana") == "IN-TS"
    assert region_of("NCT of Delhi") == "IN-DL"
    assert region_of("Andaman & Nicobar Islands") == "IN-AN"
    assert region_of("Atlantis") is None


def test_market_stems() -> None:
    assert market_stems("Tiruvuru APMC") == ["tiruvuru"]
    assert market_stems("Botad(Haddad) APMC")[:2] == ["botad", "haddad"]
    assert market_stems("APMCKHEDBRAHMA") == ["khedbrahma"]
    assert "charkhi dadri" in market_stems("Ch. Dadri APMC")


def test_market_found_by_name(locator: Locator) -> None:
    loc = locator.locate("Gujarat", "Rajkot", "Rajkot APMC")
    assert loc is not None and loc.method == "market" and loc.region == "IN-GJ"
    assert haversine_km(loc.lat, loc.lon, 22.30, 70.80) < 30  # Rajkot city


def test_district_spelling_variants_and_new_district_hq(locator: Locator) -> None:
    hisar = locator.district_point("IN-HR", "Hissar")
    assert hisar is not None and haversine_km(*hisar, 29.15, 75.72) < 60
    aurangabad = locator.district_point("IN-MH", "Chattrapati Sambhajinagar")
    assert aurangabad is not None and haversine_km(*aurangabad, 19.88, 75.34) < 80
    botad = locator.district_point("IN-GJ", "Botad")  # created 2013: via its HQ town
    assert botad is not None and haversine_km(*botad, 22.17, 71.67) < 40
    veraval = locator.district_point("IN-GJ", "Gir Somnath")
    assert veraval is not None and haversine_km(*veraval, 20.91, 70.37) < 40


def test_state_fallback(locator: Locator) -> None:
    loc = locator.locate("Gujarat", "Nowhere District", "Zzqx APMC")
    assert loc is not None and loc.method == "state" and loc.region == "IN-GJ"
    assert locator.locate("Atlantis", "x", "y") is None


def test_every_real_cotton_row_is_located(locator: Locator) -> None:
    rows, _ = read_file(COTTON)
    locator.counts = Counter()
    for r in rows:
        loc = locator.locate(r.state, r.district, r.market)
        assert loc is not None
        assert 6 < loc.lat < 37 and 68 < loc.lon < 98
    c = locator.counts
    assert sum(c.values()) == len(rows)
    assert c["market"] > 0.75 * len(rows)  # most rows by their market's own name
    assert c["unknown_state"] == 0


def test_cities_by_region() -> None:
    cities = load_cities()
    assert cities["IN-GJ"][0].name == "Ahmadabad"
    assert all(c.region == "IN-MH" for c in cities["IN-MH"])
