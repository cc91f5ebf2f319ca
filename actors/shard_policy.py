"""Shard policy: who may open a new (region, commodity) shard, how many run per node, when one idles.

Pure decisions used by the shard directory (``actors/directory.py``); the numbers come from
:class:`actors.settings.Settings` (``shard_creation``, ``max_shards_per_node``,
``shard_idle_timeout_s``, ``shard_idle_check_s``). The gateway turns the two refusals into problems:
:class:`NoMarket` -> 409 ``no-market``, :class:`CapacityReached` -> 503 ``shard-capacity``.
docs/operators.md explains the policy to operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from actors.core.commodities import canonical_commodity, is_traded

if TYPE_CHECKING:
    from actors.settings import Settings

Creation = Literal["traded", "any", "operator"]
CREATION_MODES: tuple[str, ...] = ("traded", "any", "operator")

#: Table statuses of the ``shards`` table (``ACTIVE`` is listed as ``UP`` while its actor runs).
ACTIVE, IDLE, DRAINED = "ACTIVE", "IDLE", "DRAINED"


class ShardRefused(Exception):
    """A shard cannot be opened or started. ``slug``: the gateway's problem kind."""

    slug = "conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NoMarket(ShardRefused):
    """The policy does not let an order open this (region, commodity) shard."""

    slug = "no-market"


class CapacityReached(ShardRefused):
    """Every node already runs ``max_shards_per_node`` shard processes."""

    slug = "shard-capacity"


@dataclass(frozen=True, slots=True)
class ShardPolicy:
    """``creation``: ``traded`` (an order opens a shard only where the commodity is traded, see
    ``CommoditySpec.traded_in``; an operator adds any other), ``any`` (every real region) or
    ``operator`` (only shards an operator added). ``max_shards_per_node``: running shard processes per
    alive node. ``idle_timeout_s``: seconds without commands after which a shard stops (0 = never);
    ``idle_check_s``: seconds between idle checks."""

    creation: Creation = "traded"
    max_shards_per_node: int = 32
    idle_timeout_s: float = 900.0
    idle_check_s: float = 15.0

    def __post_init__(self) -> None:
        if self.creation not in CREATION_MODES:
            raise ValueError(f"shard_creation must be one of {CREATION_MODES}, not {self.creation!r}")
        if self.max_shards_per_node < 1:
            raise ValueError("max_shards_per_node must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> ShardPolicy:
        """The policy of a :class:`actors.settings.Settings`."""
        return cls(
            creation=settings.shard_creation,
            max_shards_per_node=settings.max_shards_per_node,
            idle_timeout_s=settings.shard_idle_timeout_s,
            idle_check_s=settings.shard_idle_check_s,
        )

    def check_new(self, region: str, commodity: str) -> None:
        """Raise :class:`NoMarket` when an order may not open the shard (``region`` already a current
        ISO 3166-2 code). Operators' adds do not ask."""
        if self.creation == "any":
            return
        name = canonical_commodity(commodity) or commodity
        if self.creation == "traded" and is_traded(region, name):
            return
        raise NoMarket(f"no market for {name} in {region}; an admin can add it (POST /v1/admin/shards)")

    def check_capacity(self, running: int, nodes: int) -> None:
        """Raise :class:`CapacityReached` when ``running`` shard processes fill ``nodes`` alive nodes."""
        cap = self.max_shards_per_node * max(1, nodes)
        if running >= cap:
            raise CapacityReached(
                f"shard capacity reached: {running} shards run on {max(1, nodes)} node(s), "
                f"at most {self.max_shards_per_node} per node; retry later or ask an operator"
            )

    def is_idle(self, quiet_s: float) -> bool:
        """True when a shard with no command for ``quiet_s`` seconds should stop."""
        return self.idle_timeout_s > 0 and quiet_s >= self.idle_timeout_s
