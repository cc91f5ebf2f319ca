"""The FastAPI application: ``create_app(settings, dsn=..., redis_url=...) -> FastAPI``.

The lifespan connects to Ray (``ray.init`` with ``settings.ray_address`` unless already initialised),
looks up the ``shard-directory`` actor in ``settings.ray_namespace``, opens an asyncpg pool and a
Redis client, and starts the per-shard micro-batcher and the WebSocket fan-out. The runtime itself
(migrations, persistence actor, directory) is started by ``tradedesk serve`` via
``actors.runtime.start_runtime`` before the app; the gateway is stateless and any number of
processes may serve the same cluster. Each process also runs the webhook dispatcher
(``gateway.webhooks.dispatcher``, unless ``webhooks_dispatch`` is off): an asyncio task on its own
small pool; the dispatchers of several processes share the work through PostgreSQL row locks.

Middleware order (outermost first): timing/metrics (records the arrival time, epoch ms, that every
command's ``ts`` is taken from), idempotency (POST + ``Idempotency-Key``), ``Allow`` (OPTIONS and
405 with every method of the path, ``gateway.allow``), then routing. The web console is at ``/ui``
(:mod:`gateway.console`). Ops: ``/healthz`` (process up),
``/readyz`` (Ray, PostgreSQL, Redis, risk pool, every ACTIVE shard recovered), ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.core.ids import KEY_PREFIX
from actors.settings import Settings
from gateway import problems
from gateway.allow import AllowMiddleware
from gateway.auth import Authenticator
from gateway.consistency import refresh_lag_metrics
from gateway.edge.body_limit import BodyLimitMiddleware
from gateway.idempotency import IdempotencyMiddleware
from gateway.ratelimit import RateLimiter, default_limits
from gateway.responses import Health, Ready
from gateway.service import GatewayService
from persistence.api_keys import ApiKeyRepo

MAX_BODY_BYTES = 8 * 1024 * 1024


class TimingMiddleware:
    """Stamps ``request.state.arrival_ms`` (epoch ms), rejects oversized bodies (413) and records
    the latency histogram by route template."""

    def __init__(self, app: ASGIApp, get_metrics: Any) -> None:
        self.app = app
        self.get_metrics = get_metrics
        self._children: dict[tuple[str, str, int], Any] = {}  # labelled histograms, per metrics object
        self._of: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        scope.setdefault("state", {})["arrival_ms"] = int(time.time() * 1000)
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m = self.get_metrics()
            if m is not None:
                route = scope.get("route")
                key = (scope["method"], getattr(route, "path", "unmatched"), status["code"])
                child = self._children.get(key)
                if child is None or self._of is not m:
                    if self._of is not m:
                        self._children, self._of = {}, m
                    child = self._children[key] = m.latency.labels(key[0], key[1], str(key[2]))
                child.observe(time.perf_counter() - t0)


def create_app(
    settings: Settings | None = None,
    dsn: str | None = None,
    redis_url: str | None = None,
    *,
    key_prefix: str = KEY_PREFIX,
    directory: Any = None,
    risk: Any = None,
    auth_cache_ttl_s: float = 5.0,
) -> FastAPI:
    """Build the gateway app. ``dsn``/``redis_url`` default to the settings' URLs; ``key_prefix``
    namespaces the gateway's Redis keys (idempotency, rate limits); ``directory`` overrides the
    ``shard-directory`` actor handle (tests); ``risk`` is the risk pool client
    (``actors.risk_pool.RiskPoolClient``) whose health ``/readyz`` and the admin API report."""
    from actors.settings import get_settings

    s = settings or get_settings()
    db = dsn or s.database_url
    rurl = redis_url or s.redis_url
    if not db or not rurl:
        raise ValueError("create_app needs a database URL and a Redis URL")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = GatewayService(s, db, rurl, key_prefix=key_prefix, directory=directory)
        await gw.start()
        app.state.gw = gw
        app.state.risk = risk
        app.state.auth = Authenticator(ApiKeyRepo(gw.pool), cache_ttl_s=auth_cache_ttl_s)
        app.state.limiter = RateLimiter(
            gw.redis, default_limits(s.rate_limit_per_s, s.rate_limit_burst), key_prefix
        )
        from gateway.webhooks.dispatcher import DispatchConfig, Dispatcher
        from gateway.webhooks.secrets import box_for

        app.state.webhook_box = box_for(s)
        app.state.webhook_grace_s = s.webhook_rotation_grace_s
        app.state.webhooks = (
            await Dispatcher.open(
                db, app.state.webhook_box, DispatchConfig.from_settings(s), gw.metrics.registry
            )
            if s.webhooks_dispatch
            else None
        )
        from gateway.stream import StreamHub

        app.state.hub = StreamHub(gw, app.state.auth)
        await app.state.hub.start()  # follows key revocation notices
        # Ray, pydantic and FastAPI leave a large heap of long-lived objects; freezing them keeps
        # the collector from rescanning them on every full collection (pauses on the hot path).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await app.state.hub.close()
            if app.state.webhooks is not None:
                await app.state.webhooks.stop()
            await gw.close()

    app = FastAPI(
        title="tradedesk",
        version="1",
        summary="Matching server for physical commodity trading",
        description=(
            "Quantities are integer kg inside (send {value, unit}); prices integer paise per kg. "
            "Errors are application/problem+json (RFC 9457). Authenticate with `Authorization: Bearer <key>`."
        ),
        lifespan=lifespan,
        # No OpenTelemetry export: metrics are Prometheus (/metrics). FastAPI's native telemetry
        # otherwise looks up the global providers (environment reads) on every request, measured at
        # 4-8 % of the gateway's CPU per single order (docs/gateway.md, "Metrics").
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    problems.install_openapi(app)

    async def resolve(token: str) -> Any:
        auth = getattr(app.state, "auth", None)
        return await auth.resolve(token) if auth is not None else None

    def get_redis() -> Any:
        gw = getattr(app.state, "gw", None)
        return gw.redis if gw is not None else None

    def get_metrics() -> Any:
        gw = getattr(app.state, "gw", None)
        return gw.metrics if gw is not None else None

    app.add_middleware(AllowMiddleware, get_routes=lambda: app.routes)
    app.add_middleware(
        IdempotencyMiddleware,
        get_redis=get_redis,
        resolve=resolve,
        ttl_s=s.idempotency_ttl_s,
        prefix=key_prefix,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(TimingMiddleware, get_metrics=get_metrics)

    # the ops routes first: the router tries routes in order, and probes hit /healthz often
    @app.get("/healthz", tags=["ops"], summary="Process is up", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Ray, PostgreSQL, Redis, the risk pool and every ACTIVE shard are up",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "A dependency or a shard is not ready (same body)"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """200 ``ready`` once Ray, PostgreSQL and Redis answer, the risk pool is not down and every
        ACTIVE shard has recovered its book (``shards``: ``{shard_id: ready | recovering | down}``;
        IDLE and DRAINED shards are not waited for); else 503 ``not ready``."""
        gw: GatewayService = request.app.state.gw
        checks: dict[str, Any] = {}
        readiness: dict[str, Any] = {"ready": False, "shards": {}}

        async def check(name: str, coro: Any) -> None:
            try:
                await asyncio.wait_for(coro, timeout=2.0)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"down: {type(exc).__name__}"

        async def shard_readiness() -> None:
            readiness.update(await gw.directory.readiness.remote())

        await asyncio.gather(
            check("ray", shard_readiness()),
            check("postgres", gw.pool.fetchval("SELECT 1")),
            check("redis", gw.redis.ping()),
        )
        if checks["ray"] == "ok":
            checks["shards"] = "ok" if readiness["ready"] else "recovering"
        risk = await routes_admin.risk_status(request)
        checks["risk_pool"] = str(risk.get("status", "UNKNOWN")).lower()
        ok = (
            all(checks.get(k) == "ok" for k in ("ray", "postgres", "redis", "shards"))
            and checks["risk_pool"] != "down"
        )
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks, "shards": readiness["shards"]},
            status_code=200 if ok else 503,
        )

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        gw: GatewayService = request.app.state.gw
        if gw.batcher is not None:
            for sid, d in gw.batcher.depths().items():
                gw.metrics.queue_depth.labels(sid).set(d)
        gw.metrics.ws_clients.set(request.app.state.hub.clients)
        with contextlib.suppress(Exception):  # a database outage must not break the scrape
            await refresh_lag_metrics(gw.pool, gw.lag)
        if gw.directory is not None:
            with contextlib.suppress(Exception):  # a slow or missing directory never fails a scrape
                for row in await asyncio.wait_for(gw.directory.list.remote(), 2.0):
                    if row.get("start_recovery_s") is not None:
                        gw.metrics.shard_recovery.labels(row["shard_id"], row["start_kind"]).set(
                            row["start_recovery_s"]
                        )
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from gateway import (
        routes_admin,
        routes_cluster,
        routes_controls,
        routes_ledger,
        routes_market,
        routes_negotiation,
        routes_orders,
        routes_settlement,
        stream,
    )
    from gateway.webhooks import routes as routes_webhooks

    app.include_router(routes_orders.router)
    app.include_router(routes_negotiation.router)
    app.include_router(routes_market.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_cluster.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_settlement.router)
    app.include_router(routes_ledger.router)
    app.include_router(routes_controls.router)
    app.include_router(stream.router)
    from gateway import console

    console.install(app)  # the web console at /ui and its read endpoints

    return app


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (``port`` 0 = a free port) in a background thread with
    its own event loop; for tests and benchmarks. ``start()`` returns the base URL."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import threading

        import uvicorn

        cfg = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout: float = 60.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
