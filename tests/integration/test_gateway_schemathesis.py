"""The OpenAPI document is the contract: schemathesis runs every operation of the real gateway with
each role's key and checks each response (no 5xx, a documented status code, a documented content
type, a body matching the documented schema). Plus the HTTP semantics the document promises:
415 for a non-JSON body, 400 for broken JSON, ``Allow`` with every method of a path, and party
links that must name other, existing parties.

Bounded and reproducible: ``TRADEDESK_SCHEMATHESIS_EXAMPLES`` (default 12) valid and
``TRADEDESK_SCHEMATHESIS_NEGATIVE_EXAMPLES`` (default 5) invalid examples per operation and role,
derandomized. Order bodies are pinned to one shard (IN-GJ cotton), so the run starts one
shard actor; every other case keeps a seeded id (an order, a proposal, a reservation, an
allocation, a party, IN-GJ/cotton market data) so the success paths are checked as well as the
404s. Key ids and shard ids are never substituted: revoking the run's own keys or draining its
shard would only test itself."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from actors.core.commodities import get_spec
from tests.integration.gateway_server import LOC, Gateway, availability, requirement

pytestmark = pytest.mark.integration

REGION = "IN-GJ"
COMMODITY = "cotton"
ROLES = ("seller", "buyer", "trader", "operator", "admin", "data_scientist")
EXAMPLES = int(os.environ.get("TRADEDESK_SCHEMATHESIS_EXAMPLES", "12"))
NEGATIVE_EXAMPLES = int(os.environ.get("TRADEDESK_SCHEMATHESIS_NEGATIVE_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
PT = "urn:tradedesk:problem:"
COTTON_PARAMS = set(get_spec(COMMODITY).param_names)


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, str]:
    """One key per role: party keys for the trading roles, staff keys without a party."""
    out = {
        "seller": gw.party("SCH-S", ["seller"], kyc_status="VERIFIED"),
        "buyer": gw.party("SCH-B", ["buyer"], kyc_status="VERIFIED"),
        "trader": gw.party("SCH-T", ["trader"], kyc_status="VERIFIED"),
        "admin": gw.admin,
    }
    with gw.client(gw.admin) as c:
        for role in ("operator", "data_scientist"):
            r = c.post("/v1/admin/api-keys", json={"roles": [role], "label": "schemathesis"})
            assert r.status_code == 201, r.text
            out[role] = r.json()["token"]
        assert c.post("/v1/admin/parties", json={"party_id": "SCH-X"}).status_code == 201
    return out


@pytest.fixture(scope="module")
def seeded(gw: Gateway, keys: dict[str, str]) -> dict[str, list[str]]:
    """Real ids to substitute into path parameters: a direct trade, a negotiated proposal and its
    reservation, the orders behind them, and a party nobody trades as."""
    with gw.client(keys["seller"]) as s, gw.client(keys["trader"]) as t, gw.client(keys["buyer"]) as b:
        a1 = s.post("/v1/orders/availabilities", json=availability("sch-a1", REGION, qty=20)).json()
        a2 = s.post("/v1/orders/availabilities", json=availability("sch-a2", REGION, qty=20)).json()
        direct = t.post("/v1/orders/requirements", json=requirement("sch-r1", REGION, qty=2)).json()
        nego = b.post(
            "/v1/orders/requirements", json=requirement("sch-r2", REGION, qty=25, intent="NEGOTIATE")
        ).json()
        props = [p["proposal_id"] for p in nego["proposals"]]
        assert direct["allocations"] and len(props) >= 2, (direct, nego)
        acc = b.post(f"/v1/proposals/{props[0]}/accept", json={"hold_minutes": 60})
        assert acc.status_code == 200, acc.text
    return {
        "order_id": [a1["order_id"], a2["order_id"], direct["order_id"], nego["order_id"]],
        "allocation_id": [direct["allocations"][0]["allocation_id"]],
        "proposal_id": props,
        "reservation_id": [acc.json()["reservation"]["reservation_id"]],
        "party_id": ["SCH-X"],
        "region": [REGION],
        "commodity": [COMMODITY],
    }


def _pin_body(body: Any, valid: bool) -> None:
    """Orders, searches and shard keys all go to the one IN-GJ cotton shard; ``valid`` also puts
    the point in Surat and drops quality keys cotton does not have, so the case can succeed."""
    if not isinstance(body, dict):
        return
    loc = body.get("location")
    if isinstance(loc, dict) and "region" in loc:
        loc["region"] = REGION
        if valid:
            loc.update(lat=LOC["lat"], lon=LOC["lon"])
    if "commodity" in body:
        body["commodity"] = COMMODITY
    if "region" in body and "commodity" in body:
        body["region"] = REGION
    if valid:
        for key in ("quality", "quality_ranges", "quality_target"):
            if isinstance(body.get(key), dict):
                body[key] = {k: v for k, v in body[key].items() if k in COTTON_PARAMS}
        if "client_order_id" in body:  # an order: a sane size, no expiry, the side it has the price of
            body["quantity"] = {"value": 2, "unit": "tonne"}
            body.pop("min_order", None)
            body.pop("valid_until", None)
            body.setdefault("side", "SELL" if "price_paise_per_kg" in body else "BUY")
    for o in body.get("orders") or []:
        _pin_body(o, valid)


def _bind(fn: Any, role: str, seen: dict[str, int]) -> Any:
    """``fn(case, role, seen)`` as a one-argument test body for ``@given``."""

    def run(case: Any) -> None:
        fn(case, role, seen)

    return run


def test_schema_conformance_every_operation_every_role(
    gw: Gateway, keys: dict[str, str], seeded: dict[str, list[str]]
) -> None:
    schema = schemathesis.openapi.from_url(f"{gw.base}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    totals = {"cases": 0, "runs": 0, "negative_cases": 0}
    statuses: dict[int, int] = {}
    by_op: dict[str, dict[int, int]] = {}
    t0 = time.monotonic()
    with requests.Session() as http:

        def one(case: Any, role: str, seen: dict[str, int]) -> None:
            seen["n"] += 1
            positive = bool(seen["positive"])
            _pin_body(case.body, valid=positive and seen["n"] % 2 == 0)
            if positive and seen["n"] % 2 == 0 and case.path_parameters:
                for name in case.path_parameters:
                    ids = seeded.get(name)
                    if ids:
                        case.path_parameters[name] = ids[seen["n"] // 2 % len(ids)]
            auth = {"Authorization": f"Bearer {keys[role]}"}
            resp = case.call(base_url=gw.base, session=http, headers=auth, timeout=30)
            totals["cases" if positive else "negative_cases"] += 1
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            per_op = by_op.setdefault(case.operation.label, {})
            per_op[resp.status_code] = per_op.get(resp.status_code, 0) + 1
            try:
                case.validate_response(resp, checks=CHECKS, headers=auth)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is the latter
                failures.append(
                    f"[{role}] {case.method} {case.formatted_path} -> {resp.status_code}: {str(exc)[:600]}"
                )

        for op in operations:
            for role in ROLES:
                for mode, examples in (
                    (schemathesis.GenerationMode.POSITIVE, EXAMPLES),
                    (schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
                ):
                    seen = {"n": 0, "positive": int(mode.is_positive)}
                    run = settings(
                        max_examples=examples,
                        deadline=None,
                        derandomize=True,
                        database=None,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )(given(case=op.as_strategy(mode))(_bind(one, role, seen)))
                    try:
                        run()
                    except Unsatisfiable:
                        assert not mode.is_positive  # nothing to negate (no parameters, no body)
                totals["runs"] += 1
    elapsed = time.monotonic() - t0
    print(
        f"\nschemathesis: {len(operations)} operations x {len(ROLES)} roles = {totals['runs']} runs, "
        f"{totals['cases']} positive + {totals['negative_cases']} negative cases, {len(failures)} failures, "
        f"{elapsed:.1f} s; statuses {sorted(statuses.items())}"
    )
    for label, counts in sorted(by_op.items()):
        print(f"  {label}: {sorted(counts.items())}")
    assert len(operations) >= 33
    assert totals["runs"] == len(operations) * len(ROLES)
    assert totals["cases"] >= totals["runs"] * EXAMPLES // 2
    assert 200 in statuses and 201 in statuses and 404 in statuses  # success paths were exercised
    assert not failures, "\n".join(failures[:40])


def test_wrong_content_type_is_415(gw: Gateway, keys: dict[str, str]) -> None:
    import json

    body = json.dumps(availability("ct-1", REGION)).encode()
    with gw.client(keys["seller"]) as c:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": ctype} if ctype else {}
            r = c.post("/v1/orders/availabilities", content=body, headers=headers)
            assert r.status_code == 415, (ctype, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"] == PT + "unsupported-media-type"
        r = c.post("/v1/orders/availabilities", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
    with gw.client(gw.admin) as c:
        r = c.patch(
            "/v1/admin/parties/SCH-X", content=b'{"name": "x"}', headers={"content-type": "text/plain"}
        )
        assert r.status_code == 415, r.text


def test_invalid_json_is_400(gw: Gateway, keys: dict[str, str]) -> None:
    with gw.client(keys["seller"]) as c:
        for raw in (b'{"client_order_id": "x", "quantity": {"value": 1', b"{not json", b"\xff\xfe"):
            r = c.post("/v1/orders/availabilities", content=raw, headers={"content-type": "application/json"})
            assert r.status_code == 400, (raw, r.text)
            assert r.json()["type"] == PT + "malformed-request"
            assert "Traceback" not in r.text
        # valid JSON of the wrong shape stays a 422 validation error
        r = c.post("/v1/orders/availabilities", json=[1, 2])
        assert r.status_code == 422 and r.json()["type"] == PT + "validation-error"


def test_options_and_405_list_every_method(gw: Gateway) -> None:
    with gw.client(gw.admin) as c:
        r = c.request("OPTIONS", "/v1/admin/parties/SCH-X")
        assert r.status_code == 204, r.text
        assert r.headers["allow"] == "GET, OPTIONS, PATCH"
        r = c.request("OPTIONS", "/v1/admin/parties")
        assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS, POST"
        r = c.delete("/v1/admin/parties/SCH-X")
        assert r.status_code == 405 and r.headers["allow"] == "GET, OPTIONS, PATCH"
        assert r.json()["type"] == PT + "method-not-allowed"
        assert c.request("OPTIONS", "/v1/no/such/path").status_code == 404


def test_party_links_must_name_other_existing_parties(gw: Gateway) -> None:
    with gw.client(gw.admin) as c:
        assert c.post("/v1/admin/parties", json={"party_id": "LNK-A"}).status_code == 201
        assert c.post("/v1/admin/parties", json={"party_id": "LNK-B"}).status_code == 201
        r = c.patch("/v1/admin/parties/LNK-A", json={"linked_parties": ["LNK-B", "LNK-A"]})
        assert r.status_code == 422, r.text
        assert r.json()["type"] == PT + "validation-error"
        assert r.json()["errors"][0]["loc"] == ["body", "linked_parties", 1]
        assert "itself" in r.json()["detail"]
        r = c.patch("/v1/admin/parties/LNK-A", json={"linked_parties": ["LNK-B", "LNK-NOPE"]})
        assert r.status_code == 404, r.text
        assert r.json()["unknown_parties"] == ["LNK-NOPE"] and "LNK-NOPE" in r.json()["detail"]
        r = c.post("/v1/admin/parties", json={"party_id": "LNK-C", "linked_parties": ["LNK-C"]})
        assert r.status_code == 422, r.text
        r = c.post("/v1/admin/parties", json={"party_id": "LNK-C", "linked_parties": ["LNK-ZZ"]})
        assert r.status_code == 404, r.text
        assert c.get("/v1/admin/parties/LNK-C").status_code == 404  # nothing was created
        assert c.get("/v1/admin/parties/LNK-A").json()["linked_parties"] == []  # nothing changed
        r = c.patch("/v1/admin/parties/LNK-A", json={"linked_parties": ["LNK-B"]})
        assert r.status_code == 200 and r.json()["linked_parties"] == ["LNK-B"]
