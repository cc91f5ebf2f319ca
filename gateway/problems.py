"""RFC 9457 problem details (``application/problem+json``) for every error the gateway returns.

Each error kind has a stable ``type`` URI ``urn:tradedesk:problem:<slug>``; clients branch on it, never
on ``title`` or ``detail`` text. A problem body is::

    {"type": "urn:tradedesk:problem:validation-error", "title": "Request validation failed",
     "status": 422, "detail": "...", "instance": "/v1/orders/availabilities",
     "errors": [{"loc": ["body", "quantity", "unit"], "msg": "...", "type": "literal_error"}]}

Extra members (``errors``, ``reason``, ``retry_after_s``...) are added per kind. No traceback, exception
text of an internal error, or stored secret ever reaches a client: unexpected exceptions become a
generic 500 ``internal-error`` with a correlation id that is also logged server-side.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tradedesk.gateway")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:tradedesk:problem:"

#: slug -> (HTTP status, title). The slug is the stable part of ``type``.
PROBLEMS: dict[str, tuple[int, str]] = {
    "validation-error": (422, "Request validation failed"),
    "malformed-request": (400, "Malformed request"),
    "unauthenticated": (401, "Missing or invalid API key"),
    "forbidden": (403, "Not allowed for this API key"),
    "not-found": (404, "Resource not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict with the current state"),
    "no-market": (409, "No market for this commodity in this region"),
    "shard-capacity": (503, "Shard capacity reached, retry later"),
    "idempotency-key-reused": (422, "Idempotency-Key reused with a different request"),
    "idempotency-in-progress": (409, "A request with this Idempotency-Key is still in progress"),
    "order-rejected": (422, "Command rejected by the shard"),
    "payload-too-large": (413, "Request too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "rate-limited": (429, "Rate limit exceeded"),
    "overloaded": (503, "Shard queue full, retry later"),
    "unavailable": (503, "A backing service is unavailable"),
    "outcome-unknown": (503, "Commit outcome unknown"),
    "projection-behind": (503, "Read model not yet at your last write, retry"),
    "overpayment": (409, "Payment exceeds the invoice's outstanding amount"),
    "settlement-rejected": (422, "Command rejected by the settlement host"),
    "internal-error": (500, "Internal error"),
}


def problem_type(slug: str) -> str:
    """The stable ``type`` URI of ``slug``."""
    return TYPE_PREFIX + slug


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document.

    ``extra`` members are merged into the body; ``headers`` (e.g. ``Retry-After``) into the response.
    """

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if slug not in PROBLEMS:
            raise ValueError(f"unknown problem slug {slug!r}")
        self.slug = slug
        self.status = status or PROBLEMS[slug][0]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail or slug)


def problem_body(
    slug: str, status: int, detail: str | None, instance: str | None, **extra: Any
) -> dict[str, Any]:
    """Build the JSON body of a problem document."""
    body: dict[str, Any] = {"type": problem_type(slug), "title": PROBLEMS[slug][1], "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    slug: str,
    detail: str | None = None,
    *,
    status: int | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A ``JSONResponse`` with media type ``application/problem+json``."""
    code = status or PROBLEMS[slug][0]
    return JSONResponse(
        problem_body(slug, code, detail, instance, **extra),
        status_code=code,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without echoing large inputs or non-JSON context objects."""
    out: list[dict[str, Any]] = []
    for e in errors:
        item: dict[str, Any] = {"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())]}
        item["msg"] = str(e.get("msg", ""))[:500]
        item["type"] = str(e.get("type", ""))
        out.append(item)
    return out


_STATUS_SLUG = {
    400: "malformed-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    503: "unavailable",
}


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.slug,
            exc.detail,
            status=exc.status,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _clean_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            pos = next((e["loc"][1] for e in errors if len(e["loc"]) > 1), None)
            return problem_response(
                "malformed-request", f"body is not valid JSON (at byte {pos})", instance=request.url.path
            )
        if isinstance(exc.body, bytes | bytearray) and exc.body:
            # FastAPI leaves the body as bytes when its Content-Type is not JSON
            return problem_response(
                "unsupported-media-type",
                "send the body as application/json",
                instance=request.url.path,
                headers={"Accept-Post": "application/json"} if request.method == "POST" else None,
            )
        fields = sorted(
            {".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in errors if e["loc"]}
        )
        detail = "invalid fields: " + ", ".join(fields) if fields else "invalid request"
        return problem_response("validation-error", detail, instance=request.url.path, errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _STATUS_SLUG.get(
            exc.status_code, "malformed-request" if exc.status_code < 500 else "unavailable"
        )
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            slug,
            detail,
            status=exc.status_code,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:16]
        log.error("internal error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
        return problem_response(
            "internal-error", f"reference {ref}", instance=request.url.path, reference=ref
        )

    async def on_backend(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "backing service error on %s %s: %s", request.method, request.url.path, type(exc).__name__
        )
        return problem_response(
            "unavailable",
            "a backing service did not answer; retry",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    from redis.exceptions import RedisError

    app.add_exception_handler(RedisError, on_backend)
    app.add_exception_handler(OSError, on_backend)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)


#: The optional header every POST honours (``gateway.idempotency``), as an OpenAPI parameter.
IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays of the same request return the stored response (Idempotent-Replayed: true); "
    "the same key with another request is 422 idempotency-key-reused, while the first runs 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def install_openapi(app: FastAPI) -> None:
    """Serve an OpenAPI document whose error responses (declared with the ``Problem`` model of
    ``gateway.responses``) have the media type ``application/problem+json``, as sent, and whose
    POST operations declare the optional ``Idempotency-Key`` header."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for item in spec.get("paths", {}).values():
                for method, op in item.items():
                    if method == "post":
                        op.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                    for code, resp in (op.get("responses") or {}).items():
                        content = resp.get("content") or {}
                        ref = str(content.get("application/json", {}).get("schema", {}).get("$ref", ""))
                        if code[:1] in "45" and ref.endswith("/Problem"):
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
