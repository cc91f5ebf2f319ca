"""Admin and operator API.

- Parties (admin writes; operator reads): ``POST /v1/admin/parties``, ``GET /v1/admin/parties``,
  ``GET|PATCH /v1/admin/parties/{party_id}``, ``GET /v1/admin/parties/{party_id}/links``.
- API keys (admin): ``POST /v1/admin/api-keys`` (the token is in this response only),
  ``GET /v1/admin/api-keys``, ``POST /v1/admin/api-keys/{key_id}/revoke``.
- Shards (docs/operators.md): ``GET /v1/admin/shards`` (operator, admin: every shard with its
  status, node, seq, book size, queue depths), ``POST /v1/admin/shards`` (add: admin only),
  ``POST /v1/admin/shards/{shard_id}/drain`` and ``/resume`` (operator, admin; resume also lifts
  a market halt). Halt, price band and kill switch: :mod:`gateway.routes_controls`.
- Risk pool health (operator, admin, data_scientist): ``GET /v1/admin/risk/health``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from actors.core.commands import ResumeShard
from actors.core.ids import KEY_PREFIX
from gateway.auth import AdminPrincipal, OpsPrincipal, RiskReader
from gateway.edge.text import EntityId, TextRule
from gateway.problems import Problem
from gateway.responses import (
    AUTHED,
    BODY,
    ApiKeyPage,
    IssuedKey,
    PartyLinks,
    PartyOut,
    PartyPage,
    Revoked,
    RiskHealth,
    ShardOut,
    ShardPage,
    errors,
)
from gateway.routes_controls import operator_of, run_control
from gateway.routes_orders import arrival_ms, gw
from gateway.schemas import ApiKeyIn, PartyIn, PartyPatch, ShardIn, to_jsonable
from persistence.api_keys import ApiKeyRepo
from persistence.parties import PartyExists, PartyNotFound, PartyRepository, party_to_dict

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _parties(request: Request) -> PartyRepository:
    g = gw(request)
    return PartyRepository(g.pool, g.redis, KEY_PREFIX)


def _party_view(p: Any) -> dict[str, Any]:
    d = party_to_dict(p)
    d["credit_limit_paise"] = d.pop("credit_limit")
    return d


async def _check_links(repo: PartyRepository, party_id: str, linked: list[str] | None) -> None:
    """422 when a party is linked to itself, 404 when a linked party does not exist."""
    if not linked:
        return
    if party_id in linked:
        raise Problem(
            "validation-error",
            f"party {party_id} cannot be linked to itself",
            errors=[
                {
                    "loc": ["body", "linked_parties", linked.index(party_id)],
                    "msg": "a party cannot be linked to itself",
                    "type": "value_error",
                }
            ],
        )
    missing = sorted(set(linked) - set(await repo.get_many(linked)))
    if missing:
        raise Problem(
            "not-found", f"linked parties do not exist: {', '.join(missing)}"[:300], unknown_parties=missing
        )


_READ = errors(*AUTHED, 403, 422)
_ONE = errors(*AUTHED, 403, 404, 422)


@router.post(
    "/parties",
    status_code=201,
    summary="Create a party",
    response_model=PartyOut,
    responses=errors(*AUTHED, *BODY, 403, 404),
)
async def create_party(body: PartyIn, request: Request, _p: AdminPrincipal) -> Any:
    repo = _parties(request)
    await _check_links(repo, body.party_id, body.linked_parties)
    try:
        party = await repo.create(**body.fields())
    except PartyExists:
        raise Problem("conflict", f"party {body.party_id} exists") from None
    except ValueError as exc:
        raise Problem("validation-error", str(exc)[:300]) from None
    return _party_view(party)


@router.get("/parties", summary="List parties", response_model=PartyPage, responses=_READ)
async def list_parties(
    request: Request,
    _p: OpsPrincipal,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**7),
) -> Any:
    return {"items": [_party_view(x) for x in await _parties(request).list(limit=limit, offset=offset)]}


@router.get("/parties/{party_id}", summary="Get a party", response_model=PartyOut, responses=_ONE)
async def get_party(party_id: EntityId, request: Request, _p: OpsPrincipal) -> Any:
    party = await _parties(request).get(party_id)
    if party is None:
        raise Problem("not-found", "no such party")
    return _party_view(party)


@router.patch(
    "/parties/{party_id}",
    summary="Update KYC, credit limit, links...",
    response_model=PartyOut,
    responses=errors(*AUTHED, 400, 403, 404, 413, 415, 422),
)
async def update_party(party_id: EntityId, body: PartyPatch, request: Request, _p: AdminPrincipal) -> Any:
    changes = body.changes()
    repo = _parties(request)
    await _check_links(repo, party_id, changes.get("linked_parties"))
    try:
        party = await repo.update(party_id, **changes) if changes else await repo.get(party_id)
    except PartyNotFound:
        party = None
    except ValueError as exc:
        raise Problem("validation-error", str(exc)[:300]) from None
    if party is None:
        raise Problem("not-found", "no such party")
    gw(request)._linked.clear()
    return _party_view(party)


@router.get(
    "/parties/{party_id}/links",
    summary="Parties linked to a party, and why",
    response_model=PartyLinks,
    responses=_ONE,
)
async def party_links(party_id: EntityId, request: Request, _p: OpsPrincipal) -> Any:
    try:
        links = await _parties(request).linked_parties(party_id)
    except PartyNotFound:
        raise Problem("not-found", "no such party") from None
    return {"party_id": party_id, "links": {k: list(v) for k, v in links.items()}}


@router.post(
    "/api-keys",
    status_code=201,
    summary="Issue an API key (token shown once)",
    response_model=IssuedKey,
    responses=errors(*AUTHED, *BODY, 403),
)
async def issue_key(body: ApiKeyIn, request: Request, _p: AdminPrincipal) -> Any:
    """``{key_id, party_id, roles, label, created_at, token, token_shown_once}``. Store ``token``
    now: only its sha256 is kept, it cannot be shown again (an ``Idempotency-Key`` replay returns
    ``"token": null``)."""
    g = gw(request)
    if body.party_id is not None and await PartyRepository(g.pool).get(body.party_id) is None:
        raise Problem("validation-error", f"unknown party {body.party_id}")
    key, token = await ApiKeyRepo(g.pool).issue(list[str](body.roles), body.party_id, body.label)
    return {**key.to_dict(), "token": token, "token_shown_once": True}


@router.get(
    "/api-keys", summary="List API keys (never the tokens)", response_model=ApiKeyPage, responses=_READ
)
async def list_keys(
    request: Request, _p: AdminPrincipal, party_id: Annotated[str, TextRule(64)] | None = None
) -> Any:
    return {"items": [k.to_dict() for k in await ApiKeyRepo(gw(request).pool).list(party_id)]}


@router.post(
    "/api-keys/{key_id}/revoke",
    summary="Revoke an API key",
    response_model=Revoked,
    responses=errors(*AUTHED, 400, 403, 404, 409, 422),
)
async def revoke_key(key_id: EntityId, request: Request, _p: AdminPrincipal) -> Any:
    g = gw(request)
    repo = ApiKeyRepo(g.pool, g.redis, g.key_prefix)  # the revoke notifies every gateway process
    if not await repo.revoke(key_id) and await repo.get(key_id) is None:
        raise Problem("not-found", "no such key")
    request.app.state.auth.forget(key_id)
    return {"key_id": key_id, "revoked": True}


@router.get(
    "/shards",
    summary="List every shard with its status, node, seq, book size and queue depth",
    response_model=ShardPage,
    responses=errors(*AUTHED, 403),
)
async def list_shards(request: Request, _p: OpsPrincipal) -> Any:
    """``{"items": [{shard_id, region, commodity, status (UP | IDLE | DRAINED | RECOVERING |
    UNREACHABLE), running, node_id, seq, committed_seq, book_size, queue_depth (actor),
    gateway_queue_depth (this process), draining, halted, halt_kind, halt_reason, halted_since,
    halted_until (epoch ms or null), trigger, price_band}]}``: every shard of the shards table; the
    actor's fields (market status included) only for running shards."""
    g = gw(request)
    rows = await g.list_shards()
    depths = g.batcher.depths() if g.batcher else {}
    for r in rows:
        r["gateway_queue_depth"] = depths.get(r.get("shard_id"), 0)
    return {"items": to_jsonable(rows)}


