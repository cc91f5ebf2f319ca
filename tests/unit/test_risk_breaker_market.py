"""Circuit breaker state machine (injected clock) and the Agmarknet market reference."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.core.regions import normalize_region, region_for_state
from actors.core.risk.breaker import BreakerState, CircuitBreaker
from actors.core.risk.market import MarketReference, PriceStats
from persistence.agmarknet import default_agmarknet_paths, load_price_points, parse_number


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_k_failures_in_window() -> None:
    c = Clock()
    b = CircuitBreaker(failure_threshold=3, window_s=10, cooldown_s=5, clock=c)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == BreakerState.CLOSED and b.state_value == 0
    b.record_failure()
    assert b.state == BreakerState.OPEN and b.state_value == 2 and not b.allow()


def test_breaker_failures_outside_window_do_not_count() -> None:
    c = Clock()
    b = CircuitBreaker(failure_threshold=3, window_s=10, cooldown_s=5, clock=c)
    b.record_failure()
    c.t = 6
    b.record_failure()
    c.t = 12  # the first failure is now out of the window
    b.record_failure()
    assert b.state == BreakerState.CLOSED


def test_breaker_half_open_then_close_on_success() -> None:
    c = Clock()
    b = CircuitBreaker(failure_threshold=1, window_s=10, cooldown_s=5, clock=c)
    b.record_failure()
    c.t = 4.9
    assert b.state == BreakerState.OPEN
    c.t = 5.0
    assert b.state == BreakerState.HALF_OPEN and b.state_value == 1
    assert b.allow()  # one trial
    assert not b.allow()  # no second concurrent trial
    b.record_success()
    assert b.state == BreakerState.CLOSED and b.allow()


def test_breaker_half_open_failure_reopens() -> None:
    c = Clock()
    b = CircuitBreaker(failure_threshold=1, window_s=10, cooldown_s=5, clock=c)
    b.record_failure()
    c.t = 5
    assert b.allow()
    b.record_failure()
    assert b.state == BreakerState.OPEN and b.opened_count == 2
    c.t = 9.9
    assert not b.allow()
    c.t = 10
    assert b.allow()


def test_breaker_rejects_bad_threshold() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


def test_state_region_codes() -> None:
    assert region_for_state("Gujarat") == "IN-GJ"
    assert region_for_state("  madhya   pradesh ") == "IN-MP"
    assert region_for_state("Chattisgarh") == "IN-CG"
    assert region_for_state("NCT of Delhi") == "IN-DL"
    assert region_for_state("Telangana") == "IN-TS"
    assert region_for_state("Atlantis") is None
    assert normalize_region("in-or") == "IN-OD"


def test_parse_price_commas() -> None:
    assert parse_number("7,700.00") == 7700
    assert parse_number("4,029.50") == Decimal("4029.50")
    assert parse_number("") is None


def test_robust_z_and_mad_floor() -> None:
    s = PriceStats(median=7500, mad=100, n=10)
    assert s.robust_z(7600) == pytest.approx(0.6745)
    flat = PriceStats(median=7500, mad=0, n=10)  # MAD floored at 1% of the median = 75
    assert flat.robust_z(7575) == pytest.approx(0.6745)


def test_agmarknet_seed_real_data() -> None:
    points = load_price_points(default_agmarknet_paths())
    commodities = {p.commodity for p in points}
    assert commodities == {"cotton", "soybean", "mustard", "chana"}
    assert all(p.price > 0 for p in points)
    assert points == sorted(points, key=lambda p: p.day)
    ref = MarketReference(window=500, min_samples=20).seed(points)
    gj = ref.stats("cotton", "IN-GJ")
    assert gj is not None and 6000 < gj.median < 9000 and gj.n == 500
    # unknown region falls back to the commodity-wide series; unknown commodity has none
    assert ref.stats("cotton", "IN-XX") is not None
    assert ref.stats("wheat", "IN-GJ") is None


def test_observe_rolls_window() -> None:
    ref = MarketReference(window=3, min_samples=3)
    for p in (100, 200, 300, 400):
        ref.observe("Cotton", "IN-GJ", p)
    s = ref.stats("cotton", "IN-GJ")
    assert s is not None and s.median == 300 and s.n == 3
