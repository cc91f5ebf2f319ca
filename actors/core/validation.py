"""Validation of commands before they touch the book. Every failure is a machine-readable reason code
and a human detail; nothing here raises on bad input.

Limits (sanity bounds, far beyond any physical trade): quantity <= 10^10 kg (10 Mt), price <= 10^8
paise/kg (Rs 10 lakh/kg), timestamps 0 <= ts < 2^53 ms, ids at most 128 characters.

Text (the second line of defence behind the gateway, issue 10 defect 1): every string of a command
(ids, party ids, allow-list and linked-party entries, city, district, quality parameter names, enum
strings, any other free text) must be free of control characters (Unicode category Cc, e.g. NUL,
which PostgreSQL cannot store), NFC-normalised, and within its bound in :data:`TEXT_BOUNDS`
(characters; :data:`DEFAULT_TEXT_LEN` for fields not listed). Failures are ``INVALID_TEXT``.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from typing import Any

from actors.core.commands import Intent, PlaceOrder, Side, Visibility
from actors.core.commodities import CommoditySpec

MAX_QUANTITY_KG = 10**10
MAX_PRICE = 10**8
MAX_TS = 2**53
MAX_ID_LEN = 128
MAX_DISTANCE_KM = 25_000.0
MAX_PLACE_LEN = 200  # city, district
DEFAULT_TEXT_LEN = 200
# Bounds in characters of a command's text fields (one place for all of them).
TEXT_BOUNDS: dict[str, int] = {
    "party_id": MAX_ID_LEN,
    "client_order_id": MAX_ID_LEN,
    "order_id": MAX_ID_LEN,
    "proposal_id": MAX_ID_LEN,
    "reservation_id": MAX_ID_LEN,
    "allow_list": MAX_ID_LEN,
    "linked_parties": MAX_ID_LEN,
    "city": MAX_PLACE_LEN,
    "district": MAX_PLACE_LEN,
    "commodity": 64,
    "region": 16,
    "quality": 64,
    "quality_ranges": 64,
    "quality_target": 64,
}

# Reason codes (stable; the API maps them to problem types).
INVALID_COMMAND = "INVALID_COMMAND"
INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
INVALID_PARTY = "INVALID_PARTY"
INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"
INVALID_SIDE = "INVALID_SIDE"
UNKNOWN_COMMODITY = "UNKNOWN_COMMODITY"
WRONG_SHARD = "WRONG_SHARD"
INVALID_QUANTITY = "INVALID_QUANTITY"
INVALID_PRICE = "INVALID_PRICE"
INVALID_LOCATION = "INVALID_LOCATION"
INVALID_DISTANCE = "INVALID_DISTANCE"
UNKNOWN_QUALITY_PARAMETER = "UNKNOWN_QUALITY_PARAMETER"
INVALID_QUALITY = "INVALID_QUALITY"
INVALID_VISIBILITY = "INVALID_VISIBILITY"
INVALID_MIN_QUANTITY = "INVALID_MIN_QUANTITY"
INVALID_VALID_UNTIL = "INVALID_VALID_UNTIL"
INVALID_INTENT = "INVALID_INTENT"
INVALID_PROFILE = "INVALID_PROFILE"
UNKNOWN_ORDER = "UNKNOWN_ORDER"
ORDER_CLOSED = "ORDER_CLOSED"
INVALID_AMEND = "INVALID_AMEND"
UNKNOWN_PROPOSAL = "UNKNOWN_PROPOSAL"
PROPOSAL_STALE = "PROPOSAL_STALE"
UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"
INVALID_HOLD = "INVALID_HOLD"
RISK_CREDIT_LIMIT = "RISK_CREDIT_LIMIT"
INVALID_TEXT = "INVALID_TEXT"
SHARD_HALTED = "SHARD_HALTED"  # market controls (docs/matching.md): the shard is halted
PRICE_OUT_OF_BAND = "PRICE_OUT_OF_BAND"  # the price is outside the shard's price band
INVALID_BAND = "INVALID_BAND"
INVALID_REFERENCE = "INVALID_REFERENCE"
INTERNAL_ERROR = "INTERNAL_ERROR"

Problem = tuple[str, str]


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def text_ok(s: str, max_len: int = DEFAULT_TEXT_LEN) -> bool:
    """``s`` is at most ``max_len`` characters, NFC-normalised and has no control character (Cc)."""
    if len(s) > max_len:
        return False
    if s.isascii():
        return s.isprintable()  # for ASCII, only the Cc characters are not printable
    return unicodedata.is_normalized("NFC", s) and not any(unicodedata.category(c) == "Cc" for c in s)


def valid_id(v: Any) -> bool:
    """A non-empty id string of at most ``MAX_ID_LEN`` characters that passes :func:`text_ok`."""
    return (
        isinstance(v, str)
        and 0 < len(v) <= MAX_ID_LEN
        and ((v.isascii() and v.isprintable()) or text_ok(v, MAX_ID_LEN))
    )


def _text_bad(value: Any, bound: int) -> bool:
    """Whether a field value (a string, or a collection of strings / dict with string keys) holds a
    string failing :func:`text_ok`. Values of other types are not text (their own checks apply)."""
    if isinstance(value, str):
        items: Any = (value,)
    elif isinstance(value, dict):
        items = value.keys()
    elif isinstance(value, (tuple, list, set, frozenset)):
        items = value
    else:
        return False
    return any(isinstance(x, str) and not text_ok(x, bound) for x in items)


_TEXT_FIELDS_OF: dict[type, tuple[tuple[str, int], ...]] = {}


def _text_fields(cls: type) -> tuple[tuple[str, int], ...]:
    """``(field, bound)`` of the fields of a command dataclass whose annotation admits strings."""
    spec = _TEXT_FIELDS_OF.get(cls)
    if spec is None:
        fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
        spec = tuple(
            (f.name, TEXT_BOUNDS.get(f.name, DEFAULT_TEXT_LEN))
            for f in fields
            if "str" in str(f.type)  # str, Side | str, tuple[str, ...], dict[str, float]...
        )
        _TEXT_FIELDS_OF[cls] = spec
    return spec


def _text_problem(name: str, bound: int) -> Problem:
    return INVALID_TEXT, f"{name} must be NFC text of at most {bound} characters without control characters"


def _check_text_fields(cmd: Any) -> Problem | None:
    """Field-by-field :func:`check_text` (any object; missing fields count as None)."""
    for name, bound in _text_fields(type(cmd)):
        val = getattr(cmd, name, None)
        if val and _text_bad(val, bound):
            return _text_problem(name, bound)
    return None


_TEXT_CHECKERS: dict[type, Any] = {}


def _compile_text_checker(cls: type) -> Any:
    """A checker of ``cls``'s text fields with the loop unrolled (the place path runs it for every
    order): per field an ASCII-printable-within-bound fast test, then :func:`_text_bad`."""
    lines = ["def check(cmd):"]
    for name, bound in _text_fields(cls):
        lines.append(f"    v = cmd.{name}")
        lines.append(
            f"    if v and not (v.__class__ is str and v.isascii() and len(v) <= {bound} and v.isprintable())"
            f" and _text_bad(v, {bound}):"
        )
        lines.append(f"        return _text_problem({name!r}, {bound})")
    lines.append("    return None")
    scope: dict[str, Any] = {"_text_bad": _text_bad, "_text_problem": _text_problem}
    exec("\n".join(lines), scope)  # noqa: S102 - code built from the dataclass's own field names
    return scope["check"]


def check_text(cmd: Any) -> Problem | None:
    """First text field of a command (a dataclass) that fails :func:`text_ok`, or None."""
    cls = type(cmd)
    checker = _TEXT_CHECKERS.get(cls)
    if checker is None:
        checker = _TEXT_CHECKERS[cls] = (
            _compile_text_checker(cls) if dataclasses.is_dataclass(cls) else _check_text_fields
        )
    try:
        return checker(cmd)
    except AttributeError:  # a field was deleted from the instance
        return _check_text_fields(cmd)


def check_ts(ts: Any) -> Problem | None:
    if not is_int(ts) or not 0 <= ts < MAX_TS:
        return INVALID_TIMESTAMP, "ts must be an integer epoch-millisecond timestamp"
    return None


def check_quantity(q: Any, name: str = "quantity_kg") -> Problem | None:
    if not is_int(q) or not 0 < q <= MAX_QUANTITY_KG:
        return INVALID_QUANTITY, f"{name} must be an integer number of kg in 1..{MAX_QUANTITY_KG}"
    return None


def check_price(p: Any) -> Problem | None:
    if not is_int(p) or not 0 < p <= MAX_PRICE:
        return INVALID_PRICE, f"price must be an integer number of paise/kg in 1..{MAX_PRICE}"
    return None


def _range_ok(r: Any) -> bool:
    return isinstance(r, (tuple, list)) and len(r) == 2 and is_real(r[0]) and is_real(r[1]) and r[0] <= r[1]


def check_place(
    cmd: PlaceOrder, spec: CommoditySpec | None, shard_region: str, shard_commodity: str
) -> Problem | None:
    """First problem with a place command, or None when it may enter the book."""
    if (p := check_ts(cmd.ts)) is not None:
        return p
    if (p := check_text(cmd)) is not None:
        return p
    if not valid_id(cmd.party_id):
        return INVALID_PARTY, "party_id must be a non-empty string of at most 128 characters"
    if not valid_id(cmd.client_order_id):
        return INVALID_CLIENT_ORDER_ID, "client_order_id must be a non-empty string of at most 128 characters"
    if cmd.side not in (Side.BUY, Side.SELL):
        return INVALID_SIDE, "side must be BUY (requirement) or SELL (availability)"
    if spec is None:
        return UNKNOWN_COMMODITY, f"commodity {cmd.commodity!r} is not listed"
    if spec.name != shard_commodity or cmd.region != shard_region:
        return (
            WRONG_SHARD,
            f"order for {cmd.region}/{cmd.commodity} sent to shard {shard_region}/{shard_commodity}",
        )
    if (p := check_quantity(cmd.quantity_kg)) is not None:
        return p
    if (p := check_price(cmd.price)) is not None:
        return p
    if not (is_real(cmd.lat) and is_real(cmd.lon) and -90 <= cmd.lat <= 90 and -180 <= cmd.lon <= 180):
        return INVALID_LOCATION, "lat must be in [-90, 90] and lon in [-180, 180]"
    if cmd.max_distance_km is not None and not (
        is_real(cmd.max_distance_km) and 0 <= cmd.max_distance_km <= MAX_DISTANCE_KM
    ):
        return INVALID_DISTANCE, f"max_distance_km must be in [0, {MAX_DISTANCE_KM:.0f}]"
    for name in ("city", "district"):
        v = getattr(cmd, name)
        if v is not None and not (isinstance(v, str) and len(v) <= MAX_PLACE_LEN):
            return INVALID_LOCATION, f"{name} must be a string of at most {MAX_PLACE_LEN} characters"
    if (p := _check_quality(cmd, spec)) is not None:
        return p
    if cmd.visibility not in (Visibility.PUBLIC, Visibility.PRIVATE):
        return INVALID_VISIBILITY, "visibility must be PUBLIC or PRIVATE"
    if not isinstance(cmd.allow_list, (tuple, list, frozenset, set)) or not all(
        valid_id(x) for x in cmd.allow_list
    ):
        return INVALID_VISIBILITY, "allow_list must be a list of party ids"
    if not isinstance(cmd.linked_parties, (tuple, list, frozenset, set)) or not all(
        valid_id(x) for x in cmd.linked_parties
    ):
        return INVALID_PARTY, "linked_parties must be a list of party ids"
    if not is_int(cmd.min_order_kg) or not 0 <= cmd.min_order_kg <= cmd.quantity_kg:
        return INVALID_MIN_QUANTITY, "min_order_kg must be an integer in 0..quantity_kg"
    if not isinstance(cmd.allow_partial, bool):
        return INVALID_QUANTITY, "allow_partial must be a boolean"
    if cmd.valid_until is not None:
        if not is_int(cmd.valid_until) or not 0 <= cmd.valid_until < MAX_TS:
            return INVALID_VALID_UNTIL, "valid_until must be an epoch-millisecond timestamp"
        if cmd.valid_until <= cmd.ts:
            return INVALID_VALID_UNTIL, "valid_until is not after the order's timestamp"
    if cmd.side == Side.BUY:
        if cmd.intent is not None and cmd.intent not in (Intent.DIRECT_BUY, Intent.NEGOTIATE):
            return INVALID_INTENT, "intent must be DIRECT_BUY or NEGOTIATE"
    elif cmd.intent is not None:
        return INVALID_INTENT, "only requirements (BUY) carry an intent"
    if cmd.profile is not None and cmd.profile not in ("price_time", "quality"):
        return INVALID_PROFILE, "profile must be price_time or quality"
    return None


def _check_quality(cmd: PlaceOrder, spec: CommoditySpec) -> Problem | None:
    for attr in ("quality", "quality_ranges", "quality_target"):
        if not isinstance(getattr(cmd, attr), dict):
            return INVALID_QUALITY, f"{attr} must be an object"
    if cmd.side == Side.SELL and (cmd.quality_ranges or cmd.quality_target):
        return INVALID_QUALITY, "an availability states measured quality values, not ranges"
    if cmd.side == Side.BUY and cmd.quality:
        return INVALID_QUALITY, "a requirement states quality ranges, not measured values"
    if not (cmd.quality or cmd.quality_ranges or cmd.quality_target):
        return None
    names = spec.param_names
    for k, v in cmd.quality.items():
        if k not in names:
            return UNKNOWN_QUALITY_PARAMETER, f"{k!r} is not a quality parameter of {spec.name}"
        param = spec.param(k)
        assert param is not None
        if not is_real(v) or not param.low <= v <= param.high:
            return INVALID_QUALITY, f"{k} must be a number in [{param.low}, {param.high}] {param.unit}"
    for k, r in cmd.quality_ranges.items():
        if k not in names:
            return UNKNOWN_QUALITY_PARAMETER, f"{k!r} is not a quality parameter of {spec.name}"
        if not _range_ok(r):
            return INVALID_QUALITY, f"{k} range must be [low, high] with finite low <= high"
    for k, v in cmd.quality_target.items():
        if k not in cmd.quality_ranges:
            return INVALID_QUALITY, f"target for {k!r} needs a range for it"
        lo, hi = cmd.quality_ranges[k]
        if not is_real(v) or not lo <= v <= hi:
            return INVALID_QUALITY, f"target {k} must lie within its range"
    return None
