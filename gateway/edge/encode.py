"""Fast JSON for the hot routes: actor results straight to response bytes with orjson.

:func:`encode` gives the bytes ``json.dumps(to_jsonable(x), separators=(",", ":"), ensure_ascii=False)``
would (``gateway.schemas.to_jsonable``: non-finite floats become null, tuples and sets arrays,
objects with ``to_dict()`` or dataclass fields objects, str-enums their value, anything else
``str(x)``; dict keys strings), in one pass over the data instead of a copy and a second walk.
orjson serialises the plain types natively; dataclasses, datetimes and subclasses of str/int/float
are passed to :func:`_fallback`, which applies ``to_jsonable``'s rules. What orjson refuses (an int
beyond 64 bits, a dict key that is not a string) is encoded the slow way, with the same result.
:class:`FastJSON` is the response class. One difference: a plain ``Enum`` (not a str or int enum;
the core has none) is encoded by its value, not as ``str(member)``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from starlette.responses import Response

_OPTS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _fallback(x: Any) -> Any:
    """What ``to_jsonable`` makes of a value orjson does not serialise itself."""
    if isinstance(x, str):
        return str.__str__(x)  # a str subclass (StrEnum): its value
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): v for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return list(x)
    if hasattr(x, "to_dict"):
        return x.to_dict()
    if hasattr(x, "__dataclass_fields__"):
        return {f: getattr(x, f) for f in x.__dataclass_fields__}
    return str(x)


def encode(x: Any) -> bytes:
    """UTF-8 JSON of ``x`` (see the module doc for the rules); raises nothing for any value."""
    try:
        return orjson.dumps(x, default=_fallback, option=_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        from gateway.schemas import to_jsonable

        return json.dumps(to_jsonable(x), ensure_ascii=False, separators=(",", ":")).encode()


class FastJSON(Response):
    """``application/json`` response rendered by :func:`encode` (a drop-in for ``JSONResponse``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)
