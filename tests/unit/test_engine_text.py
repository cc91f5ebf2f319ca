"""Text fields of commands: the core rejects control characters, non-NFC text and overlong text in
every field (issue 10 defect 1, second line of defence) with INVALID_TEXT, alone in its batch."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from actors.core import commands as c
from actors.core import validation as v
from actors.core.engine import ShardEngine
from actors.core.events import CommandRejected, OrderRejected, payload_to_json
from tests.unit.core_builders import buy, oid, sell

BAD = "x\u0000"

PLACE_FIELDS: list[tuple[str, Any]] = [
    ("party_id", BAD),
    ("client_order_id", BAD),
    ("side", BAD),
    ("commodity", BAD),
    ("region", BAD),
    ("city", BAD),
    ("district", BAD),
    ("visibility", BAD),
    ("intent", BAD),
    ("profile", BAD),
    ("allow_list", ("C", BAD)),
    ("linked_parties", (BAD,)),
    ("quality_ranges", {BAD: (27.0, 29.0)}),
    ("quality_target", {BAD: 28.0}),
]


def _engine() -> ShardEngine:
    return ShardEngine("IN-GJ", "cotton", profile="price_time")


@pytest.mark.parametrize(("field", "value"), PLACE_FIELDS, ids=[f for f, _ in PLACE_FIELDS])
def test_a_control_character_in_any_place_field_is_invalid_text(field: str, value: Any) -> None:
    e = _engine()
    good = buy("b1", "C", 1000, 7000, 1)
    res = e.execute([replace(good, **{field: value}), buy("b2", "D", 500, 7000, 2)])
    assert [ev.type for ev in res.events] == ["ORDER_REJECTED", "ORDER_ACCEPTED"]
    rej = res.events[0].payload
    assert isinstance(rej, OrderRejected) and rej.reason == v.INVALID_TEXT
    assert res.results[0]["status"] == "REJECTED" and res.results[0]["reason"] == v.INVALID_TEXT
    assert res.results[1]["status"] == "ACCEPTED"  # its batch neighbour is not affected
    assert "\\u0000" not in payload_to_json(rej) and "\x00" not in payload_to_json(rej)
    assert rej.party_id == (None if field == "party_id" else "C")
    assert rej.client_order_id == (None if field == "client_order_id" else "b1")


def test_a_control_character_in_a_sellers_quality_name_is_invalid_text() -> None:
    res = _engine().execute([sell("s1", "A", 1000, 7000, 1, quality={BAD: 28.0})])
    assert res.events[0].payload.reason == v.INVALID_TEXT


@pytest.mark.parametrize(
    "text",
    ["Raj\u000akot", "Rajkot\u007f", "e\u0301", "\u0085x", "k" * (v.MAX_PLACE_LEN + 1)],
    ids=["newline", "DEL", "not-NFC", "C1-control", "too-long"],
)
def test_city_must_be_nfc_text_without_controls_within_its_bound(text: str) -> None:
    res = _engine().execute([sell("s1", "A", 1000, 7000, 1, city=text)])
    assert (res.events[0].type, res.events[0].payload.reason) == ("ORDER_REJECTED", v.INVALID_TEXT)


def test_nfc_non_ascii_text_at_its_bound_is_accepted() -> None:
    city = "\u0930\u093e\u091c\u0915\u094b\u091f"  # Rajkot in Devanagari, NFC
    district = "\u00e9" * v.MAX_PLACE_LEN
    res = _engine().execute([sell("s1", "A", 1000, 7000, 1, city=city, district=district)])
    assert res.events[0].type == "ORDER_ACCEPTED"
    assert res.events[0].payload.order.city == city


def test_an_overlong_client_order_id_is_invalid_text() -> None:
    res = _engine().execute([sell("c" * (v.MAX_ID_LEN + 1), "A", 1000, 7000, 1)])
    assert res.events[0].payload == OrderRejected(
        "A",
        None,
        v.INVALID_TEXT,
        "client_order_id must be NFC text of at most 128 characters without control characters",
    )


def _other_commands() -> list[tuple[str, Any]]:
    return [
        ("cancel-party", c.CancelOrder(5, BAD, oid(1))),
        ("cancel-order", c.CancelOrder(5, "A", oid(1) + BAD)),
        ("amend-order", c.AmendOrder(5, "A", BAD, quantity_kg=10)),
        ("accept-party", c.AcceptProposal(5, BAD, "P-IN-GJ.cotton-3")),
        ("accept-proposal", c.AcceptProposal(5, "C", BAD)),
        ("reject-proposal", c.RejectProposal(5, "C", BAD)),
        ("confirm-reservation", c.ConfirmReservation(5, "A", BAD)),
        ("release-party", c.ReleaseReservation(5, BAD, "R-IN-GJ.cotton-4")),
    ]


@pytest.mark.parametrize(("name", "cmd"), _other_commands(), ids=[n for n, _ in _other_commands()])
def test_a_control_character_in_other_commands_is_invalid_text(name: str, cmd: Any) -> None:
    e = _engine()
    e.execute([sell("s1", "A", 1000, 7000, 1)])
    res = e.execute([cmd])
    rej = res.events[0].payload
    assert isinstance(rej, CommandRejected) and rej.reason == v.INVALID_TEXT
    assert rej.party_id in (None, "A", "C") and rej.target != BAD
    assert "\x00" not in payload_to_json(rej) and "\\u0000" not in payload_to_json(rej)
    assert e.orders[oid(1)].open_kg == 1000


def test_search_with_bad_text_is_rejected() -> None:
    got = _engine().search(sell("q", "A", 1000, 7000, 1, city=BAD))
    assert (got["status"], got["reason"]) == ("REJECTED", v.INVALID_TEXT)
