"""The shard's market reference (docs/matching.md, "Market reference"): the 30-day state median of
Agmarknet modal prices, recorded by the shard service as a MARKET_REFERENCE event before the first
batch that finds the engine with another one, never twice, and kept across a restart."""

from __future__ import annotations

from datetime import date

from actors.core.risk.market import PricePoint, state_reference
from actors.shard_service import ShardService
from persistence.agmarknet import default_agmarknet_paths, read_file
from persistence.agmarknet_reference import market_reference
from persistence.memory_store import MemoryEventStore
from tests.unit.shard_service_helpers import REGION, orders


def _p(day: int, price: int, region: str = "IN-GJ", month: int = 1, year: int = 2026) -> PricePoint:
    return PricePoint("cotton", region, date(year, month, day), price)


def test_state_reference_is_the_low_median_of_the_last_30_days() -> None:
    points = [
        _p(1, 9000, month=12, year=2025),  # older than 30 days before the last report: left out
        _p(5, 7000),
        _p(20, 7200),
        _p(24, 7600),
        _p(24, 7100),
        _p(25, 5000, region="IN-MH"),  # another state
    ]
    # [7000, 7200, 7600, 7100] -> low median 7100, as of the latest Gujarat day
    assert state_reference(points, "cotton", "IN-GJ") == (7100, date(2026, 1, 24))
    assert state_reference(points, "kapas", "IN-GJ") == (7100, date(2026, 1, 24))  # alias
    assert state_reference(points, "cotton", "IN-KL") is None
    assert state_reference(points, "cotton", "IN-GJ", days=1) == (7100, date(2026, 1, 24))


def test_reference_from_the_shipped_files() -> None:
    assert market_reference("IN-KL", "cotton") is None  # no cotton market in Kerala
    assert market_reference("GB-LND", "cotton") is None
    assert market_reference("IN-GJ", "wheat") is None  # no wheat series shipped
    (path,) = [p for p in default_agmarknet_paths() if "cotton" in p.name]
    rows, _ = read_file(path)
    gujarat = [r for r in rows if r.state == "Gujarat"]
    last = max(r.day for r in gujarat)
    ref = market_reference("IN-GJ", "cotton")
    assert ref is not None and ref[1] == last.isoformat()
    window = sorted(r.modal_price for r in gujarat if (last - r.day).days < 30)
    assert ref[0] == window[(len(window) - 1) // 2]


async def test_shard_service_records_the_reference_once_and_keeps_it_across_a_restart() -> None:
    store = MemoryEventStore()
    svc = ShardService(REGION, "cotton", store, market_reference=(7000, "agmarknet", "2026-01-24"))
    assert await svc.start(wait_s=0)
    cmds = orders(4, "mr")
    first = await svc.submit(cmds[:2])
    assert [r["client_order_id"] for r in first] == [cmds[0].client_order_id, cmds[1].client_order_id]
    second = await svc.submit(cmds[2:])
    assert len(second) == 2
    rows = await store.read_events(svc.shard_id, 0, 100)
    kinds = [r[1] for r in rows]
    assert kinds.count("MARKET_REFERENCE") == 1 and kinds[0] == "MARKET_REFERENCE"
    info = svc.info()
    assert info["price_band"]["reference_paise_per_kg"] == 7000 and info["halted"] is False
    # a restart with the same reference records nothing; a new reference is recorded once
    again = ShardService(REGION, "cotton", store, market_reference=(7000, "agmarknet", "2026-01-24"))
    assert await again.start(wait_s=0)
    await again.submit(orders(1, "mr2"))
    newer = ShardService(REGION, "cotton", store, market_reference=(7300, "agmarknet", "2026-01-31"))
    assert await newer.start(wait_s=0)
    await newer.submit(orders(1, "mr3"))
    kinds = [r[1] for r in await store.read_events(svc.shard_id, 0, 100)]
    assert kinds.count("MARKET_REFERENCE") == 2
    assert newer.info()["price_band"]["reference_paise_per_kg"] == 7300
