"""The base of every response model (:class:`Out`) and the error responses each route declares.

Errors are ``application/problem+json`` (RFC 9457) bodies described by :class:`Problem`;
:func:`errors` builds a route's ``responses=`` declaration from the status codes it really
answers (``gateway.problems.install_openapi`` gives them the problem+json media type).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    """Base of every response model: extra members pass through unchanged."""

    model_config = ConfigDict(extra="allow")


# --- problems ------------------------------------------------------------------------------------


class FieldError(Out):
    """One invalid field of a ``validation-error``: ``loc`` path (``["body", "quantity", "unit"]``)."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(Out):
    """RFC 9457 problem details. Clients branch on ``type`` (``urn:tradedesk:problem:<slug>``)."""

    type: str = Field(description="urn:tradedesk:problem:<slug>, stable")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="request path")
    errors: list[FieldError] | None = Field(None, description="validation-error: each bad field")
    reason: str | None = Field(None, description="order-rejected/conflict/not-found: the core's code")
    retry_after_s: int | None = Field(None, description="rate-limited/overloaded: seconds to wait")


_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: invalid JSON, invalid cursor or Idempotency-Key (malformed-request)",
    401: "Missing, unknown or revoked API key (unauthenticated)",
    403: "This API key's roles may not do this (forbidden)",
    404: "No such resource, or not yours (not-found)",
    409: "Conflict with the current state, or the same Idempotency-Key still running",
    413: "Request body too large (payload-too-large)",
    415: "The body is not application/json (unsupported-media-type)",
    422: "Invalid fields (validation-error with errors[]), rejected command, reused Idempotency-Key",
    429: "Rate limit exceeded (rate-limited, Retry-After)",
    503: "Shard queue full, a backing service unavailable, or the read model not yet at the caller's last "
    "write (overloaded/unavailable/projection-behind, Retry-After)",
}

#: Errors any authenticated route can answer: no/invalid key, rate limit, Redis/PostgreSQL down.
AUTHED = (401, 429, 503)
#: Errors of a route that takes a JSON body and honours ``Idempotency-Key`` (every POST with a body).
BODY = (400, 409, 413, 415, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status code with the :class:`Problem` model."""
    return {c: {"model": Problem, "description": _DESCRIPTIONS[c]} for c in sorted(set(codes))}
