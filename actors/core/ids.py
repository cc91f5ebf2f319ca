"""Names and ids: shard ids, the ids a shard assigns, Ray actor names, Redis keys and channels (pure).

One source for every name that two modules share (docs/contracts.md):

- shard id ``<region>.<commodity>`` with the region's current ISO 3166-2 code (``IN-TG`` -> ``IN-TS``)
  and the canonical commodity name: ``IN-TS.cotton``;
- ids a shard assigns: ``O-<shard>-<seq>`` (order), ``A-`` (allocation), ``P-`` (proposal),
  ``R-`` (reservation);
- Ray actor names: ``shard:<shard id>``, ``shard-directory``, ``persistence``, ``settlement``;
- the settlement stream ``settlement`` and its ids: contract ``CT-<allocation id>``, delivery
  ``<contract id>-D<n>``, invoice ``INV-<delivery id>`` (docs/post-trade.md);
- Redis: every key starts with :data:`KEY_PREFIX`; committed events are published on
  ``td:events:<shard id>``, API key revocations on ``td:keys:revoked``.
"""

from __future__ import annotations

from actors.core.commodities import canonical_commodity
from actors.core.regions import current_code, normalize_region

KEY_PREFIX = "td:"
EVENTS_CHANNEL_PREFIX = f"{KEY_PREFIX}events:"
EVENTS_CHANNEL_PATTERN = f"{EVENTS_CHANNEL_PREFIX}*"

DIRECTORY_ACTOR = "shard-directory"
PERSISTENCE_ACTOR = "persistence"
SHARD_ACTOR_PREFIX = "shard:"
SETTLEMENT_ACTOR = "settlement"
PROJECTOR_ACTOR = "projector"
SNAPSHOTTER_ACTOR = "snapshotter"
SETTLEMENT_STREAM = "settlement"  # stream id (events.shard_id) of the settlement host's log


def shard_id_for(region: str, commodity: str) -> str:
    """Shard id of (region, commodity), e.g. ``IN-GJ.cotton``.

    The region is normalised to its current ISO 3166-2 code (``IN-TG`` -> ``IN-TS``) and the commodity
    canonicalised (``Kapas`` -> ``cotton``). Raises :class:`~actors.core.regions.UnknownRegion` for a
    region outside the table.
    """
    return f"{normalize_region(region)}.{canonical_commodity(commodity) or commodity}"


def shard_of(entity_id: str) -> str | None:
    """Shard id of an order/allocation/proposal/reservation id ``X-<shard>-<seq>``, or None.

    The region part is read as its current code: ``O-IN-TG.cotton-5`` (an id from before the region
    table was unified; migration 0006 merged that shard's log into ``IN-TS.cotton``) -> ``IN-TS.cotton``.
    """
    if not isinstance(entity_id, str) or len(entity_id) < 5 or entity_id[1] != "-":
        return None
    body, _, seq = entity_id[2:].rpartition("-")
    if not body or not seq.isdigit():
        return None
    region, dot, commodity = body.partition(".")
    return f"{current_code(region)}{dot}{commodity}"


def shard_actor_name(shard_id: str) -> str:
    """Ray actor name of a shard: ``shard:IN-GJ.cotton``."""
    return f"{SHARD_ACTOR_PREFIX}{shard_id}"


def events_channel(shard_id: str, prefix: str = KEY_PREFIX) -> str:
    """Redis pub/sub channel of a shard's committed events: ``td:events:IN-GJ.cotton``."""
    return f"{prefix}events:{shard_id}"


def key_revocations_channel(prefix: str = KEY_PREFIX) -> str:
    """Redis pub/sub channel of API key revocation notices (message: ``{"key_id": ...}`` JSON), which
    every gateway process follows: ``td:keys:revoked``."""
    return f"{prefix}keys:revoked"


def contract_id_for(allocation_id: str) -> str:
    """Contract id of an allocation (one contract per allocation): ``CT-A-IN-GJ.cotton-7``."""
    return f"CT-{allocation_id}"


def delivery_id_for(contract_id: str, n: int) -> str:
    """Id of the ``n``-th delivery (1, 2, ...) of a contract: ``CT-A-IN-GJ.cotton-7-D1``."""
    return f"{contract_id}-D{n}"


def invoice_id_for(delivery_id: str) -> str:
    """Invoice id of a delivery (one invoice per delivery): ``INV-CT-A-IN-GJ.cotton-7-D1``."""
    return f"INV-{delivery_id}"
