"""``/v1/webhooks`` over HTTP on the real gateway (Ray runtime, PostgreSQL, Redis) with its own
dispatcher task: register (secret once, also under an Idempotency-Key replay), URL rules as 422
problems, party scoping and roles, and a real trade through a shard whose ALLOCATED event reaches
the buyer's and the seller's receivers signed, and nobody else's; rotation, the delivery log,
redelivery from a seq and delete."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from actors.core.webhooks import message_id
from tests.integration.conftest import unique_region
from tests.integration.gateway_server import Gateway, availability, requirement
from tests.integration.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

PT = "urn:tradedesk:problem:"


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, str]:
    return {
        "seller": gw.party("HS1", ["seller"], kyc_status="VERIFIED"),
        "buyer": gw.party("HB1", ["buyer"], kyc_status="VERIFIED"),
        "other": gw.party("HX1", ["trader"], kyc_status="VERIFIED"),
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/hook", "plain http"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("ftp://example.com/hook", "scheme"),
        ("https:///hook", "host"),
        ("https://10.0.0.8/hook", "not a public address"),
        ("https://example.com/hook#x", "fragment"),
    ],
)
def test_bad_urls_are_422_problems(gw: Gateway, keys: dict[str, str], url: str, words: str) -> None:
    with gw.client(keys["buyer"]) as c:
        r = c.post("/v1/webhooks", json={"url": url, "categories": ["allocation"]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    p = r.json()
    assert p["type"] == PT + "validation-error"
    assert [e["loc"] for e in p["errors"]] == [["body", "url"]] and words in p["errors"][0]["msg"]


def test_register_scope_and_roles(gw: Gateway, keys: dict[str, str]) -> None:
    body = {"url": "https://hooks.example.com/td", "categories": ["invoice", "payment"], "description": "erp"}
    with gw.client(keys["buyer"]) as c, gw.client(keys["other"]) as o, gw.client(gw.admin) as a:
        r = c.post("/v1/webhooks", json=body, headers={"Idempotency-Key": "wh-create-1"})
        assert r.status_code == 201, r.text
        ep = r.json()
        assert ep["secret"].startswith("whsec_") and ep["secret_shown_once"] is True
        assert ep["party_id"] == "HB1" and ep["categories"] == ["invoice", "payment"]
        replay = c.post("/v1/webhooks", json=body, headers={"Idempotency-Key": "wh-create-1"})
        assert replay.headers.get("idempotent-replayed") == "true"
        assert replay.json()["secret"] is None and replay.json()["endpoint_id"] == ep["endpoint_id"]
        listed = c.get("/v1/webhooks").json()["items"]
        assert [x["endpoint_id"] for x in listed] == [ep["endpoint_id"]]
        assert all("secret" not in x for x in listed)
        got = c.get(f"/v1/webhooks/{ep['endpoint_id']}").json()
        assert got == {k: v for k, v in ep.items() if not k.startswith("secret")}
        # another party: its list is empty and the endpoint does not exist for it
        assert o.get("/v1/webhooks").json()["items"] == []
        for r in (
            o.get(f"/v1/webhooks/{ep['endpoint_id']}"),
            o.delete(f"/v1/webhooks/{ep['endpoint_id']}"),
            o.post(f"/v1/webhooks/{ep['endpoint_id']}/rotate-secret"),
            o.get(f"/v1/webhooks/{ep['endpoint_id']}/deliveries"),
            o.post(
                f"/v1/webhooks/{ep['endpoint_id']}/redeliver", json={"stream": "settlement", "from_seq": 1}
            ),
        ):
            assert r.status_code == 404 and r.json()["type"] == PT + "not-found", r.text
        # staff keys have no party
        assert a.get("/v1/webhooks").status_code == 403
        r = c.post("/v1/webhooks", json={**body, "categories": ["invoice", "invoice"]})
        assert r.status_code == 422
        r = c.post("/v1/webhooks", json={**body, "categories": ["trades"]})
        assert r.status_code == 422
        d = c.delete(f"/v1/webhooks/{ep['endpoint_id']}")
        assert d.status_code == 200 and d.json() == {"endpoint_id": ep["endpoint_id"], "deleted": True}
        assert c.get(f"/v1/webhooks/{ep['endpoint_id']}").status_code == 404


def test_a_trade_reaches_both_parties_signed(gw: Gateway, keys: dict[str, str], receiver: Receiver) -> None:
    region = unique_region()
    shard = f"{region}.cotton"
    eps = {}
    for who, path in (("buyer", "/buyer"), ("seller", "/seller"), ("other", "/other")):
        with gw.client(keys[who]) as c:
            r = c.post("/v1/webhooks", json={"url": receiver.url(path), "categories": ["allocation"]})
            assert r.status_code == 201, r.text
            eps[who] = r.json()
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b:
        assert (
            s.post("/v1/orders/availabilities", json=availability("wh-a1", region, qty=20)).status_code == 201
        )
        r = b.post("/v1/orders/requirements", json=requirement("wh-r1", region, qty=4))
        assert r.status_code == 201, r.text
        (alloc,) = r.json()["allocations"]
    for who in ("buyer", "seller"):
        (got,) = receiver.wait_for(f"/{who}", 1)
        body = Webhook(eps[who]["secret"]).verify(got.body, got.headers)
        assert body["type"] == "ALLOCATED" and body["data"]["stream"] == shard
        ev = body["data"]["event"]
        assert ev["allocation_id"] == alloc["allocation_id"]
        assert (ev["buyer_id"], ev["seller_id"], ev["quantity_kg"], ev["price"]) == ("HB1", "HS1", 4000, 7000)
        assert got.headers["webhook-id"] == message_id(shard, body["data"]["seq"], eps[who]["endpoint_id"])
    seq = json.loads(receiver.got("/buyer")[0].body)["data"]["seq"]
    buyer_ep = eps["buyer"]["endpoint_id"]
    with gw.client(keys["buyer"]) as b:
        rows = b.get(f"/v1/webhooks/{buyer_ep}/deliveries", params={"status": "delivered"}).json()
        assert [(x["stream_id"], x["seq"], x["status"], x["attempts"]) for x in rows["items"]] == [
            (shard, seq, "delivered", 1)
        ]
        assert rows["next_after"] is None
        assert b.get(f"/v1/webhooks/{buyer_ep}/deliveries", params={"status": "dead"}).json()["items"] == []
        rot = b.post(f"/v1/webhooks/{buyer_ep}/rotate-secret")
        assert rot.status_code == 200 and rot.json()["secret"].startswith("whsec_")
        r = b.post(f"/v1/webhooks/{buyer_ep}/redeliver", json={"stream": shard, "from_seq": 1})
        assert r.status_code == 200, r.text
        assert r.json()["queued"] == 1 and r.json()["more"] is False
    again = receiver.wait_for("/buyer", 2)[1]
    assert again.headers["webhook-id"] == receiver.got("/buyer")[0].headers["webhook-id"]
    Webhook(eps["buyer"]["secret"]).verify(again.body, again.headers)
    Webhook(rot.json()["secret"]).verify(again.body, again.headers)
    assert receiver.got("/other") == []


def test_metrics_count_webhook_tries(gw: Gateway, keys: dict[str, str]) -> None:
    with gw.client() as c:
        text = c.get("/metrics").text
    assert "tradedesk_webhook_outbox_lag_events" in text
    delivered = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('tradedesk_webhook_attempts_total{outcome="delivered"}')
    ]
    assert delivered and delivered[0] >= 3  # the trade's two deliveries and one redelivery
