"""Regions: a replayed Telangana row and an API order with IN-TS meet in one shard; IN-TG is an alias
stored as IN-TS; migration 0006 merges shards keyed by old codes into the current ones, gap-free."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import psycopg2
import pytest

from actors.core.commands import PlaceOrder
from actors.core.engine import ShardEngine
from actors.core.events import Event, payload_to_json
from persistence.agmarknet import read_file
from tests.conftest import create_database, drop_database
from tests.integration.conftest import assert_gap_free, db_events, db_rows, replay, wait_projected
from tests.integration.gateway_server import Gateway

pytestmark = pytest.mark.integration

COTTON = Path(__file__).resolve().parents[2] / "data" / "agmarknet" / "trinetra_cotton_2025-11_2026-01.csv"


def _telangana_sell_order() -> dict:
    """The replay's availability for the first Telangana row of the real cotton file."""
    from gateway.replay.locations import Locator, load_cities
    from gateway.replay.plan import build_plan
    from gateway.replay.quality import load_hvi

    rows, _ = read_file(COTTON)
    row = next(r for r in rows if r.state == "Telangana")
    plan = build_plan([row], Locator.load(), load_cities(), load_hvi())
    ((_, sells, _),) = plan.days
    body = dict(sells[0].body)
    body.pop("side")
    return body


def test_replayed_telangana_row_meets_an_api_order_sent_as_in_ts(gw: Gateway, pg_dsn: str) -> None:
    sell = _telangana_sell_order()
    assert sell["location"]["region"] == "IN-TS"
    seller = gw.party("S-TS", ["seller"], kyc_status="VERIFIED")
    buyer = gw.party("B-TS", ["buyer"], kyc_status="VERIFIED")
    buyer_old = gw.party("B-TG", ["buyer"], kyc_status="VERIFIED")
    loc = {k: sell["location"][k] for k in ("lat", "lon")}
    with gw.client(seller) as s, gw.client(buyer) as b, gw.client(buyer_old) as b_old:
        r = s.post("/v1/orders/availabilities", json=sell)
        assert r.status_code == 201, r.text
        placed = r.json()
        assert placed["shard_id"] == "IN-TS.cotton"
        want = {
            "commodity": "cotton",
            "quantity": {"value": 100, "unit": "kg"},
            "max_price_paise_per_kg": sell["price_paise_per_kg"],
            "intent": "DIRECT_BUY",
        }
        r = b.post(
            "/v1/orders/requirements",
            json={**want, "client_order_id": "ts-1", "location": {**loc, "region": "IN-TS"}},
        )
        assert r.status_code == 201, r.text
        bought = r.json()
        assert bought["shard_id"] == "IN-TS.cotton"
        (alloc,) = bought["allocations"]
        assert alloc["sell_order_id"] == placed["order_id"] and alloc["quantity_kg"] == 100
        assert alloc["price"] == sell["price_paise_per_kg"]
        # the superseded code is an alias: same shard, stored as the current code
        r = b_old.post(
            "/v1/orders/requirements",
            json={**want, "client_order_id": "tg-1", "location": {**loc, "region": "IN-TG"}},
        )
        assert r.status_code == 201, r.text
        old = r.json()
        assert old["shard_id"] == "IN-TS.cotton" and old["allocations"][0]["quantity_kg"] == 100
        assert b_old.get(f"/v1/orders/{old['order_id']}").json()["region"] == "IN-TS"
    wait_projected(pg_dsn, "IN-TS.cotton")
    rows = db_rows(pg_dsn, "SELECT DISTINCT region FROM orders WHERE shard_id = 'IN-TS.cotton'")
    assert rows == [{"region": "IN-TS"}]


# --- migration 0006 ------------------------------------------------------------------------------


def _order(coid: str, party: str, side: str, price: int, kg: int) -> PlaceOrder:
    return PlaceOrder(
        party_id=party,
        client_order_id=coid,
        side=side,
        commodity="cotton",
        quantity_kg=kg,
        price=price,
        lat=17.4,
        lon=78.5,
        region="IN-TS",
        ts=1_700_000_000_000 + len(coid),
    )


def _events(commands: list[PlaceOrder]) -> list[Event]:
    eng = ShardEngine("IN-TS", "cotton", profile="price_time")
    return eng.process(commands).events


def _as_legacy(events: list[Event]) -> list[Event]:
    """The same facts as a shard keyed by the old code would have recorded them."""
    out = []
    for e in events:
        text = payload_to_json(e.payload).replace("IN-TS", "IN-TG")
        out.append(Event(e.seq, e.type, e.ts, json.loads(text), e.schema_version))
    return out


def _insert(conn: psycopg2.extensions.connection, shard_id: str, events: list[Event]) -> None:
    with conn.cursor() as cur:
        for e in events:
            cur.execute(
                "INSERT INTO events (shard_id, seq, type, schema_version, payload, ts)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (shard_id, e.seq, e.type, e.schema_version, payload_to_json(e.payload), e.ts),
            )
        region, _, commodity = shard_id.partition(".")
        cur.execute(
            "INSERT INTO shards (shard_id, region, commodity) VALUES (%s, %s, %s)",
            (shard_id, region, commodity),
        )
        cur.execute("INSERT INTO snapshots (shard_id, seq, state) VALUES (%s, 1, '{}')", (shard_id,))


def test_migration_merges_old_code_shards_gap_free() -> None:
    from persistence.migrate import apply_migrations, discover

    name, dsn = create_database()
    try:
        before = [m for m in discover() if m.version < 6]
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for m in before:
                cur.execute(m.sql())
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name)
                )
        legacy = _as_legacy(
            _events([_order("old-s", "S1", "SELL", 7000, 5000), _order("old-b", "B1", "BUY", 7100, 2000)])
        )
        current = _events([_order("new-s", "S2", "SELL", 7050, 3000)])
        _insert(conn, "IN-TG.cotton", legacy)
        _insert(conn, "IN-TS.cotton", current)
        conn.commit()
        conn.close()

        assert apply_migrations(dsn) == [m.name for m in discover() if m.version >= 6]

        merged = db_events(dsn, "IN-TS.cotton")
        assert db_events(dsn, "IN-TG.cotton") == []
        assert_gap_free(merged)
        assert len(merged) == len(current) + len(legacy)
        assert [e.type for e in merged] == [e.type for e in current] + [e.type for e in legacy]
        assert [e.payload for e in merged[: len(current)]] == [e.payload for e in current]
        accepted = [msgspec.to_builtins(e.payload)["order"] for e in merged if e.type == "ORDER_ACCEPTED"]
        assert {o["region"] for o in accepted} == {"IN-TS"}
        assert {o["client_order_id"] for o in accepted} == {"new-s", "old-s", "old-b"}
        # the merged log recovers: both books, the legacy fill intact (2,000 kg at the resting 7,000)
        eng = replay("IN-TS", "cotton", merged)
        legacy_alloc = next(e for e in merged if e.type == "ALLOCATED")
        assert legacy_alloc.payload.quantity_kg == 2000 and legacy_alloc.payload.price == 7000
        old_sell = eng.get_order(legacy_alloc.payload.sell_order_id)
        assert old_sell is not None and old_sell["open_kg"] == 3000
        assert db_rows(dsn, "SELECT shard_id FROM shards ORDER BY shard_id") == [{"shard_id": "IN-TS.cotton"}]
        assert db_rows(dsn, "SELECT count(*) AS n FROM snapshots") == [{"n": 0}]
    finally:
        drop_database(name)
