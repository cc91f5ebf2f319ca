"""Issue 10 defect 1 through a real Ray shard actor on real PostgreSQL and Redis, bypassing the
gateway: a command PostgreSQL cannot store (NUL in a text field) is rejected alone and its 29 batch
neighbours commit; a commit PostgreSQL refuses rolls the shard back to its state before the batch
(from memory, not the whole log) and leaves no credit reserved in Redis."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg2
import pytest
import ray

from actors.core.commands import Intent, PlaceOrder
from actors.core.risk.types import RiskRequest, RiskVerdicts
from persistence.exposure import ExposureStore
from persistence.storable import UNSTORABLE
from tests.integration.conftest import db_events, kill_namespace, unique_region

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
BOOM = "boom-refused-by-trigger"
TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION td_test_refuse() RETURNS trigger AS $$
BEGIN
  IF position(convert_to('{BOOM}', 'UTF8') IN NEW.body) > 0 THEN  -- the MessagePack body holds the text as is
    RAISE EXCEPTION 'refused by test trigger';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS td_test_refuse ON events;
CREATE TRIGGER td_test_refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION td_test_refuse();
"""


class RedisCreditDecider:
    """Passes every pair; grants credit up to ``limit`` paise per buyer through the real Redis
    exposure store (the same Lua scripts as the risk pool), settles and releases there."""

    needs_queries = True

    def __init__(self, redis_url: str, prefix: str, limit: int) -> None:
        self.redis_url, self.prefix, self.limit = redis_url, prefix, limit
        self._store: ExposureStore | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}

    @property
    def store(self) -> ExposureStore:
        if self._store is None:
            self._store = ExposureStore.from_url(self.redis_url, self.prefix)
        return self._store

    def decide(self, request: RiskRequest) -> RiskVerdicts:
        entries = [(b, a, self.limit) for b, a in request.credit_requests.items()]
        grants = {b: g for (b, _, _), (_, g) in zip(entries, self.store.reserve(entries), strict=True)}
        return RiskVerdicts(credit_grants=grants, pass_all=True)

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
        self.store.settle(grants, used)

    def release(self, amounts: Mapping[str, int]) -> None:
        self.store.release(amounts)


@pytest.fixture(scope="module")
def credit_runtime(ray_session: None, pg_dsn: str) -> Iterator[tuple[Any, RedisCreditDecider]]:
    from actors.runtime import start_runtime
    from actors.settings import Settings
    from tests.conftest import REDIS_URL

    decider = RedisCreditDecider(REDIS_URL, f"tdtest:{uuid.uuid4().hex[:10]}:", 10**12)
    settings = Settings(ray_namespace=f"tdt-{uuid.uuid4().hex[:10]}", durability="sync", snapshot_every=40)
    rt = start_runtime(settings, pg_dsn, decider=decider)
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(TRIGGER_SQL)
    conn.close()
    yield rt, decider
    kill_namespace(rt.namespace)


def _order(region: str, i: int, side: str, party: str, **kw: Any) -> PlaceOrder:
    return PlaceOrder(
        ts=T0 + i,
        party_id=party,
        client_order_id=kw.pop("coid", f"{side[0]}{i}"),
        side=side,
        commodity="cotton",
        region=region,
        quantity_kg=1700,
        price=15_000,
        lat=22.3,
        lon=70.8,
        intent=Intent.DIRECT_BUY if side == "BUY" else None,
        **kw,
    )


def test_nul_in_one_order_never_fails_its_neighbours(credit_runtime: Any, pg_dsn: str) -> None:
    rt, _ = credit_runtime
    region = unique_region()
    h = rt.shard(region, "cotton")
    cmds = [_order(region, i, "SELL" if i % 2 else "BUY", f"party-{i % 7}") for i in range(31)]
    cmds[12] = dataclasses.replace(cmds[12], city="x\u0000")
    before = ray.get(h.info.remote())
    results = ray.get(h.submit.remote(cmds))
    bad = results[12]
    assert (bad["status"], bad["reason"], bad["client_order_id"]) == ("REJECTED", UNSTORABLE, "B12")
    assert "NUL" in bad["detail"]
    assert all(r["status"] != "REJECTED" for i, r in enumerate(results) if i != 12)
    events = db_events(pg_dsn, before["shard_id"])
    accepted = {e.payload.order.client_order_id for e in events if e.type == "ORDER_ACCEPTED"}
    assert accepted == {c.client_order_id for i, c in enumerate(cmds) if i != 12}
    after = ray.get(h.info.remote())
    assert after["failures"] == 0 and after["recoveries"] == before["recoveries"]  # no rebuild
    assert after["committed_seq"] == events[-1].seq == after["seq"]


def test_refused_commit_rolls_back_and_returns_credit(credit_runtime: Any, pg_dsn: str) -> None:
    rt, decider = credit_runtime
    region = unique_region()
    h = rt.shard(region, "cotton")
    sells = [_order(region, i, "SELL", f"seller-{i}") for i in range(10)]
    ray.get(h.submit.remote(sells))
    snap_before = ray.get(h.engine_snapshot.remote())
    buyers = [f"buyer-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    exposure_before = decider.store.get(buyers)
    assert set(exposure_before.values()) == {0}
    # direct buys that take the resting sells, and one order PostgreSQL refuses (test trigger)
    buys = [_order(region, 100 + i, "BUY", b) for i, b in enumerate(buyers)]
    boom = _order(region, 200, "SELL", "seller-x", coid=BOOM)
    with pytest.raises(Exception, match="nothing acknowledged") as info:
        ray.get(h.submit.remote([*buys, boom]))
    assert "ShardUnavailable" in type(info.value).__name__ + str(info.value)
    assert decider.store.get(buyers) == exposure_before  # no credit left reserved
    assert ray.get(h.engine_snapshot.remote()) == snap_before  # rolled back
    st = ray.get(h.info.remote())
    assert st["recovery_source"] in ("shadow", "memory") and st["failures"] == 1
    assert st["recovered_events"] <= st["committed_seq"] - st["last_snapshot_seq"]
    # the same buys without the refused order: filled, and now the credit is held
    results = ray.get(h.submit.remote(buys))
    assert all(len(r["allocations"]) == 1 for r in results)
    assert decider.store.get(buyers) == dict.fromkeys(buyers, 1700 * 15_000)
    assert db_events(pg_dsn, st["shard_id"])[-1].seq == ray.get(h.info.remote())["committed_seq"]
