"""The one visibility rule and the idempotency store's secret redaction (pure functions)."""

from __future__ import annotations

import json

import pytest

from actors.core.visibility import visible_to
from gateway.idempotency import redact_secrets


@pytest.mark.parametrize(
    ("visibility", "viewer", "expected"),
    [
        ("PUBLIC", None, True),
        ("PUBLIC", "Y", True),
        ("PRIVATE", "X", True),  # on the allow-list
        ("PRIVATE", "S", True),  # its own party
        ("PRIVATE", "Y", False),
        ("PRIVATE", None, False),  # staff / anonymous
        ("SECRET", "Y", False),  # anything not PUBLIC counts as private
    ],
)
def test_visible_to(visibility: str, viewer: str | None, expected: bool) -> None:
    assert visible_to(visibility, frozenset({"X"}), "S", viewer) is expected


def test_redact_secrets_nulls_the_token() -> None:
    body = json.dumps({"key_id": "k1", "token": "td_k1_secret", "roles": ["buyer"]}).encode()
    stored = redact_secrets("application/json", body)
    assert "td_k1_secret" not in stored
    assert json.loads(stored) == {"key_id": "k1", "token": None, "roles": ["buyer"], "token_shown_once": True}


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b'{"order_id": "O-1"}'),
        ("application/json", b"[1, 2]"),
        ("application/json", b"not json"),
        ("text/plain", b'{"token": "t"}'),
    ],
)
def test_redact_secrets_leaves_other_bodies(ctype: str, body: bytes) -> None:
    assert redact_secrets(ctype, body) == body.decode()
