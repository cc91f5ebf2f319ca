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
from collections.abc import Iterable, Mapping
from typing import Any

from actors.core.events import RELEASED, Event
from actors.core.risk.types import PassAllDecider, RiskRequest, RiskVerdicts

log = logging.getLogger(__name__)


def make_decider(decider: Any) -> Any:
    """A risk decider from ``decider``: None -> :class:`PassAllDecider`; an object with ``decide`` is
    used as is; any other callable is a factory called with no arguments. Raises TypeError."""
    if decider is None:
        return PassAllDecider()
    if hasattr(decider, "decide"):
        return decider
    if callable(decider):
        return decider()
    raise TypeError(f"not a risk decider or factory: {decider!r}")


async def decide_in_loop(decider: Any, request: RiskRequest) -> RiskVerdicts:
    """Ask ``decider`` about a batch from inside the shard's event loop.

    A decider with ``decide_async``/``verdicts`` (the Ray Serve risk pool client) is awaited: a
    blocking ``.result()`` is not allowed inside an event loop. It fails closed like the client's own
    ``decide``: on timeout or error no pair gets a decision and every credit grant is 0."""
    send = getattr(decider, "decide_async", None)
    if send is None or not hasattr(decider, "verdicts"):
        result: RiskVerdicts = decider.decide(request)
        return result
    if not request.queries and not request.credit_requests:
        return RiskVerdicts()
    try:
        reply = await asyncio.wait_for(send(request), timeout=getattr(decider, "timeout_s", 5.0))
    except Exception as exc:
        decider.failures = getattr(decider, "failures", 0) + 1
        log.warning("risk pool unavailable, failing closed: %s: %s", type(exc).__name__, exc)
        return RiskVerdicts(credit_grants={b: 0 for b in request.credit_requests})
    verdicts: RiskVerdicts = decider.verdicts(request, reply)
    return verdicts


def released_credit(events: Iterable[Event]) -> dict[str, int]:
    """Notional (paise) per buyer of the reservations that ``events`` release."""
    freed: dict[str, int] = {}
    for e in events:
        if e.type == RELEASED:
            p = e.payload
            freed[p.buyer_id] = freed.get(p.buyer_id, 0) + int(p.quantity_kg) * int(p.price)
    return freed


def settle(decider: Any, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
    """Give back credit granted to a batch but not used (decider's ``settle``, when it has one)."""
    _call(decider, "settle", grants, used)


def release(decider: Any, amounts: Mapping[str, int]) -> None:
    """Give back exposure (paise) of released reservations (decider's ``release``)."""
    if amounts:
        _call(decider, "release", amounts)


def give_back(decider: Any, used: Mapping[str, int]) -> None:
    """A batch definitely not committed: return the credit it used (paise per buyer)."""
    amounts = {b: int(a) for b, a in used.items() if a}
    if amounts:
        _call(decider, "release", amounts)


def _call(decider: Any, name: str, *args: Any) -> None:
    fn = getattr(decider, name, None)
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as exc:  # a Redis hiccup must not fail the batch; rebuilt from the DB on start
        log.warning("credit %s failed: %s: %s", name, type(exc).__name__, exc)
