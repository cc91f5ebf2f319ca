"""The replay's HTTP side: API paths discovered from OpenAPI and a client with retries."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Endpoints:
    """API paths, discovered from the server's OpenAPI document (defaults when absent)."""

    parties: str = "/v1/admin/parties"
    api_keys: str = "/v1/admin/api-keys"
    sell: str = "/v1/orders/availabilities"
    buy: str = "/v1/orders/requirements"
    batch: str | None = "/v1/orders/batch"

    def single(self, body: dict[str, Any]) -> str:
        """Path for placing one order of ``body["side"]``."""
        return self.sell if body.get("side") == "SELL" else self.buy

    @classmethod
    def discover(cls, openapi: dict[str, Any]) -> Endpoints:
        ep = cls(batch=None)
        posts = [p for p, ops in (openapi.get("paths") or {}).items() if "post" in ops and "{" not in p]
        for p in posts:
            low = p.lower()
            if low.endswith("/parties"):
                ep.parties = p
            elif (
                "key" in low and "admin" in low and low.rstrip("/").endswith(("keys", "api-keys", "api_keys"))
            ):
                ep.api_keys = p
            elif low.endswith("/orders/batch") or low.endswith("/orders:batch"):
                ep.batch = p
            elif low.endswith("/availabilities"):
                ep.sell = p
            elif low.endswith("/requirements"):
                ep.buy = p
        return ep


def problem_reason(r: Any) -> str:
    """The ``reason`` (else ``title``, else ``http_<status>``) of a problem+json answer."""
    try:
        body = r.json()
    except ValueError:
        return f"http_{r.status_code}"
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("title") or f"http_{r.status_code}")
    return f"http_{r.status_code}"


@dataclass(slots=True)
class Reply:
    """One HTTP answer, as the replay reads it: status, headers (lower-case names) and body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", "replace")


class Client:
    """Thin async HTTP client (aiohttp): auth header, retries on 429/5xx/connection errors (honours
    Retry-After). aiohttp rather than httpx: the replay sends tens of thousands of small requests
    and measured less CPU per request with it (issue note of the speed work). The session is made
    in the running event loop on first use."""

    def __init__(self, base: str, timeout_s: float = 60.0, concurrency: int = 8) -> None:
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self.sem = asyncio.Semaphore(concurrency)
        self.retries = 0
        self._session: Any = None

    def _http(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                self.base, timeout=aiohttp.ClientTimeout(total=self.timeout_s), raise_for_status=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        attempts: int = 8,
        idempotency_key: str | None = None,
    ) -> Reply:
        """Returns the :class:`Reply` of the last attempt (``token`` None: no Authorization header).
        ``idempotency_key`` is sent as the ``Idempotency-Key`` header, so a retried POST is applied
        once. Raises ``aiohttp.ClientError`` or TimeoutError when the last attempt fails to connect."""
        import aiohttp

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        delay = 0.2
        resp: Reply | None = None
        for i in range(attempts):
            async with self.sem:
                try:
                    async with self._http().request(method, path, data=data, headers=headers) as r:
                        content = await r.read()
                        resp = Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, content)
                except (aiohttp.ClientError, TimeoutError):
                    if i == attempts - 1:
                        raise
                    resp = None
            # 500 too: the replay's client order ids are deterministic, so a retried order that did go
            # through returns its original result (the shard deduplicates per party and client order id)
            if resp is not None and resp.status_code not in (429, 500, 502, 503, 504):
                return resp
            self.retries += 1
            wait = delay
            if resp is not None:
                with contextlib.suppress(ValueError):
                    wait = max(wait, float(resp.headers.get("retry-after", delay)))
            await asyncio.sleep(min(wait, 5.0))
            delay = min(delay * 2, 5.0)
        assert resp is not None
        return resp


def key_from(payload: Any) -> str | None:
    """The API key token in an issue-key answer (``token``/``api_key``/``key``/``secret``), else None."""
    if isinstance(payload, dict):
        for k in ("token", "api_key", "key", "secret"):
            v = payload.get(k)
            if isinstance(v, str) and len(v) >= 16:
                return v
    return None