async def _shard_call(call: Any) -> Any:
    """Await a directory call on one shard; its refusals become problems."""
    from actors.shard_policy import ShardRefused

    try:
        return to_jsonable(await call)
    except ShardRefused as exc:
        raise Problem(exc.slug, exc.detail, headers={"Retry-After": "5"}) from None
    except KeyError:
        raise Problem("not-found", "no such shard") from None
    except ValueError as exc:
        raise Problem("conflict", str(exc).splitlines()[-1][:300]) from None


@router.post(
    "/shards",
    status_code=201,
    summary="Add a shard (admin)",
    response_model=ShardOut,
    responses=errors(*AUTHED, *BODY, 403, 409, 503),
)
async def add_shard(body: ShardIn, request: Request, _p: AdminPrincipal) -> Any:
    """Open the (region, commodity) market whatever the creation policy (or start it if IDLE).
    409 for a DRAINED shard (resume it), 503 ``shard-capacity`` when the nodes are full."""
    return await _shard_call(gw(request).directory.add.remote(body.region, body.commodity))


@router.post(
    "/shards/{shard_id}/drain",
    summary="Drain a shard (stop taking commands, snapshot)",
    response_model=ShardOut,
    responses=errors(*AUTHED, 400, 403, 404, 409, 422),
)
async def drain_shard(shard_id: EntityId, request: Request, _p: OpsPrincipal) -> Any:
    """The shard takes no commands (503 ``unavailable`` "draining") until resumed, also across
    restarts. Its book stays readable."""
    return await _shard_call(gw(request).directory.drain.remote(shard_id))


