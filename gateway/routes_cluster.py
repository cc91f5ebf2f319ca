"""Cluster operations (docs/operators.md, "Nodes"): the Ray nodes, live shard moves, rebalancing.

- ``GET /v1/admin/nodes`` (operator, admin): every Ray node with its type (``cluster.yaml``), whether
  it is alive and the shards running on it.
- ``POST /v1/admin/shards/{shard_id}/move`` ``{"node_id": ...}`` (operator, admin): live move with a
  fenced handover (:func:`actors.handover.move_shard`); the answer carries ``pause_ms``.
- ``POST /v1/admin/shards/rebalance`` ``{"window_s": 5, "dry_run": false}`` (operator, admin):
  spread shards over the matching nodes by measured commands/s (:func:`actors.rebalance.rebalance`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field

from actors.placement import HEAD_RESOURCE, MATCHING_RESOURCE, RISK_RESOURCE, TRAINING_RESOURCE
from gateway.auth import OpsPrincipal
from gateway.edge.text import EntityId
from gateway.responses import AUTHED, BODY, Out, errors
from gateway.routes_admin import _shard_call
from gateway.routes_orders import gw
from gateway.schemas import Strict

router = APIRouter(prefix="/v1/admin", tags=["admin"])

NodeId = Annotated[str, Field(pattern=r"^[0-9a-f]{56}$", description="Ray node id (56 hex digits)")]
NODE_TYPES = {
    HEAD_RESOURCE: "head",
    MATCHING_RESOURCE: "matching",
    RISK_RESOURCE: "risk",
    TRAINING_RESOURCE: "training",
}  # custom resource -> node type (cluster.yaml)


class MoveIn(Strict):
    """Target of a live move: an alive matching node."""

    node_id: NodeId


class RebalanceIn(Strict):
    """``window_s``: seconds over which shard rates are measured; ``dry_run``: plan only."""

    window_s: float = Field(5.0, ge=0.5, le=60)
    dry_run: bool = False


class MoveOut(Out):
    """The moved shard's status on its new node, ``from_node``, ``handover_seq`` (the old host's
    last seq), ``pause_ms`` (commands waited this long) and ``move_s`` (the whole move)."""

    shard_id: str
    node_id: str | None = None
    from_node: str | None = None
    handover_seq: int | None = None
    pause_ms: float
    move_s: float


class RebalanceOut(Out):
    """Measured ``rates`` (commands/s per shard), ``where`` (node per shard), node ``loads``
    (commands/s) before the moves, and the ``moves`` made (``pause_ms`` or ``error`` each)."""

    rates: dict[str, float]
    where: dict[str, str]
    nodes: list[str]
    loads: dict[str, float]
    moves: list[dict[str, Any]]


class NodeOut(Out):
    """One Ray node: ``type`` head | matching | risk | training | other, ``alive``, ``shards``."""

    node_id: str
    type: str
    alive: bool
    address: str | None = None
    shards: list[str] = []


class NodePage(Out):
    """Every node Ray knows (dead ones until Ray forgets them)."""

    items: list[NodeOut]


def node_type(resources: dict[str, float]) -> str:
    """The ``cluster.yaml`` node type of a node's resources."""
    return next((t for r, t in NODE_TYPES.items() if resources.get(r, 0) > 0), "other")


@router.get(
    "/nodes",
    summary="Ray nodes, their type and shards",
    response_model=NodePage,
    responses=errors(*AUTHED, 403),
)
async def list_nodes(request: Request, _p: OpsPrincipal) -> Any:
    import ray

    where = await gw(request).directory.placement.remote(5.0)
    items = []
    for n in await asyncio.to_thread(ray.nodes):
        nid = n["NodeID"]
        items.append(
            {
                "node_id": nid,
                "type": node_type(n.get("Resources") or {}),
                "alive": bool(n.get("Alive")),
                "address": n.get("NodeManagerAddress"),
                "shards": sorted(s for s, node in where.items() if node == nid),
            }
        )
    return {"items": items}


@router.post(
    "/shards/rebalance",
    summary="Spread shards over the matching nodes by measured commands/s",
    response_model=RebalanceOut,
    responses=errors(*AUTHED, *BODY, 403),
)
async def rebalance_shards(body: RebalanceIn, request: Request, _p: OpsPrincipal) -> Any:
    from actors.rebalance import rebalance

    g = gw(request)
    out = await rebalance(g.directory, window_s=body.window_s, dry_run=body.dry_run)
    for m in out["moves"]:
        g.handles.pop(m["shard_id"], None)
    return out


@router.post(
    "/shards/{shard_id}/move",
    summary="Move a shard live to another matching node (fenced handover)",
    response_model=MoveOut,
    responses=errors(*AUTHED, *BODY, 403, 404, 409),
)
async def move_shard(shard_id: EntityId, body: MoveIn, request: Request, _p: OpsPrincipal) -> Any:
    """404 for an unknown shard; 409 when the node is not an alive matching node or the shard
    already runs there or is moving."""
    from actors.handover import move_shard as move

    g = gw(request)
    out = await _shard_call(move(g.directory, shard_id, body.node_id))
    g.handles.pop(shard_id, None)
    out.pop("handover_window", None)
    return out
