"""The risk decider a shard actor uses: :class:`RiskPoolClient`, one Serve call per command batch.

Picklable (the Serve handle and the Redis client are created lazily in the process that uses it), so
the directory hands the same client to every shard actor. It implements the full
:class:`~actors.core.risk.types.RiskDecider` protocol and fails closed: when the pool does not
answer within ``timeout_s`` or refuses the request (overload: ``max_queued_requests``), no pair gets
a decision and every credit grant is 0, so the batch allocates nothing (orders still rest on the book).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, cast

from actors.core.risk.types import AsyncRiskDecider, RiskReply, RiskRequest, RiskVerdicts
from actors.risk_pool.wire import APP_NAME, DEPLOYMENT_NAME, decode_decision, to_wire
from persistence.exposure import DEFAULT_PREFIX, ExposureStore

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponse

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class PoolUnavailable(RuntimeError):
    """The risk pool refused or failed a request (overload, timeout, no replica)."""


class RiskPoolClient:
    """Client of the risk pool's Serve application ``app_name`` (see the module doc).

    Args:
        redis_url: Redis of the exposure counters (``settle``/``release`` go there directly).
        prefix: Redis key prefix.
        app_name / deployment_name: the Serve application and deployment.
        timeout_s: how long ``decide`` (and the shard, for ``decide_async``) waits, seconds.
    """

    needs_queries = True

    def __init__(
        self,
        redis_url: str,
        prefix: str = DEFAULT_PREFIX,
        app_name: str = APP_NAME,
        deployment_name: str = DEPLOYMENT_NAME,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.app_name = app_name
        self.deployment_name = deployment_name
        self.timeout_s = timeout_s
        self._handle: DeploymentHandle | None = None
        self._store: ExposureStore | None = None
        self.failures = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_store"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def handle(self) -> DeploymentHandle:
        """The Serve handle of the deployment (created on first use)."""
        if self._handle is None:
            from ray import serve

            self._handle = serve.get_deployment_handle(self.deployment_name, app_name=self.app_name)
        return self._handle

    @property
    def store(self) -> ExposureStore:
        """The Redis exposure store (created on first use)."""
        if self._store is None:
            self._store = ExposureStore.from_url(self.redis_url, self.prefix)
        return self._store

    def _send(self, request: RiskRequest) -> DeploymentResponse:
        return cast("DeploymentResponse", self.handle.decide.remote(to_wire(request)))

    def decide_async(self, request: RiskRequest) -> Awaitable[RiskReply]:
        """Send a request without blocking; await the result for the raw reply (see :meth:`verdicts`)."""
        return cast("Awaitable[RiskReply]", self._send(request))

    def verdicts(self, request: RiskRequest, reply: RiskReply) -> RiskVerdicts:
        """Turn a pool reply into :class:`RiskVerdicts` for ``request`` (decisions in query order)."""
        encoded, grants = reply
        decisions = {q.key: decode_decision(t) for q, t in zip(request.queries, encoded, strict=True)}
        return RiskVerdicts(decisions=decisions, credit_grants=dict(grants))

    def decide(self, request: RiskRequest) -> RiskVerdicts:
        """Vet a shard batch through the pool; fails closed (see the module doc)."""
        if not request.queries and not request.credit_requests:
            return RiskVerdicts()
        try:
            reply: RiskReply = self._send(request).result(timeout_s=self.timeout_s)
        except Exception as exc:
            self.failures += 1
            log.warning("risk pool unavailable, failing closed: %s", type(exc).__name__)
            return RiskVerdicts(credit_grants={b: 0 for b in request.credit_requests})
        return self.verdicts(request, reply)

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
        """Give back credit granted but not used by a batch (paise)."""
        if grants or used:
            self.store.settle(grants, used)

    def release(self, amounts: Mapping[str, int]) -> None:
        """Give back exposure (paise) of released reservations or settled trades."""
        if amounts:
            self.store.release(amounts)

    def stats(self) -> dict[str, Any]:
        """One replica's stats (whichever answers; see ``RiskPoolReplica.stats``)."""
        result: dict[str, Any] = self.handle.stats.remote().result(timeout_s=self.timeout_s)
        return result

    def all_stats(self, attempts: int = 32) -> list[dict[str, Any]]:
        """Stats of every replica reached in ``attempts`` calls (requests are spread over replicas)."""
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(attempts):
            st = self.stats()
            seen[str(st.get("replica"))] = st
        return list(seen.values())


if TYPE_CHECKING:

    def _conforms(client: RiskPoolClient) -> AsyncRiskDecider:  # mypy: the client is the full protocol
        return client
