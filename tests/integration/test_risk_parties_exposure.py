"""Parties repository (PostgreSQL) and the Redis exposure store: atomic grants and rebuild."""

from __future__ import annotations

import threading

import asyncpg
import pytest
import redis
import redis.asyncio as aredis

from actors.core.risk.rules import Reason
from persistence.exposure import ExposureStore, rebuild_exposure
from persistence.migrate import apply_migrations
from persistence.parties import PartyExists, PartyNotFound, PartyRepository

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def migrated(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


async def test_party_crud_links_and_invalidation(migrated: str, redis_url: str, key_prefix: str) -> None:
    conn = await asyncpg.connect(migrated)
    r = aredis.Redis.from_url(redis_url)
    try:
        repo = PartyRepository(conn, r, key_prefix)
        a = await repo.create(
            party_id="A", role="buyer", kyc_status="verified", pan="abcde 1234f", mobile="+91 98765-43210"
        )
        assert (a.pan, a.mobile, a.version, a.kyc_status) == ("ABCDE1234F", "9876543210", 1, "VERIFIED")
        with pytest.raises(PartyExists):
            await repo.create(party_id="A")
        with pytest.raises(ValueError):
            await repo.create(party_id="X", pan="nope")
        await repo.create(party_id="B", role="seller", gstin="24ABCDE1234F1Z5")
        await repo.create(party_id="C", role="trader", mobile="09876543210")
        await repo.create(party_id="D", role="trader")
        await repo.create(party_id="E", role="trader", pan="ZZZZZ9999Z")
        await repo.link("A", "D")
        assert await repo.linked_parties("A") == {
            "B": (Reason.LINKED_PAN,),
            "C": (Reason.LINKED_MOBILE,),
            "D": (Reason.WASH_TRADE,),
        }
        v0 = int(await r.get(f"{key_prefix}parties:version") or 0)
        up = await repo.update("A", credit_limit=5_000_000, kyc_status="SUSPENDED")
        assert (up.credit_limit, up.kyc_status, up.version) == (5_000_000, "SUSPENDED", 3)
        assert int(await r.get(f"{key_prefix}parties:version") or 0) == v0 + 1
        with pytest.raises(PartyNotFound):
            await repo.update("nobody", name="x")
        with pytest.raises(ValueError):
            await repo.update("A", role="owner")
        assert (await repo.get("nobody")) is None
        assert set(await repo.get_many(["A", "B", "nobody"])) == {"A", "B"}
        assert [p.party_id for p in await repo.list(limit=2)] == ["A", "B"]
        assert [p.party_id for p in await repo.list(role="trader")] == ["C", "D", "E"]
        await repo.unlink("A", "D")
        assert "D" not in await repo.linked_parties("A")
    finally:
        await conn.close()
        await r.aclose()


def test_exposure_grants_never_exceed_limit_under_concurrency(redis_url: str, key_prefix: str) -> None:
    store = ExposureStore.from_url(redis_url, key_prefix)
    limit = 1_000_000
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        s = ExposureStore.from_url(redis_url, key_prefix)
        for _ in range(50):
            [(_, g)] = s.reserve([("buyer", 7_000, limit)])
            with lock:
                granted.append(g)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == limit  # 200 x 7000 asked, exactly the limit granted
    assert store.get(["buyer"]) == {"buyer": limit}
    # settle: used 3000 of a 7000 grant -> 4000 back; unlimited buyer's use is tracked
    store.settle({"buyer": 7_000}, {"buyer": 3_000, "free": 500})
    assert store.get(["buyer", "free"]) == {"buyer": limit - 4_000, "free": 500}
    store.release({"buyer": 10**12})
    assert store.get(["buyer"]) == {"buyer": 0}
    # two entries of one buyer in one call see each other
    assert store.reserve([("b2", 600, 1000), ("b2", 600, 1000), ("b3", 5, None)]) == [
        (0, 600),
        (600, 400),
        (0, 5),
    ]


async def test_rebuild_from_postgres(migrated: str, redis_url: str, key_prefix: str) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute(
            "INSERT INTO allocations (allocation_id, shard_id, seq, ts, buy_order_id, sell_order_id,"
            " buyer_id, seller_id, quantity_kg, price) VALUES"
            " ('A1', 's', 1, 0, 'BO1', 'SO1', 'buyer1', 'seller1', 1000, 7000),"
            " ('A2', 's', 2, 0, 'BO1', 'SO2', 'buyer1', 'seller2', 10, 7000)"
        )
        await conn.execute(
            "INSERT INTO orders (order_id, shard_id, party_id, client_order_id, side, commodity, region,"
            " quantity_kg, open_kg, price, status, last_seq, doc) VALUES"
            " ('BO2', 's', 'buyer2', 'c', 'BUY', 'cotton', 'IN-GJ', 100, 0, 7000, 'OPEN', 1, '{}')"
        )
        await conn.execute(
            "INSERT INTO reservations (reservation_id, shard_id, seq, buy_order_id, sell_order_id,"
            " quantity_kg, price, status) VALUES ('R1', 's', 3, 'BO2', 'SO9', 100, 7000, 'RESERVED'),"
            " ('R2', 's', 4, 'BO2', 'SO9', 100, 7000, 'RELEASED')"
        )
    finally:
        await conn.close()
    store = ExposureStore(redis.Redis.from_url(redis_url), key_prefix)
    store.adjust({"stale": 5})
    assert await rebuild_exposure(migrated, store) == 2
    assert store.get(["buyer1", "buyer2", "stale"]) == {"buyer1": 7_070_000, "buyer2": 700_000, "stale": 0}
