"""The settlement actor: a thin Ray shell around :class:`actors.settlement_service.SettlementService`.

One named actor ``settlement`` in the runtime's namespace, ``max_restarts=-1`` and
``max_task_retries=0`` (a command is never re-run behind the client's back: a client retries with
the same delivery key or payment_ref and gets the original result). It owns its asyncpg pool (made
inside the actor's event loop on the first call), recovers from the settlement log before it takes
commands, then tails the shards and sweeps on the wall clock in the background
(:meth:`SettlementService.run_periodic`). Started by :func:`actors.runtime.start_runtime`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from actors.core.ids import KEY_PREFIX, SETTLEMENT_ACTOR
from actors.core.posttrade.terms import DEFAULT_GRACE_DAYS, DEFAULT_TOLERANCE_BPS, Terms
from actors.placement import named_actor_options
from actors.settlement_service import SettlementService, SettlementUnavailable

__all__ = ["SettlementActor", "SettlementHost", "SettlementUnavailable", "get_or_create_settlement"]


class SettlementHost:
    """The Ray actor class. ``dsn``: PostgreSQL; ``redis_url``/``key_prefix``: the exposure cache
    (None = no cache); ``grace_days``, ``tolerance_bps``, ``party_terms`` ({party: days}): the
    desk's terms; ``tail_s``/``sweep_s``: background tailing and sweep periods (0 = no sweep)."""

    def __init__(
        self,
        dsn: str,
        redis_url: str | None = None,
        key_prefix: str = KEY_PREFIX,
        grace_days: int = DEFAULT_GRACE_DAYS,
        tolerance_bps: int = DEFAULT_TOLERANCE_BPS,
        party_terms: dict[str, int] | None = None,
        tail_s: float = 0.5,
        sweep_s: float = 3600.0,
    ) -> None:
        self.dsn, self.redis_url, self.key_prefix = dsn, redis_url, key_prefix
        self.terms = Terms(
            party_payment_terms_days=dict(party_terms or {}),
            grace_days=grace_days,
            tolerance_bps=tolerance_bps,
        )
        self.tail_s, self.sweep_s = tail_s, sweep_s
        self.service: SettlementService | None = None
        self._lock: asyncio.Lock | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def _svc(self) -> SettlementService:
        if self.service is not None:
            return self.service
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.service is None:
                import asyncpg

                from persistence.exposure import ExposureStore
                from persistence.settlement_store import PostgresSettlementStore

                pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
                exposure = ExposureStore.from_url(self.redis_url, self.key_prefix) if self.redis_url else None
                svc = SettlementService(PostgresSettlementStore(pool), self.terms, exposure)
                await svc.start()
                self.service = svc
                self._loop_task = asyncio.get_running_loop().create_task(
                    svc.run_periodic(self.tail_s, self.sweep_s)
                )
        return self.service

    async def ping(self) -> dict[str, Any]:
        """Recover if not yet done; the service's info."""
        return (await self._svc()).info()

    async def catch_up(self) -> int:
        """See :meth:`SettlementService.catch_up`."""
        return await (await self._svc()).catch_up()

    async def deliver(self, *args: Any, **kw: Any) -> dict[str, Any]:
        """See :meth:`SettlementService.deliver`."""
        return await (await self._svc()).deliver(*args, **kw)

    async def pay(self, *args: Any, **kw: Any) -> dict[str, Any]:
        """See :meth:`SettlementService.pay`."""
        return await (await self._svc()).pay(*args, **kw)

    async def cancel(self, *args: Any, **kw: Any) -> dict[str, Any]:
        """See :meth:`SettlementService.cancel`."""
        return await (await self._svc()).cancel(*args, **kw)

    async def sweep(self, *args: Any, **kw: Any) -> dict[str, Any]:
        """See :meth:`SettlementService.sweep`."""
        return await (await self._svc()).sweep(*args, **kw)


SettlementActor = ray.remote(max_restarts=-1, max_task_retries=0)(SettlementHost)


def get_or_create_settlement(
    dsn: str,
    redis_url: str | None = None,
    *,
    namespace: str | None = None,
    detached: bool = False,
    placement: dict[str, Any] | None = None,
    **kw: Any,
) -> Any:
    """Handle of the named ``settlement`` actor in ``namespace``, created if missing; ``placement``:
    more actor options (the head node of a cluster); ``kw`` go to :class:`SettlementHost`."""
    opts = named_actor_options(SETTLEMENT_ACTOR, namespace, detached, **(placement or {}))
    return SettlementActor.options(**opts).remote(dsn, redis_url, **kw)