@router.post(
    "/shards/{shard_id}/resume",
    summary="Resume a drained or halted shard (take commands and new orders again)",
    response_model=ShardOut,
    responses=errors(*AUTHED, 400, 403, 404, 409, 422),
)
async def resume_shard(shard_id: EntityId, request: Request, p: OpsPrincipal) -> Any:
    """Lift a drain (the shard takes commands again, status UP) and a market halt (operator or
    circuit breaker: SHARD_RESUMED recorded; ``resumed_halt`` true when there was one)."""
    info = await _shard_call(gw(request).directory.resume.remote(shard_id))
    r = await run_control(request, shard_id, ResumeShard(arrival_ms(request), operator_of(p)))
    return {**info, **to_jsonable(r["market"]), "resumed_halt": r["changed"]}


@router.get(
    "/risk/health",
    summary="Health of the risk pool",
    response_model=RiskHealth,
    responses=errors(*AUTHED, 403),
)
async def risk_health(request: Request, _p: RiskReader) -> Any:
    """``{"status": "UP"|"DEGRADED"|"DOWN"|"NOT_DEPLOYED", "app_status", "deployments", "replicas"
    (RUNNING replicas per deployment), "breaker_state", "stats"}``: the Serve application's state
    and one replica's counters (ML circuit breaker state, model versions). DEGRADED = the ML tier's
    breaker is open (rules only)."""
    return await risk_status(request)


async def risk_status(request: Request) -> dict[str, Any]:
    """Risk pool health from Ray Serve's status and the pool client's ``stats()`` (3 s budget)."""
    client = getattr(request.app.state, "risk", None)
    out: dict[str, Any] = {}
    app_state = None
    try:
        from ray import serve

        from actors.risk_pool import APP_NAME

        st = await asyncio.wait_for(asyncio.to_thread(serve.status), timeout=3)
        app_state = st.applications.get(APP_NAME)
    except Exception:
        app_state = None
    if app_state is None and client is None:
        return {"status": "NOT_DEPLOYED", "detail": "no risk pool: shards use the pass-all decider"}
    if app_state is not None:
        out["app_status"] = str(getattr(app_state, "status", "UNKNOWN")).rsplit(".", 1)[-1]
        out["deployments"] = {
            name: str(getattr(d, "status", "UNKNOWN")).rsplit(".", 1)[-1]
            for name, d in (getattr(app_state, "deployments", None) or {}).items()
        }
        out["replicas"] = {  # RUNNING replicas per deployment (the console's risk panel)
            name: sum(
                n for st, n in (getattr(d, "replica_states", None) or {}).items() if "RUNNING" in str(st)
            )
            for name, d in (getattr(app_state, "deployments", None) or {}).items()
        }
    if client is not None:
        try:
            stats = await asyncio.wait_for(asyncio.to_thread(client.stats), timeout=3)
            out["stats"] = to_jsonable(stats)
            out["breaker_state"] = str(stats.get("breaker_state", "UNKNOWN")).rsplit(".", 1)[-1].upper()
        except Exception:
            out["breaker_state"] = "UNKNOWN"
            out["status"] = "DOWN"
    breaker_open = out.get("breaker_state") == "OPEN"
    gw(request).metrics.breaker.set(1 if breaker_open else 0)
    if "status" not in out:
        running = out.get("app_status", "RUNNING") == "RUNNING"
        out["status"] = "DOWN" if not running else "DEGRADED" if breaker_open else "UP"
    return out
