"""Webhooks, the pure part: which events a category names, whom an event concerns, the stable
message id, the message body and the endpoint URL rule (docs/webhooks.md).

- :data:`CATEGORY_TYPES` is the one table from webhook category to event type names
  (``/work/briefs/settlement-interface.md`` fixes it: allocation = ALLOCATED, CONFIRMED of the shard
  streams; the others are the settlement host's types). Type names are text so that events of any
  stream are handled alike: a settlement event flows as soon as a row of its type is committed.
- :func:`parties_of`: an event concerns the parties named ``buyer_id`` and ``seller_id`` of its
  payload (the same rule for shard and settlement events).
- :func:`message_id`: ``msg_`` + 32 hex digits of sha256 over ``(stream, seq, endpoint)``: the same
  for every attempt and every redelivery of that event to that endpoint, so a receiver dedupes on the
  ``webhook-id`` header (Standard Webhooks, "webhook-id").
- :func:`message_body`: ``{"type", "timestamp", "data"}`` (Standard Webhooks "payload structure"):
  ``type`` the event type name, ``timestamp`` the event's command time in ISO 8601 UTC (from its
  epoch ms ``ts``), ``data`` the stream, seq, schema version, the categories and the payload.
- :func:`url_problem`: why an endpoint URL is refused, or None.

No clock, no I/O: the caller passes every time.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

#: category -> event type names it delivers (settlement-interface.md, "Webhook categories").
CATEGORY_TYPES: dict[str, tuple[str, ...]] = {
    "allocation": ("ALLOCATED", "CONFIRMED"),
    "contract": ("CONTRACT_OPENED", "CONTRACT_CANCELLED", "CONTRACT_DEFAULTED"),
    "delivery": ("DELIVERY_RECORDED",),
    "invoice": ("INVOICE_ISSUED", "INVOICE_PAID"),
    "payment": ("PAYMENT_RECEIVED",),
    "overdue": ("INVOICE_OVERDUE", "CONTRACT_DEFAULTED"),
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_TYPES)
#: every event type some category delivers
WEBHOOK_TYPES: frozenset[str] = frozenset(t for ts in CATEGORY_TYPES.values() for t in ts)
#: payload fields naming the parties an event concerns
PARTY_FIELDS: tuple[str, ...] = ("buyer_id", "seller_id")
#: hosts where plain http is allowed (tests and local receivers only)
LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_URL_LENGTH = 2048


def categories_of(event_type: str) -> tuple[str, ...]:
    """The categories that deliver ``event_type`` (empty for types no webhook carries), in
    :data:`CATEGORIES` order (CONTRACT_DEFAULTED is both ``contract`` and ``overdue``)."""
    return tuple(c for c, types in CATEGORY_TYPES.items() if event_type in types)


def parties_of(payload: Mapping[str, Any]) -> frozenset[str]:
    """The parties an event concerns: its payload's non-empty ``buyer_id`` and ``seller_id``."""
    return frozenset(str(payload[f]) for f in PARTY_FIELDS if payload.get(f))


def wants(
    endpoint_party: str, endpoint_categories: Iterable[str], event_type: str, payload: Mapping[str, Any]
) -> bool:
    """True when an endpoint of ``endpoint_party`` subscribed to ``endpoint_categories`` receives an
    event of ``event_type`` with ``payload``: its party is a party of the event and one of its
    categories delivers the type."""
    if endpoint_party not in parties_of(payload):
        return False
    return bool(set(categories_of(event_type)) & set(endpoint_categories))


def message_id(stream_id: str, seq: int, endpoint_id: str) -> str:
    """The Standard Webhooks ``webhook-id`` of event ``(stream_id, seq)`` sent to ``endpoint_id``:
    ``msg_<32 hex>``, stable across attempts, redeliveries and restarts."""
    digest = hashlib.sha256(f"{stream_id}\x1f{seq}\x1f{endpoint_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def iso_utc(epoch_ms: int) -> str:
    """``epoch_ms`` as ISO 8601 UTC with milliseconds, e.g. ``2025-11-10T06:30:00.000Z``."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def message_body(
    event_type: str, ts_ms: int, stream_id: str, seq: int, schema_version: int, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON object POSTed for one event (see the module docstring); ``ts_ms`` epoch ms."""
    return {
        "type": event_type,
        "timestamp": iso_utc(ts_ms),
        "data": {
            "stream": stream_id,
            "seq": seq,
            "schema_version": schema_version,
            "categories": list(categories_of(event_type)),
            "event": dict(payload),
        },
    }


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint, or None when it can.

    Rules (docs/webhooks.md, "Endpoint URLs"): absolute ``https://`` URL with a host; plain ``http://``
    only for the loopback hosts :data:`LOOPBACK_HOSTS`; no user name or password in the URL (a secret
    in a URL ends up in logs); no fragment; at most :data:`MAX_URL_LENGTH` characters; an IP-literal
    host must be a global address or loopback (no private, link-local, multicast or unspecified
    address: the server must not be turned against its own network)."""
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "no spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return "the scheme must be https (http only for 127.0.0.1, ::1 or localhost)"
    if not host:
        return "the URL needs a host"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "no credentials in the URL (authenticate the request by its signature)"
    if parts.fragment:
        return "no fragment (#...) in the URL"
    host = host.lower()
    loopback = host in LOOPBACK_HOSTS
    if scheme == "http" and not loopback:
        return "plain http is allowed only for 127.0.0.1, ::1 or localhost; use https"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback or ip.is_global:
        return None
    return f"the address {ip} is not a public address"
