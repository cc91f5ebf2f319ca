"""The gateway's OpenAPI document is honest without starting anything: every route has a response
model, its errors are problem+json with the Problem schema, and FastAPI's HTTPValidationError
(which the gateway never sends) is gone. Plus ``Allow`` on OPTIONS and 405, which the middleware
answers before any route runs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from actors.settings import Settings
from gateway.app import create_app


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(Settings(), "postgresql://unused/none", "redis://unused")


def test_every_operation_documents_models_and_problem_errors(app: Any) -> None:
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    ops = [(p, m, op) for p, item in spec["paths"].items() for m, op in item.items()]
    assert len(ops) >= 33
    for path, method, op in ops:
        responses = op["responses"]
        ok = [c for c in responses if c[0] == "2"]
        assert ok, (method, path)
        if path.startswith("/v1/"):
            assert {"401", "429", "503"} <= set(responses), (method, path)
        for code, resp in responses.items():
            content = resp.get("content", {})
            assert content, (method, path, code)
            for media, body in content.items():
                schema = body.get("schema")
                assert schema, (method, path, code, media)  # never an empty {} schema
                if code[0] == "2" and media == "application/json":
                    assert "$ref" in schema, (method, path, code)  # a named response model
            if code[0] == "4":
                assert content == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, code)
        if method == "post":
            assert any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])), path
    place = spec["paths"]["/v1/orders/availabilities"]["post"]["responses"]
    assert {"200", "201", "400", "403", "415", "422"} <= set(place)
    assert set(spec["paths"]["/v1/admin/parties/{party_id}"]) == {"get", "patch"}


def _call(app: Any, method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.request(method, path)

    return asyncio.run(go())


def test_options_and_405_allow_every_method_of_the_path(app: Any) -> None:
    r = _call(app, "OPTIONS", "/v1/admin/parties/P1")
    assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS, PATCH"
    r = _call(app, "PUT", "/v1/admin/parties/P1")
    assert r.status_code == 405 and r.headers["allow"] == "GET, OPTIONS, PATCH"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:tradedesk:problem:method-not-allowed"
    assert _call(app, "OPTIONS", "/v1/orders/O-IN-GJ.cotton-1/cancel").headers["allow"] == "OPTIONS, POST"
