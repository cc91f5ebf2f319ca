"""The one table of roles (ARCHITECTURE.md, security model).

A role is held by a party (``parties.role``, what the risk rules check) and by an API key
(``api_keys.roles``, what the gateway authorises). The gateway's schemas, its auth dependencies and
the API-key store all import from here.

- ``seller`` posts availabilities, ``buyer`` posts requirements, ``trader`` does both
  (:data:`TRADING_ROLES`, bound to a party; :data:`CAN_BUY`, :data:`CAN_SELL`);
- ``operator`` runs shards and reads health and parties, ``admin`` does everything
  (:data:`STAFF_ROLES`);
- ``data_scientist`` reads market data and risk health.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    """Party and API-key roles. Only seller, buyer and trader trade."""

    SELLER = "seller"
    BUYER = "buyer"
    TRADER = "trader"
    OPERATOR = "operator"
    ADMIN = "admin"
    DATA_SCIENTIST = "data_scientist"


#: Every role, in declaration order (also: who may read market data).
ALL_ROLES: tuple[Role, ...] = tuple(Role)
#: Roles that trade; a key holding one must be bound to a party.
TRADING_ROLES: tuple[Role, ...] = (Role.SELLER, Role.BUYER, Role.TRADER)
#: Staff roles: see every party's orders, run operator endpoints.
STAFF_ROLES: tuple[Role, ...] = (Role.OPERATOR, Role.ADMIN)
#: Party roles that may buy / sell.
CAN_BUY: frozenset[Role] = frozenset({Role.BUYER, Role.TRADER})
CAN_SELL: frozenset[Role] = frozenset({Role.SELLER, Role.TRADER})


def is_trading(roles: Iterable[str]) -> bool:
    """True when any of ``roles`` (an iterable of role names) is a trading role."""
    return any(r in TRADING_ROLES for r in roles)
