"""Webhook endpoints API (docs/webhooks.md): a party's own endpoints only (trading keys: seller,
buyer, trader; staff keys have no party and get 403; another party's endpoint is 404).

- ``POST /v1/webhooks``: register (201; the ``secret`` is in this response only).
- ``GET /v1/webhooks``, ``GET /v1/webhooks/{endpoint_id}``, ``DELETE /v1/webhooks/{endpoint_id}``.
- ``POST /v1/webhooks/{endpoint_id}/rotate-secret``: a new secret (shown once); the old one keeps
  signing for ``webhook_rotation_grace_s``.
- ``GET /v1/webhooks/{endpoint_id}/deliveries?status=dead&after=&limit=``: the delivery log
  (``status=dead`` is the dead-letter list).
- ``POST /v1/webhooks/{endpoint_id}/redeliver`` ``{"stream", "from_seq"}``: send again from a seq.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request

from gateway.auth import TraderPrincipal
from gateway.edge.text import EntityId
from gateway.problems import Problem
from gateway.responses import AUTHED, BODY, errors
from gateway.routes_orders import gw
from gateway.webhooks.models import (
    CreatedWebhook,
    DeletedWebhook,
    DeliveryPage,
    DeliveryStatus,
    RedeliverIn,
    Redelivery,
    RotatedSecret,
    WebhookIn,
    WebhookOut,
    WebhookPage,
)
from gateway.webhooks.secrets import new_secret
from persistence.webhooks import WebhookRepo

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

#: endpoints one party may register
MAX_ENDPOINTS_PER_PARTY = 20
#: events one redelivery call scans
REDELIVER_MAX_EVENTS = 10_000

_READ = errors(*AUTHED, 403, 422)
_ONE = errors(*AUTHED, 403, 404, 422)
_POST_ONE = errors(*AUTHED, *BODY, 403, 404)


def _repo(request: Request) -> WebhookRepo:
    return WebhookRepo(gw(request).pool)


def _party(p: Any) -> str:
    assert p.party_id is not None  # trading keys always have a party
    return str(p.party_id)


async def _mine(request: Request, endpoint_id: str, p: Any) -> dict[str, Any]:
    ep = await _repo(request).get(endpoint_id, _party(p))
    if ep is None:
        raise Problem("not-found", "no such webhook endpoint")
    return ep


@router.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint (secret shown once)",
    response_model=CreatedWebhook,
    responses=errors(*AUTHED, *BODY, 403),
)
async def create_webhook(body: WebhookIn, request: Request, p: TraderPrincipal) -> Any:
    """``{endpoint_id, party_id, url, categories, description, created_at, secret,
    secret_shown_once}``. Store ``secret`` now to verify signatures: it is not shown again (an
    ``Idempotency-Key`` replay returns ``"secret": null``). 409 ``conflict`` beyond
    :data:`MAX_ENDPOINTS_PER_PARTY` endpoints."""
    repo = _repo(request)
    party = _party(p)
    if len(await repo.list_for(party)) >= MAX_ENDPOINTS_PER_PARTY:
        raise Problem("conflict", f"at most {MAX_ENDPOINTS_PER_PARTY} webhook endpoints per party")
    secret = new_secret()
    ep = await repo.create(
        f"WH-{uuid.uuid4().hex[:20]}",
        party,
        body.url,
        body.categories,
        body.description,
        request.app.state.webhook_box.seal(secret),
    )
    return {**ep, "secret": secret, "secret_shown_once": True}


@router.get("", summary="List my webhook endpoints (no secrets)", response_model=WebhookPage, responses=_READ)
async def list_webhooks(request: Request, p: TraderPrincipal) -> Any:
    return {"items": await _repo(request).list_for(_party(p))}


@router.get("/{endpoint_id}", summary="Get a webhook endpoint", response_model=WebhookOut, responses=_ONE)
async def get_webhook(endpoint_id: EntityId, request: Request, p: TraderPrincipal) -> Any:
    return await _mine(request, endpoint_id, p)


@router.delete(
    "/{endpoint_id}", summary="Delete a webhook endpoint", response_model=DeletedWebhook, responses=_ONE
)
async def delete_webhook(endpoint_id: EntityId, request: Request, p: TraderPrincipal) -> Any:
    if not await _repo(request).delete(endpoint_id, _party(p)):
        raise Problem("not-found", "no such webhook endpoint")
    return {"endpoint_id": endpoint_id, "deleted": True}


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate the signing secret (new secret shown once)",
    response_model=RotatedSecret,
    responses=errors(*AUTHED, 400, 403, 404, 409, 422),
)
async def rotate_secret(endpoint_id: EntityId, request: Request, p: TraderPrincipal) -> Any:
    """The new ``secret`` signs every delivery from now on; the previous one signs too (a second
    ``v1,`` signature in ``webhook-signature``) until ``previous_expires_at``, so receivers can switch
    without losing a message."""
    secret = new_secret()
    grace = request.app.state.webhook_grace_s
    done = await _repo(request).rotate(
        endpoint_id, _party(p), request.app.state.webhook_box.seal(secret), grace
    )
    if done is None:
        raise Problem("not-found", "no such webhook endpoint")
    return {**done, "secret": secret, "secret_shown_once": True}


@router.get(
    "/{endpoint_id}/deliveries",
    summary="Deliveries of an endpoint (status=dead: the dead-letter list)",
    response_model=DeliveryPage,
    responses=_ONE,
)
async def list_deliveries(
    endpoint_id: EntityId,
    request: Request,
    p: TraderPrincipal,
    status: DeliveryStatus | None = None,
    after: int = Query(0, ge=0, le=2**62, description="delivery_id to list after"),
    limit: int = Query(100, ge=1, le=1000),
) -> Any:
    await _mine(request, endpoint_id, p)
    rows = await _repo(request).deliveries(endpoint_id, status, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_after": rows[-1]["delivery_id"] if more else None}


@router.post(
    "/{endpoint_id}/redeliver",
    summary="Send again every event of a stream from a seq on",
    response_model=Redelivery,
    responses=_POST_ONE,
)
async def redeliver(endpoint_id: EntityId, body: RedeliverIn, request: Request, p: TraderPrincipal) -> Any:
    """Events of ``stream`` with seq >= ``from_seq`` that this endpoint receives (its party, its
    categories) are queued again, delivered or dead ones included (attempts start at 0; the
    ``webhook-id`` stays the same, so a receiver that already has one may ignore it). At most
    :data:`REDELIVER_MAX_EVENTS` events per call: ``more`` says to call again from
    ``through_seq + 1``."""
    ep = await _mine(request, endpoint_id, p)
    out = await _repo(request).redeliver(ep, body.stream, body.from_seq, REDELIVER_MAX_EVENTS)
    dispatcher = getattr(request.app.state, "webhooks", None)
    if dispatcher is not None:
        dispatcher.wake()
    return {"endpoint_id": endpoint_id, "stream": body.stream, "from_seq": body.from_seq, **out}
