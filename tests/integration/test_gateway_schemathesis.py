"""Property-based run of the OpenAPI schema against the real gateway: no request may produce a 5xx.

Bounded: a few examples per operation. Operations that would start or drain shard actors for
random regions (``POST /v1/admin/shards*``) are excluded, and generated order locations are pinned
to one region so the run creates a single shard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.gateway_server import Gateway

pytestmark = pytest.mark.integration

REGION = "IN-GJ"


@pytest.fixture(scope="module")
def gw(ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from tests.conftest import REDIS_URL

    g = Gateway(pg_dsn, REDIS_URL, tmp_path_factory.mktemp("keys"))
    g.trader = g.party("SCH-T", ["trader"], kyc_status="VERIFIED")  # type: ignore[attr-defined]
    yield g
    g.stop()


def _pin_region(body: Any) -> None:
    if isinstance(body, dict):
        loc = body.get("location")
        if isinstance(loc, dict) and "region" in loc:
            loc["region"] = REGION
        for o in body.get("orders") or []:
            _pin_region(o)


def test_no_server_errors(gw: Gateway) -> None:
    schema = schemathesis.openapi.from_url(f"{gw.base}/openapi.json").exclude(path_regex=r"^/v1/admin/shards")
    failures: list[str] = []
    calls = {"n": 0}
    for result in schema.get_all_operations():
        op = result.ok()  # type: ignore[union-attr]

        @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            _pin_region(case.body)
            token = gw.admin if case.path.startswith("/v1/admin") else gw.trader  # type: ignore[attr-defined]
            resp = case.call(base_url=gw.base, headers={"Authorization": f"Bearer {token}"})
            calls["n"] += 1
            if resp.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {resp.status_code}: {resp.text[:300]}"
                )

        run()
    assert calls["n"] > 50
    assert not failures, "\n".join(failures)
