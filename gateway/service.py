"""The gateway's shared state (one per process, on ``app.state.gw``): connections, shard routing,
the micro-batcher, linked-party lookups and Prometheus metrics.

Shard routing: a place command goes to ``(region, commodity)`` via the directory actor
``shard-directory`` (``get_or_create``); a command on an existing id (``O-``, ``P-``, ``R-``, ``A-``)
goes to ``actors.core.ids.shard_of(id)``. Handles are cached per shard id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from actors.core.ids import DIRECTORY_ACTOR, KEY_PREFIX, shard_actor_name, shard_id_for, shard_of
from actors.settings import Settings
from actors.shard_outcomes import OUTCOME_UNKNOWN, CommitUnknown
from gateway.batching import BatchFailed, MicroBatcher, Overloaded
from gateway.consistency import LagGauges, ReadYourWrites
from gateway.edge.singleflight import SingleFlight
from gateway.problems import Problem

DIRECTORY_NAME = DIRECTORY_ACTOR


class Metrics:
    """Prometheus collectors in a private registry (several apps may live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "tradedesk_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tradedesk_gateway_batch_size",
            "Commands per shard actor call",
            ["shard"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "tradedesk_gateway_batch_seconds",
            "Shard actor call latency (commit included)",
            ["shard"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "tradedesk_gateway_shard_queue_depth",
            "Commands queued or in flight",
            ["shard"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "tradedesk_rejects_total",
            "Commands rejected by shards, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.overloads = Counter(
            "tradedesk_gateway_overload_total",
            "503 answers for full shard queues",
            ["shard"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "tradedesk_risk_circuit_open",
            "1 when the risk ML tier's circuit breaker is open",
            registry=self.registry,
        )
        self.ws_clients = Gauge("tradedesk_ws_clients", "Open WebSocket connections", registry=self.registry)
        self.shard_recovery = Gauge(
            "tradedesk_shard_recovery_seconds",
            "Seconds a running shard took to load its snapshot and log tail when its actor started "
            "(start=cold: a new actor; start=restart: Ray restarted it after it died)",
            ["shard", "start"],
            registry=self.registry,
        )


class GatewayService:
    """Connections and routing. ``start()`` inside the app's event loop, ``close()`` on shutdown."""

    def __init__(
        self,
        settings: Settings,
        dsn: str,
        redis_url: str,
        key_prefix: str = KEY_PREFIX,
        directory: Any = None,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.namespace = settings.ray_namespace
        self.pool: Any = None
        self.redis: Any = None
        self.directory: Any = directory
        self.handles: dict[str, Any] = {}
        self.batcher: MicroBatcher | None = None
        self.metrics = Metrics()
        self.lag = LagGauges(self.metrics.registry)
        self.rw = ReadYourWrites()  # read-your-writes over the asynchronous projections
        self._linked: dict[str, tuple[tuple[str, ...], float]] = {}
        self._link_loads: SingleFlight[str, tuple[str, ...]] = SingleFlight()
        self.started = time.time()

    async def start(self) -> None:
        import asyncpg
        import ray
        import redis.asyncio as aioredis

        from actors.core.units import UNITS, to_kg

        for u in UNITS:  # build the unit registry now, not inside the first request (seconds)
            to_kg(1, u)
        if not ray.is_initialized():
            await asyncio.to_thread(
                ray.init,
                address=self.settings.ray_address or None,
                namespace=self.namespace,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        if self.directory is None:
            self.directory = ray.get_actor(DIRECTORY_NAME, namespace=self.namespace)
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        # a blocking pool: under a burst, requests wait for a connection instead of failing
        rpool = aioredis.BlockingConnectionPool.from_url(self.redis_url, max_connections=64, timeout=10)
        self.redis = aioredis.Redis(connection_pool=rpool)
        s = self.settings
        self.batcher = MicroBatcher(
            self._submit,
            window_ms=s.gateway_batch_window_ms,
            max_batch=s.gateway_batch_max,
            queue_max=s.gateway_queue_max,
            on_batch=self._on_batch,
        )

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        if self.pool is not None:
            await self.pool.close()
        if self.redis is not None:
            await self.redis.aclose()
            await self.redis.connection_pool.disconnect()

    # -- shards ------------------------------------------------------------------------------------
    def _on_batch(self, shard_id: str, size: int, seconds: float) -> None:
        self.metrics.batch_size.labels(shard_id).observe(size)
        self.metrics.batch_seconds.labels(shard_id).observe(seconds)

    async def _submit(self, shard_id: str, commands: list[Any]) -> list[Any]:
        handle = await self.handle(shard_id)
        try:
            return list(await handle.submit.remote(commands))
        except Exception:
            fresh = await self._replaced(shard_id, handle)
            if fresh is None:
                raise
            return list(await fresh.submit.remote(commands))

    async def _replaced(self, shard_id: str, handle: Any) -> Any:
        """After a failed call on ``handle``: the shard's new actor when the directory stopped the
        old one on purpose (idle stop, move: it ran nothing after its drain, so the call may be sent
        again), else None. Drops the cached handle either way."""
        self.handles.pop(shard_id, None)
        try:
            fresh = await self.directory.get.remote(shard_id)
        except Exception:
            return None
        if fresh is None or fresh._actor_id == handle._actor_id:
            return None
        self.handles[shard_id] = fresh
        return fresh

    async def handle_for(self, region: str, commodity: str) -> Any:
        """Handle of the (region, commodity) shard, creating the shard if the shard policy allows.
        Raises problems: 409 ``no-market``, 503 ``shard-capacity`` (actors.shard_policy)."""
        sid = shard_id_for(region, commodity)
        h = self.handles.get(sid)
        if h is None:
            h = await self._ask_directory(self.directory.get_or_create.remote(region, commodity))
            self.handles[sid] = h
        return h

    async def _ask_directory(self, call: Any) -> Any:
        """Await a directory call that returns a shard handle; a refusal becomes its problem."""
        from actors.shard_policy import ShardRefused

        try:
            return await call
        except ShardRefused as exc:
            headers = {"Retry-After": "5"} if exc.slug == "shard-capacity" else None
            raise Problem(exc.slug, exc.detail, headers=headers) from None

    async def handle(self, shard_id: str, create: bool = False) -> Any:
        """Handle of an existing shard; raises a 404 problem when the shard is unknown."""
        h = self.handles.get(shard_id)
        if h is not None:
            return h
        import ray

        try:
            h = ray.get_actor(shard_actor_name(shard_id), namespace=self.namespace)
        except ValueError:
            h = None
        if h is None:
            h = await self._ask_directory(self.directory.get.remote(shard_id))
            if h is None:
                raise Problem("not-found", f"no shard {shard_id}")
        self.handles[shard_id] = h
        return h

    async def list_shards(self) -> list[dict[str, Any]]:
        """The directory's shard rows plus the projector's position and lag of each
        (``projector_seq``, ``projector_lag_events``, ``projector_lag_s``)."""
        from gateway.consistency import refresh_lag_metrics, with_lag

        rows = await self.directory.list.remote()
        out = []
        for r in rows or []:
            if isinstance(r, str):
                region, _, commodity = r.rpartition(".")
                out.append({"shard_id": r, "region": region, "commodity": commodity})
            else:
                out.append(dict(r))
        try:
            pos = await refresh_lag_metrics(self.pool, self.lag)
        except Exception:  # the list still answers while PostgreSQL is down (lag fields null)
            pos = {}
        return with_lag(out, pos)

    def shard_for_id(self, entity_id: str) -> str:
        sid = shard_of(entity_id)
        if sid is None:
            raise Problem("not-found", f"no such id {entity_id}")
        return sid

    async def run(self, shard_id: str, commands: list[Any]) -> list[dict[str, Any]]:
        """Send commands to ``shard_id`` through the micro-batcher; results in order.

        Raises problems: 503 ``overloaded`` (queue full, Retry-After), ``unavailable`` (shard call failed:
        nothing was acknowledged, retry with the same client order ids) or ``outcome-unknown`` (the
        commit's answer was lost: retry with the same client_order_id)."""
        assert self.batcher is not None
        self.metrics.queue_depth.labels(shard_id).set(self.batcher.depth(shard_id))
        try:
            results = await self.batcher.submit(shard_id, commands)
        except Overloaded as exc:
            self.metrics.overloads.labels(shard_id).inc()
            raise Problem(
                "overloaded",
                f"shard {shard_id} has {exc.depth} commands queued",
                headers={"Retry-After": str(exc.retry_after_s)},
                retry_after_s=exc.retry_after_s,
            ) from None
        except BatchFailed as exc:
            cause = exc.__cause__
            self.handles.pop(shard_id, None)
            # the shard could not see its commit's outcome, or our call timed out while it ran
            unknown = (
                isinstance(cause, CommitUnknown | TimeoutError) or "CommitUnknown" in type(cause).__name__
            )
            if unknown:
                raise Problem("outcome-unknown", OUTCOME_UNKNOWN, headers={"Retry-After": "1"}) from None
            msg = "the shard could not process the request; nothing was acknowledged, retry"
            if cause is not None and "Draining" in type(cause).__name__ + str(cause)[:200]:
                msg = f"shard {shard_id} is draining"
            raise Problem("unavailable", msg, headers={"Retry-After": "1"}) from None
        for c, r in zip(commands, results, strict=False):
            if isinstance(r, dict):
                if r.get("status") == "REJECTED":
                    self.metrics.rejects.labels(str(r.get("reason"))).inc()
                self.rw.note(getattr(c, "party_id", None), shard_id, (r,))
        return results

    async def query(self, shard_id: str, name: str, **kw: Any) -> Any:
        """Read-side call on a shard (``best_bid_ask``, ``depth``, ``get_order``, ``search``...)."""
        h = await self.handle(shard_id)
        try:
            return await h.query.remote(name, **kw)
        except Exception:
            fresh = await self._replaced(shard_id, h)
            if fresh is not None:
                with contextlib.suppress(Exception):
                    return await fresh.query.remote(name, **kw)
            raise Problem(
                "unavailable", f"shard {shard_id} did not answer", headers={"Retry-After": "1"}
            ) from None

    # -- parties -----------------------------------------------------------------------------------
    async def linked_parties(self, party_id: str) -> tuple[str, ...]:
        """Parties linked to ``party_id`` (both directions), cached for 5 s; concurrent misses share
        one PostgreSQL read."""
        hit = self._linked.get(party_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return await self._link_loads.run(party_id, lambda: self._load_links(party_id))

    async def _load_links(self, party_id: str) -> tuple[str, ...]:
        from persistence.parties import PartyNotFound, PartyRepository

        try:
            links = tuple(sorted(await PartyRepository(self.pool).linked_parties(party_id)))
        except PartyNotFound:
            links = ()
        self._linked[party_id] = (links, time.monotonic() + 5.0)
        return links
