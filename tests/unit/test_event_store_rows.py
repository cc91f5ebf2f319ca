"""Pure parts of the event store: rows built from engine events, snapshot encoding, migration
discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.core.commands import PlaceOrder
from actors.core.engine import ShardEngine
from persistence import event_store as es
from persistence.migrate import discover

T = 1_767_225_600_000


def _place(coid, side, qty, price, party, intent=None):
    return PlaceOrder(
        ts=T,
        party_id=party,
        client_order_id=coid,
        side=side,
        commodity="cotton",
        region="IN-GJ",
        quantity_kg=qty,
        price=price,
        lat=22.3,
        lon=70.8,
        intent=intent,
    )


def test_batch_rows_hold_the_events_only():
    eng = ShardEngine("IN-GJ", "cotton", "price_time")
    res = eng.process([_place("s1", "SELL", 1700, 15000, "S"), _place("b1", "BUY", 1000, 15100, "B")])
    rows = es.batch_rows(eng.shard_id, res.events)
    assert [r[1] for r in rows.events] == [e.seq for e in res.events] == [1, 2, 3]
    assert [r[2] for r in rows.events] == ["ORDER_ACCEPTED", "ORDER_ACCEPTED", "ALLOCATED"]
    assert all(len(r) == len(es.EVENT_COLS) for r in rows.events)
    assert rows.last_seq == 3
    assert [es.decode_event(es.event_row(r)) for r in rows.events] == res.events


def test_snapshot_codec_roundtrip():
    eng = ShardEngine("IN-GJ", "cotton")
    eng.process([_place("s1", "SELL", 1700, 15000, "S")])
    snap = eng.snapshot()
    blob = es.encode_snapshot(snap)
    assert isinstance(blob, bytes)
    assert es.decode_snapshot(blob) == snap
    assert es.decode_snapshot(json.dumps(snap)) == snap


def test_migrations_discovered_in_order(tmp_path: Path):
    names = [m.name for m in discover()]
    assert names[0] == "0001_core" and names == sorted(names)
    (tmp_path / "0007_x.sql").write_text("SELECT 1;")
    (tmp_path / "0006_y.sql").write_text("SELECT 1;")
    (tmp_path / "notes.txt").write_text("")
    assert [m.version for m in discover(tmp_path)] == [6, 7]
    (tmp_path / "0006_z.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError):
        discover(tmp_path)
