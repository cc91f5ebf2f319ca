"""Where the runtime's actors live on a Ray cluster: node types, shard host names, the real placement.

Node types and their custom resources come from ``cluster.yaml``: the head (``tradedesk_head``) hosts
the directory, the persistence and the settlement actors; matching nodes (``tradedesk_matching``)
host the shards. On a single node without these resources every actor runs there.

A shard is served by one host actor at a time. Its first host is named ``shard:<shard_id>``
(:func:`actors.core.ids.shard_actor_name`); a live move starts the next host beside the running one,
so each host of a shard has a generation: ``shard:<shard_id>@<gen>`` for ``gen >= 1``. The directory
adopts the newest live host of a shard when it starts again (:func:`shard_hosts`).
"""

from __future__ import annotations

from typing import Any

import ray

from actors.core.ids import shard_actor_name

HEAD_RESOURCE = "tradedesk_head"  # custom resource of the head node type (cluster.yaml)
MATCHING_RESOURCE = "tradedesk_matching"  # custom resource of the matching node type (cluster.yaml)
RISK_RESOURCE = "tradedesk_risk"  # custom resource of the risk node type (cluster.yaml)
TRAINING_RESOURCE = "tradedesk_training"  # custom resource of the training node type (cluster.yaml)
HEAD_SHARE = 0.001  # what a head actor asks of HEAD_RESOURCE (1 unit per head): a pin, not a cap
PLACEMENT_CHECK_S = 2.0  # seconds between the directory's looks at where its shards run
_GEN_SEP = "@"


def head_placement(cluster_resources: dict[str, float] | None = None) -> dict[str, Any]:
    """Actor options that pin an actor to the head node when the cluster has a ``tradedesk_head``
    resource, else ``{}``. ``cluster_resources``: ``ray.cluster_resources()`` (read when None)."""
    res = ray.cluster_resources() if cluster_resources is None else cluster_resources
    if res.get(HEAD_RESOURCE, 0) > 0:
        return {"resources": {HEAD_RESOURCE: HEAD_SHARE}}
    return {}


def named_actor_options(
    name: str, namespace: str | None = None, detached: bool = False, num_cpus: float = 0, **extra: Any
) -> dict[str, Any]:
    """Ray ``.options()`` of a named runtime actor: ``name``, get-if-exists, ``num_cpus``, the
    ``namespace`` when given, ``lifetime="detached"`` when ``detached``, then ``extra`` (placement,
    scheduling strategy, resources)."""
    opts: dict[str, Any] = {"name": name, "get_if_exists": True, "num_cpus": num_cpus}
    if namespace:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    opts.update(extra)
    return opts


def host_name(shard_id: str, gen: int) -> str:
    """Ray actor name of generation ``gen`` of a shard's host (gen 0 = ``shard:<shard_id>``)."""
    base = shard_actor_name(shard_id)
    return base if gen <= 0 else f"{base}{_GEN_SEP}{gen}"


def host_generation(name: str, shard_id: str) -> int | None:
    """The generation of actor ``name`` if it is a host of ``shard_id``, else None."""
    base = shard_actor_name(shard_id)
    if name == base:
        return 0
    head, sep, gen = name.rpartition(_GEN_SEP)
    if sep and head == base and gen.isdigit():
        return int(gen)
    return None


def shard_hosts(namespace: str | None, shard_id: str) -> list[tuple[int, Any]]:
    """``[(gen, handle)]`` of the live hosts of ``shard_id`` in ``namespace``, oldest first."""
    ns = namespace or ray.get_runtime_context().namespace
    found: list[tuple[int, str]] = []
    for a in ray.util.list_named_actors(all_namespaces=True):
        gen = host_generation(a["name"], shard_id) if a.get("namespace") == ns else None
        if gen is not None:
            found.append((gen, a["name"]))
    out = []
    for gen, name in sorted(found):
        try:
            out.append((gen, ray.get_actor(name, namespace=ns)))
        except ValueError:  # ended since the listing
            continue
    return out


def matching_nodes() -> list[str]:
    """Ids of the alive nodes that may host shards: the matching nodes when the cluster has any,
    else every alive node. Sorted."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    matching = [n for n in nodes if n.get("Resources", {}).get(MATCHING_RESOURCE, 0) > 0]
    return sorted(n["NodeID"] for n in (matching or nodes))


def actor_nodes(namespace: str) -> dict[str, str]:
    """Where the live named actors of ``namespace`` really run, from the GCS actor table (what Ray
    itself schedules by; no dashboard needed): ``{actor name: node id}``."""
    import ray._private.state as gcs_state

    table = gcs_state.actors()
    out: dict[str, str] = {}
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a.get("namespace") != namespace:
            continue
        try:
            actor_id = ray.get_actor(a["name"], namespace=namespace)._actor_id.hex()
        except ValueError:  # ended since the listing
            continue
        row = table.get(actor_id) or {}
        if row.get("State") == "ALIVE":
            out[a["name"]] = row["Address"]["NodeID"]
    return out
