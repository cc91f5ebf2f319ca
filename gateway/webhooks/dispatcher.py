"""The webhook dispatcher: an asyncio task in each gateway process that turns committed events into
signed HTTP deliveries, at least once (docs/webhooks.md, "Outbox and delivery").

Each pass: (1) fan-out: for every stream of the events table, the next committed events after the
stream's cursor become delivery rows (:meth:`persistence.webhooks.WebhookRepo.fan_out`); (2)
delivery: due pending rows are claimed with a lease (``FOR UPDATE SKIP LOCKED``), POSTed
concurrently (at most ``webhook_concurrency`` at once) and their outcome recorded: 2xx ->
``delivered``; anything else (non-2xx status, a redirect, a timeout, a refused connection) -> a new
``next_attempt_at`` after the backoff, or ``dead`` after ``webhook_max_attempts`` tries. All state is
in PostgreSQL, so any number of gateway processes may run a dispatcher over one database, and a new
dispatcher after a restart carries on where the old one stopped: a delivery claimed by a process
that died falls due again when its lease ends (``lease_s``), so it may be sent twice, never lost.

Signing: Standard Webhooks (``standardwebhooks.Webhook.sign``): ``webhook-id`` =
:func:`actors.core.webhooks.message_id`, ``webhook-timestamp`` = this attempt's time (epoch s),
``webhook-signature`` = ``v1,<base64 HMAC-SHA256>`` for each live secret of the endpoint, newest
first, space-separated (two during a rotation's grace period).

Backoff: ``tenacity.wait_exponential_jitter`` (initial ``webhook_backoff_initial_s``, doubling,
plus up to ``initial`` s of random jitter, capped at ``webhook_backoff_max_s``); the delay is stored
as ``next_attempt_at`` rather than slept in process, so it survives restarts.

HTTP: ``httpx.AsyncClient`` with ``webhook_timeout_s`` (connect, read, write, pool), redirects never
followed (a 3xx is a failed try: the receiver must give its final URL), proxies from the
environment ignored, the response body never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import tenacity
from standardwebhooks import Webhook

from actors.core.webhooks import message_body, message_id, url_problem
from gateway.webhooks.secrets import SecretBox
from persistence.webhooks import Claimed, WebhookRepo

log = logging.getLogger("tradedesk.webhooks")
USER_AGENT = "tradedesk-webhooks/1"
#: the dispatcher's connections in ``pg_stat_activity``
APPLICATION_NAME = "tradedesk-webhooks"


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Tunables (seconds): see ``actors.settings.Settings`` ``webhook_*``. ``lease_s``: how long a
    claimed delivery is held before another dispatcher may take it (longer than a try can last)."""

    max_attempts: int = 8
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 6 * 3600.0
    timeout_s: float = 10.0
    poll_s: float = 0.5
    concurrency: int = 16
    batch: int = 64
    page: int = 1000
    lease_s: float = 60.0

    @classmethod
    def from_settings(cls, s: Any) -> DispatchConfig:
        return cls(
            max_attempts=s.webhook_max_attempts,
            backoff_initial_s=s.webhook_backoff_initial_s,
            backoff_max_s=s.webhook_backoff_max_s,
            timeout_s=s.webhook_timeout_s,
            poll_s=s.webhook_poll_s,
            concurrency=s.webhook_concurrency,
            lease_s=max(60.0, 4 * s.webhook_timeout_s),
        )


def backoff(cfg: DispatchConfig) -> Callable[[int], float]:
    """``delay(n)``: seconds to wait after the ``n``-th failed try (n >= 1), from tenacity's
    exponential backoff with jitter."""
    wait = tenacity.wait_exponential_jitter(
        initial=cfg.backoff_initial_s, max=cfg.backoff_max_s, jitter=cfg.backoff_initial_s
    )

    def delay(n: int) -> float:
        state = tenacity.RetryCallState(tenacity.AsyncRetrying(), None, (), {})
        state.attempt_number = n
        return float(wait(state))

    return delay


def sign(secrets: list[str], msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent at ``at`` under each secret (newest first)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets),
    }


