"""Typed event payloads: one Struct per event type, JSON and MessagePack codecs, schema versions, and
the payload table of docs/contracts.md generated from the Structs."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from actors.core import commands as c
from actors.core import events as ev
from actors.core.engine import ShardEngine
from tests.unit.core_builders import buy, oid, sell

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def _every_event_type() -> list[ev.Event]:
    """A session that records each of the 17 event types at least once."""
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    out: list[ev.Event] = []
    out += e.execute([sell("s1", "A", 1000, 7000, 1, valid_until=500), sell("bad", "A", 0, 7000, 2)]).events
    res = e.execute([buy("b1", "C", 300, 7000, 3, intent="NEGOTIATE")])  # PROPOSED P-4
    out += res.events
    out += e.execute([buy("b2", "D", 200, 7000, 5)]).events  # ALLOCATED
    out += e.execute([buy("b3", "E", 100, 7000, 7, intent="NEGOTIATE")]).events  # PROPOSED P-8
    res = e.execute([c.AcceptProposal(9, "C", "P-IN-GJ.cotton-4")])  # RESERVED R-9
    out += res.events
    out += e.execute([c.ConfirmReservation(10, "A", "R-IN-GJ.cotton-9")]).events  # CONFIRMED
    out += e.execute([c.RejectProposal(11, "E", "P-IN-GJ.cotton-8")]).events
    out += e.execute([buy("b4", "F", 100, 7000, 12, intent="NEGOTIATE")]).events  # PROPOSED P-13
    out += e.execute([c.AcceptProposal(14, "F", "P-IN-GJ.cotton-13")]).events  # RESERVED R-14
    out += e.execute([c.ReleaseReservation(16, "F", "R-IN-GJ.cotton-14")]).events  # RELEASED
    out += e.execute([c.AmendOrder(17, "A", oid(1), quantity_kg=900)]).events  # AMENDED
    out += e.execute([c.CancelOrder(18, "C", "nope")]).events  # COMMAND_REJECTED
    out += e.execute([buy("b5", "G", 50, 6000, 19, valid_until=30)]).events
    out += e.execute([c.CancelOrder(20, "G", "O-IN-GJ.cotton-18")]).events  # CANCELLED
    out += e.execute([c.Tick(600)]).events  # EXPIRED (s1)
    out += e.execute([c.SetMarketReference(700, 7000, "agmarknet", "2026-01-30")]).events
    out += e.execute([c.SetPriceBand(701, "ops", "percent", 1500)]).events  # PRICE_BAND_SET
    out += e.execute([c.HaltShard(702, "ops", "test")]).events  # SHARD_HALTED
    out += e.execute([c.ResumeShard(703, "ops")]).events  # SHARD_RESUMED
    out += e.execute([c.KillSwitch(704, "ops", "D")]).events  # KILL_SWITCH (nothing open)
    return out


def test_every_event_type_has_its_typed_payload() -> None:
    events = _every_event_type()
    assert {e.type for e in events} == ev.EVENT_TYPES
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for e in events:
        assert type(e.payload) is ev.PAYLOAD_TYPES[e.type], e.type
        assert e.schema_version == ev.PAYLOAD_TYPES[e.type].SCHEMA == 1
    by_type = {e.type: e.payload for e in events}
    rel = by_type["RELEASED"]
    assert msgspec.structs.astuple(rel) == (
        "R-IN-GJ.cotton-14",
        "O-IN-GJ.cotton-12",
        oid(1),
        "F",
        "A",
        100,
        7000,
        "BUYER_RELEASED",
    )
    assert by_type["AMENDED"] == ev.Amended(oid(1), 900, 400, 7000, False, 1)
    assert by_type["CONFIRMED"].reservation_id == "R-IN-GJ.cotton-9"
    assert by_type["CONFIRMED"].taker_command == "confirm"
    assert by_type["ORDER_REJECTED"].reason == "INVALID_QUANTITY"


def test_json_codec_round_trips_and_keeps_the_stored_shape() -> None:
    for e in _every_event_type():
        text = ev.payload_to_json(e.payload)
        assert set(json.loads(text)) == set(e.payload.__struct_fields__)
        assert ev.payload_from_json(e.type, text) == e.payload
        row = ev.event_from_row(e.seq, e.type, e.ts, 1, text)
        assert row == e
        assert ev.Event.from_dict(e.to_dict()) == e


def test_rows_written_before_the_payloads_were_typed_still_decode() -> None:
    """Schema-version-1 JSON exactly as the engine wrote it with dicts (key order differs)."""
    old_released = (
        '{"reservation_id":"R-X-9","reason":"HOLD_EXPIRED","buy_order_id":"O-X-2",'
        '"sell_order_id":"O-X-1","buyer_id":"C","seller_id":"A","quantity_kg":600,"price":7000}'
    )
    got = ev.event_from_row(10, "RELEASED", 110, 1, old_released)
    assert got.payload == ev.Released(
        reservation_id="R-X-9",
        buy_order_id="O-X-2",
        sell_order_id="O-X-1",
        buyer_id="C",
        seller_id="A",
        quantity_kg=600,
        price=7000,
        reason="HOLD_EXPIRED",
    )
    accepted = ev.Event(1, "ORDER_ACCEPTED", 1, {"order": _old_order_dict()}, 1)
    assert accepted.payload.order.allow_list == ("C",)
    assert accepted.payload.order.quality_ranges == {}


def _old_order_dict() -> dict[str, object]:
    eng = ShardEngine("IN-GJ", "cotton")
    eng.execute([sell("s1", "A", 1000, 7000, 1, visibility="PRIVATE", allow_list=("C",))])
    d = eng.get_order(oid(1))
    assert d is not None and d["allow_list"] == ["C"]
    return d


def test_msgpack_codec_round_trips_and_is_compact() -> None:
    events = _every_event_type()
    blob = ev.encode_events(events)
    assert ev.decode_events(blob) == events
    as_json = sum(len(ev.payload_to_json(e.payload)) for e in events)
    assert len(blob) < as_json
    with pytest.raises(msgspec.DecodeError):
        ev.decode_events(blob[:-3])


def test_schema_versions_upgrade_older_rows_and_refuse_newer(monkeypatch: pytest.MonkeyPatch) -> None:
    text = '{"order_id":"O-X-1","cancelled_kg":5}'
    with pytest.raises(ValueError, match="newer"):
        ev.event_from_row(1, "CANCELLED", 1, 2, text)
    monkeypatch.setattr(ev.Cancelled, "SCHEMA", 2)
    monkeypatch.setitem(
        ev.UPGRADES, ("CANCELLED", 1), lambda d: {**d, "cancelled_kg": d["cancelled_kg"] * 10}
    )
    got = ev.event_from_row(1, "CANCELLED", 1, 1, text)
    assert (got.payload, got.schema_version) == (ev.Cancelled("O-X-1", 50), 2)
    blob = ev.encode_events([ev.Event(1, "CANCELLED", 1, ev.Cancelled("O-X-1", 5), 1)])
    assert ev.decode_events(blob)[0].payload == ev.Cancelled("O-X-1", 50)


def test_a_bad_payload_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        ev.payload_from_json("CANCELLED", '{"order_id":"O-X-1","cancelled_kg":"5"}')
    with pytest.raises(KeyError):
        ev.Event(1, "NOT_A_TYPE", 1, {})


def test_docs_payload_table_is_generated_from_the_structs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- payload-table:begin -->", "<!-- payload-table:end -->"
    assert begin in text and end in text
    table = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert table == ev.payload_table()
