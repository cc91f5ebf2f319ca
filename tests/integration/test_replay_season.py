"""The season replay end to end through the real gateway and settlement host: the first rows of the
real cotton file are traded, delivered, invoiced, paid by real UCI behaviours and swept; the season's
figures agree with the ledger and with ``ml_settlements``."""

from __future__ import annotations

import asyncio

import pytest

from gateway.replay.behaviour import load_behaviours
from gateway.replay.locations import Locator, load_cities
from gateway.replay.plan import DEFAULT_FILES, build_plan, load_rows
from gateway.replay.quality import load_hvi
from gateway.replay.run import SeasonSetup, run_replay
from gateway.replay.summary import summarize_season
from tests.integration.conftest import db_rows
from tests.integration.gateway_server import Gateway

pytestmark = pytest.mark.integration


def test_season_of_real_rows(gw: Gateway, pg_dsn: str) -> None:
    rows, _ = load_rows(list(DEFAULT_FILES), 40)
    hvi = load_hvi()
    plan = build_plan(rows, Locator.load(), load_cities(), hvi, seed=7)
    setup = SeasonSetup(hvi, load_behaviours(), 7)
    stats, season = asyncio.run(run_replay(plan, gw.base, gw.admin, progress=False, season=setup))
    assert season is not None
    s = summarize_season(season)
    n = sum(stats.allocations.values())
    assert n > 0 and s["contracts"] == n == len(stats.trades)
    assert s["errors"] == {}
    assert s["deliveries"] + s["not_delivered"] == n and s["invoices"] == s["deliveries"]
    # every invoice ends PAID or DEFAULTED: the last sweep runs past the grace period
    assert set(s["invoice_status"]) <= {"PAID", "DEFAULTED"}
    assert sum(s["invoice_status"].values()) == s["invoices"]
    assert s["paid_paise"] + s["defaulted_paise"] == s["invoiced_paise"]
    assert s["receivables_paise"] == s["defaulted_paise"]
    # the buyers' exposure left in the ledger is exactly what they never paid
    assert s["exposure_paise_total"] == s["defaulted_paise"]
    ml = db_rows(pg_dsn, "SELECT count(*) AS n, sum(amount) AS a, sum(paid_amount) AS p FROM ml_settlements")[
        0
    ]
    assert (ml["n"], ml["a"], ml["p"]) == (s["invoices"], s["invoiced_paise"], s["paid_paise"])
    # tonnes: delivered within the 5 % tolerance of what was allocated
    delivered_share = s["tonnes_delivered"] * 1000 / sum(t.quantity_kg for t in stats.trades)
    assert 0.9 < delivered_share <= 1.03
    assert s["sweeps"] >= 45 and s["dso_days"] is not None and s["dso_days"] > 0
