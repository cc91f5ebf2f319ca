"""Payload codecs of the event log: typed payloads to and from MessagePack and JSON, and the
upgrade of payloads stored under an older schema version.

- MessagePack (:func:`payload_to_msgpack`, :func:`payload_from_msgpack`): the stored form, the
  ``events.body`` ``bytea`` column of PostgreSQL (payload fields as a map keyed by field name, so a
  field added with a default decodes old rows as is).
- JSON (:func:`payload_to_json`, :func:`payload_from_json`): the API and the Redis stream, and the
  ``events.payload`` JSONB column of rows written before migration 0010. The JSON object of a
  payload has exactly the Struct's fields, so both codecs carry the same data.

Each payload class carries its ``SCHEMA`` version; a payload stored under an older version is
upgraded by :data:`UPGRADES` before it is decoded, a newer one is refused (ValueError).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from actors.core.event_payloads import PAYLOAD_TYPES
from actors.core.payload import SCHEMA_VERSION, Payload

# (type, stored schema version) -> function turning that version's builtins into the next version's.
UPGRADES: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _upgrade(etype: str, data: dict[str, Any], version: int) -> dict[str, Any]:
    current = PAYLOAD_TYPES[etype].SCHEMA
    if version > current:
        raise ValueError(f"{etype} schema version {version} is newer than this code's {current}")
    while version < current:
        data = UPGRADES[(etype, version)](data)
        version += 1
    return data


def payload_from_builtins(etype: str, data: dict[str, Any], schema_version: int = SCHEMA_VERSION) -> Payload:
    """A payload dict (as in JSON) of event type ``etype`` stored under ``schema_version`` -> Struct."""
    if schema_version != PAYLOAD_TYPES[etype].SCHEMA:
        data = _upgrade(etype, data, schema_version)
    return msgspec.convert(data, PAYLOAD_TYPES[etype])


_json_encoder = msgspec.json.Encoder()
_json_decoders = {t: msgspec.json.Decoder(cls) for t, cls in PAYLOAD_TYPES.items()}


def payload_to_json(payload: Payload) -> str:
    """Payload -> compact JSON text (the API/stream form and the events table's JSONB column)."""
    return _json_encoder.encode(payload).decode("utf-8")


def payload_from_json(etype: str, data: str | bytes, schema_version: int = SCHEMA_VERSION) -> Payload:
    """JSON text of a payload of type ``etype`` -> Struct (older schema versions are upgraded)."""
    if schema_version == PAYLOAD_TYPES[etype].SCHEMA:
        return _json_decoders[etype].decode(data)
    return payload_from_builtins(etype, msgspec.json.decode(data), schema_version)


_mp_encoder = msgspec.msgpack.Encoder()
_mp_decoders = {t: msgspec.msgpack.Decoder(cls) for t, cls in PAYLOAD_TYPES.items()}


def payload_to_msgpack(payload: Payload) -> bytes:
    """Payload -> MessagePack bytes (fields as a map): the stored form (``events.body``)."""
    return _mp_encoder.encode(payload)


def payload_from_msgpack(etype: str, data: bytes, schema_version: int = SCHEMA_VERSION) -> Payload:
    """MessagePack bytes of a payload of type ``etype`` -> Struct (older schema versions upgraded)."""
    if schema_version == PAYLOAD_TYPES[etype].SCHEMA:
        return _mp_decoders[etype].decode(data)
    return payload_from_builtins(etype, msgspec.msgpack.decode(data), schema_version)


def msgpack_to_json(data: bytes) -> bytes:
    """MessagePack bytes of a payload -> the same payload as compact JSON bytes, without its type
    (the JSON equals :func:`payload_to_json` of the decoded payload: field order and values kept)."""
    return _json_encoder.encode(msgspec.msgpack.decode(data))
