"""The shard's link to the risk decider: ask about a batch, and keep the buyers' credit exposure
(``persistence/exposure.py``, paise notional) in step with what the batch really did.

Credit life cycle of one batch (amounts in paise):

1. ``decide`` grants credit per buyer (the grant is added to the buyer's exposure at once).
2. Right after matching, :func:`settle` gives back ``grant - used``: the exposure then holds the
   batch's ``used`` credit (its allocations and reservations).
3. After the commit: reservations the batch RELEASED give their notional back (:func:`release`),
   only once the batch is durable (a failed batch did not release anything).
4. If the commit definitely failed, the batch's ``used`` credit is given back (:func:`give_back`):
   nothing of the batch exists, so no credit may stay reserved for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from actors.core.events import RELEASED, Event
from actors.core.risk.types import (
    AsyncRiskDecider,
    PassAllDecider,
    RiskDecider,
    RiskRequest,
    RiskVerdicts,
)

log = logging.getLogger(__name__)

#: What a shard is given as its risk decider: a decider, a no-argument factory of one (called where
#: the shard runs, e.g. to connect to the risk pool from inside a Ray actor), or None (pass-all).
DeciderSpec = RiskDecider | Callable[[], RiskDecider] | None


def make_decider(decider: DeciderSpec) -> RiskDecider:
    """A risk decider from ``decider``: None -> :class:`PassAllDecider`; a :class:`RiskDecider` is
    used as is; any other callable is a factory called with no arguments. Raises TypeError."""
    if decider is None:
        return PassAllDecider()
    if isinstance(decider, RiskDecider):
        return decider
    if callable(decider):
        return decider()
    raise TypeError(f"not a risk decider or factory: {decider!r}")


async def decide_in_loop(decider: RiskDecider, request: RiskRequest) -> RiskVerdicts:
    """Ask ``decider`` about a batch from inside the shard's event loop.

    An :class:`AsyncRiskDecider` (the Ray Serve risk pool client) is awaited: a blocking
    ``.result()`` is not allowed inside an event loop. It fails closed like the client's own
    ``decide``: on timeout or error no pair gets a decision and every credit grant is 0."""
    if not isinstance(decider, AsyncRiskDecider):
        return decider.decide(request)
    if not request.queries and not request.credit_requests:
        return RiskVerdicts()
    try:
        reply = await asyncio.wait_for(decider.decide_async(request), timeout=decider.timeout_s)
    except Exception as exc:
        decider.failures += 1
        log.warning("risk pool unavailable, failing closed: %s: %s", type(exc).__name__, exc)
        return RiskVerdicts(credit_grants={b: 0 for b in request.credit_requests})
    return decider.verdicts(request, reply)


def released_credit(events: Iterable[Event]) -> dict[str, int]:
    """Notional (paise) per buyer of the reservations that ``events`` release."""
    freed: dict[str, int] = {}
    for e in events:
        if e.type == RELEASED:
            p = e.payload
            freed[p.buyer_id] = freed.get(p.buyer_id, 0) + int(p.quantity_kg) * int(p.price)
    return freed


def settle(decider: RiskDecider, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
    """Give back credit granted to a batch but not used (the decider's ``settle``)."""
    _guarded("settle", lambda: decider.settle(grants, used))


def release(decider: RiskDecider, amounts: Mapping[str, int]) -> None:
    """Give back exposure (paise) of released reservations (the decider's ``release``)."""
    if amounts:
        _guarded("release", lambda: decider.release(amounts))


def give_back(decider: RiskDecider, used: Mapping[str, int]) -> None:
    """A batch definitely not committed: return the credit it used (paise per buyer)."""
    amounts = {b: int(a) for b, a in used.items() if a}
    if amounts:
        _guarded("release", lambda: decider.release(amounts))


def _guarded(name: str, call: Callable[[], None]) -> None:
    try:
        call()
    except Exception as exc:  # a Redis hiccup must not fail the batch; rebuilt from the DB on start
        log.warning("credit %s failed: %s: %s", name, type(exc).__name__, exc)