class Dispatcher:
    """The outbox dispatcher over an asyncpg ``pool``; ``box`` opens the stored secrets.
    :meth:`start` runs it as a task of the running loop, :meth:`stop` ends it (a try in flight is
    abandoned: its lease makes it due again)."""

    def __init__(
        self,
        pool: Any,
        box: SecretBox,
        cfg: DispatchConfig,
        client: httpx.AsyncClient | None = None,
        registry: Any = None,
    ) -> None:
        self.repo = WebhookRepo(pool)
        self.metrics = WebhookMetrics(registry) if registry is not None else None
        self.box = box
        self.cfg = cfg
        self.delay = backoff(cfg)
        self._client = client
        self._own_client = client is None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._own_pool: Any = None
        self._stopping = False
        self.passes = 0

    @classmethod
    async def open(cls, dsn: str, box: SecretBox, cfg: DispatchConfig, registry: Any = None) -> Dispatcher:
        """A started dispatcher on its own small asyncpg pool (closed by :meth:`stop`), so that
        deliveries never take the API's connections; its metrics go to the Prometheus ``registry``."""
        import asyncpg

        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=3, server_settings={"application_name": APPLICATION_NAME}
        )
        d = cls(pool, box, cfg, registry=registry)
        d._own_pool = pool
        await d.start()
        return d

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.cfg.timeout_s),
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_connections=self.cfg.concurrency),
                headers={"user-agent": USER_AGENT},
            )
        return self._client

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    def wake(self) -> None:
        """Start the next pass now (after a redelivery request) instead of after ``poll_s``."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the pass under way (its tries end within ``timeout_s``), then end the task; a try
        still running after that is abandoned and its lease makes it due again later."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), self.cfg.timeout_s + 5.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._own_pool is not None:
            await self._own_pool.close()
            self._own_pool = None

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            busy = False
            pause = self.cfg.poll_s
            try:
                busy = await self.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be restarting: back off, then try again
                failures += 1
                pause = min(30.0, self.cfg.poll_s * 2**failures)
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "webhook dispatcher pass failed (%d): %s: %s", failures, type(exc).__name__, exc
                    )
            if not busy and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
                self._wake.clear()

    async def run_once(self) -> bool:
        """One pass (fan-out of every stream, then one claimed batch). True when it found work."""
        moved = 0
        lag = await self.repo.streams()
        for stream, behind in lag.items():
            if behind > 0:
                n = await self.repo.fan_out(stream, self.cfg.page)
                moved += n
                lag[stream] = behind - n
        if self.metrics is not None:
            self.metrics.lag.set(sum(lag.values()))
        claimed = await self.repo.claim(self.cfg.batch, self.cfg.lease_s)
        if claimed:
            sem = asyncio.Semaphore(self.cfg.concurrency)

            async def one(c: Claimed) -> None:
                async with sem:
                    await self.attempt(c)

            await asyncio.gather(*(one(c) for c in claimed))
        self.passes += 1
        return bool(moved or claimed)

    async def attempt(self, c: Claimed) -> None:
        """One try of a claimed delivery, and its outcome recorded."""
        status: int | None = None
        problem = url_problem(c.url)
        if problem is None:
            try:
                secrets = [self.box.open(s) for s in c.secrets]
                if not secrets:
                    raise ValueError("the endpoint has no live secret")
                body = json.dumps(
                    message_body(c.event_type, c.ts, c.stream_id, c.seq, c.schema_version, c.payload),
                    separators=(",", ":"),
                )
                headers = sign(
                    secrets, message_id(c.stream_id, c.seq, c.endpoint_id), datetime.now(UTC), body
                )
                headers["content-type"] = "application/json"
                async with self.client().stream("POST", c.url, content=body, headers=headers) as resp:
                    status = resp.status_code
                problem = None if 200 <= status < 300 else _status_error(status)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
            except ValueError as exc:
                problem = str(exc)
        if problem is None and status is not None:
            await self.repo.delivered(c, status)
            self._count("delivered")
            return
        tries = c.attempts + 1
        retry = None if tries >= self.cfg.max_attempts else self.delay(tries)
        await self.repo.failed(c, status, problem or "failed", retry)
        self._count("retry" if retry is not None else "dead")
        if retry is None:
            log.info(
                "webhook %s to endpoint %s dead after %d tries: %s",
                c.delivery_id,
                c.endpoint_id,
                tries,
                problem,
            )

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.attempts.labels(outcome).inc()


class WebhookMetrics:
    """Prometheus collectors of a dispatcher, in the gateway's ``registry``."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.attempts = Counter(
            "tradedesk_webhook_attempts_total",
            "Webhook delivery tries by outcome (delivered, retry, dead)",
            ["outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "tradedesk_webhook_outbox_lag_events",
            "Committed events not yet fanned out to webhook deliveries",
            registry=registry,
        )


def _status_error(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"
