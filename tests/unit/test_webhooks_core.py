"""The pure parts of the webhooks: the category table, party matching, message ids and bodies, the
URL rule; and the signing, backoff, secret sealing and replay redaction around them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from actors.core.webhooks import (
    CATEGORIES,
    WEBHOOK_TYPES,
    categories_of,
    message_body,
    message_id,
    parties_of,
    url_problem,
    wants,
)
from gateway.idempotency import redact_secrets
from gateway.webhooks.dispatcher import DispatchConfig, backoff, sign
from gateway.webhooks.secrets import SecretBox, new_secret


def test_category_table_is_the_settlement_interface() -> None:
    assert CATEGORIES == ("allocation", "contract", "delivery", "invoice", "payment", "overdue")
    assert categories_of("ALLOCATED") == categories_of("CONFIRMED") == ("allocation",)
    assert categories_of("CONTRACT_DEFAULTED") == ("contract", "overdue")
    assert categories_of("INVOICE_OVERDUE") == ("overdue",)
    assert categories_of("PAYMENT_RECEIVED") == ("payment",)
    assert categories_of("ORDER_ACCEPTED") == () and "RESERVED" not in WEBHOOK_TYPES
    assert {
        "ALLOCATED",
        "CONFIRMED",
        "CONTRACT_OPENED",
        "CONTRACT_CANCELLED",
        "CONTRACT_DEFAULTED",
        "DELIVERY_RECORDED",
        "INVOICE_ISSUED",
        "INVOICE_PAID",
        "PAYMENT_RECEIVED",
        "INVOICE_OVERDUE",
    } == WEBHOOK_TYPES


def test_an_endpoint_gets_events_of_its_party_and_categories_only() -> None:
    pl = {"buyer_id": "B", "seller_id": "S", "invoice_id": "INV-1"}
    assert parties_of(pl) == {"B", "S"} and parties_of({"party_id": "B"}) == frozenset()
    assert wants("B", ["invoice"], "INVOICE_ISSUED", pl) and wants("S", ["invoice"], "INVOICE_PAID", pl)
    assert not wants("X", list(CATEGORIES), "INVOICE_ISSUED", pl)
    assert not wants("B", ["payment"], "INVOICE_ISSUED", pl)
    assert not wants("B", list(CATEGORIES), "ORDER_ACCEPTED", pl)
    assert wants("B", ["overdue"], "CONTRACT_DEFAULTED", pl) and wants(
        "B", ["contract"], "CONTRACT_DEFAULTED", pl
    )


@given(st.text(min_size=1, max_size=30), st.integers(1, 2**40), st.text(min_size=1, max_size=30))
def test_message_ids_are_stable_and_distinct(stream: str, seq: int, endpoint: str) -> None:
    mid = message_id(stream, seq, endpoint)
    assert mid == message_id(stream, seq, endpoint) and mid.startswith("msg_") and len(mid) == 36
    assert mid != message_id(stream, seq + 1, endpoint)
    assert mid != message_id(stream, seq, endpoint + "x")
    assert mid != message_id(stream + "x", seq, endpoint)


def test_message_body_shape() -> None:
    b = message_body("INVOICE_ISSUED", 1_762_761_600_123, "settlement", 7, 1, {"amount": 5})
    assert b == {
        "type": "INVOICE_ISSUED",
        "timestamp": "2025-11-10T08:00:00.123Z",
        "data": {
            "stream": "settlement",
            "seq": 7,
            "schema_version": 1,
            "categories": ["invoice"],
            "event": {"amount": 5},
        },
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/td",
        "https://hooks.example.com:8443/td?x=1",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]:9000/hook",
        "https://8.8.8.8/hook",
        "https://127.0.0.2/hook",
    ],
)
def test_good_urls(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/hook", "plain http"),
        ("http://127.0.0.2/hook", "plain http"),
        ("https://u:p@example.com/", "credentials"),
        ("https://u@example.com/", "credentials"),
        ("ftp://example.com/", "scheme"),
        ("example.com/hook", "scheme"),
        ("https:///x", "host"),
        ("https://192.168.1.4/x", "not a public address"),
        ("https://169.254.169.254/latest", "not a public address"),
        ("https://[fe80::1]/x", "not a public address"),
        ("https://0.0.0.0/x", "not a public address"),
        ("https://example.com/a b", "spaces"),
        ("https://example.com:99999/", "Port"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com/" + "a" * 2100, "2048"),
    ],
)
def test_bad_urls(url: str, words: str) -> None:
    problem = url_problem(url)
    assert problem is not None and words in problem


def test_signatures_verify_with_each_live_secret() -> None:
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_") and old != new
    body = json.dumps(message_body("ALLOCATED", 0, "IN-GJ.cotton", 1, 1, {"buyer_id": "B"}))
    now = datetime.now(UTC)
    h = sign([new, old], "msg_1", now, body)
    assert h["webhook-timestamp"] == str(int(now.timestamp())) and h["webhook-id"] == "msg_1"
    assert len(h["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, h)["type"] == "ALLOCATED"
    assert Webhook(new).verify(body, h)["data"]["seq"] == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, h)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace("IN-GJ", "IN-MH"), h)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    delay = backoff(DispatchConfig(backoff_initial_s=5.0, backoff_max_s=300.0))
    for n, base in ((1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0)):
        for _ in range(50):
            assert base <= delay(n) <= base + 5.0
    assert all(delay(20) == 300.0 for _ in range(10))


def test_secrets_are_sealed_and_only_open_with_their_key() -> None:
    box, other = SecretBox(Fernet.generate_key()), SecretBox(Fernet.generate_key())
    s = new_secret()
    sealed = box.seal(s)
    assert s.encode() not in sealed and box.open(sealed) == s
    with pytest.raises(ValueError, match="another key"):
        other.open(sealed)


def test_idempotent_replays_never_hold_the_secret() -> None:
    body = json.dumps({"endpoint_id": "WH-1", "secret": "whsec_abc", "secret_shown_once": True}).encode()
    stored = json.loads(redact_secrets("application/json", body))
    assert stored == {"endpoint_id": "WH-1", "secret": None, "secret_shown_once": True}


# a host name label starts with a letter: all-digit names such as "0.0" are IPv4 shorthands (0.0.0.0)
_label = st.builds(
    str.__add__,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=11),
)
_host = st.lists(_label, min_size=2, max_size=4).map(".".join)
_path = st.lists(_label, max_size=3).map(lambda p: "/" + "/".join(p))


@given(_host, _path, st.sampled_from(["u", "u:p", ":p"]))
def test_credentials_and_plain_http_are_always_refused(host: str, path: str, cred: str) -> None:
    assert url_problem(f"https://{host}{path}") is None
    assert "credentials" in (url_problem(f"https://{cred}@{host}{path}") or "")
    assert "plain http" in (url_problem(f"http://{host}{path}") or "")
    assert url_problem(f"http://127.0.0.1:8080{path}") is None
