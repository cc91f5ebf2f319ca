"""``Idempotency-Key`` handling for every POST, as ASGI middleware backed by Redis.

Keys are scoped to the caller's API key id: ``<prefix>idem:<key_id>:<Idempotency-Key>`` holds JSON
``{"state": "pending"|"done", "fp": <sha256 of method, path and canonical JSON body>, "status",
"content_type", "body"}`` with a TTL (``idempotency_ttl_s``, default 24 h).

- first request: a ``pending`` marker is set atomically (``SET NX``), the request runs, and its
  response is stored (unless it is a 5xx, 429 or 503, which the client should retry for real);
- same key, same request: the stored response is returned with ``Idempotent-Replayed: true``;
- same key, different method/path/body: 422 ``idempotency-key-reused``;
- same key while the first is still running: 409 ``idempotency-in-progress`` with ``Retry-After``.

Requests without a valid API key pass through untouched (the route answers 401). The header is
optional; the shard's client-order-id dedup remains the authority across restarts and TTLs.

Secrets never enter the store: before a JSON object response is stored, each top-level field named
in :data:`SECRET_FIELDS` (the API token of ``POST /v1/admin/api-keys``, the webhook signing secret
of ``POST /v1/webhooks`` and ``POST /v1/webhooks/{id}/rotate-secret``) is replaced by ``null`` and
``<field>_shown_once: true`` is set, so a replay returns the key id and says the token was shown
once. Only the first response carries the secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.core.ids import KEY_PREFIX
from gateway.problems import problem_body

HEADER = b"idempotency-key"
PENDING_TTL_S = 60
MAX_KEY_LEN = 255
SECRET_FIELDS = ("token", "secret")


def redact_secrets(ctype: str, body: bytes) -> str:
    """The response body to store: ``body`` (UTF-8) with every :data:`SECRET_FIELDS` field of a JSON
    object set to null and ``<field>_shown_once`` set to true. Non-JSON bodies are stored as they are."""
    text = body.decode("utf-8", "replace")
    if "json" not in ctype:
        return text
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, dict) or not any(f in doc for f in SECRET_FIELDS):
        return text
    for f in SECRET_FIELDS:
        if f in doc:
            doc[f] = None
            doc[f"{f}_shown_once"] = True
    return json.dumps(doc, separators=(",", ":"))


def fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 over method, path and the body (canonical JSON when it parses, raw bytes otherwise)."""
    try:
        canon = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except (ValueError, UnicodeDecodeError):
        canon = body
    h = hashlib.sha256()
    h.update(method.encode() + b" " + path.encode() + b"\n")
    h.update(canon)
    return h.hexdigest()


Resolver = Callable[[str], Awaitable[Any]]


def _token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k == b"authorization":
            s = v.decode("latin-1")
            if s[:7].lower() == "bearer ":
                return s[7:].strip()
        elif k == b"x-api-key":
            return v.decode("latin-1").strip()
    return None


class IdempotencyMiddleware:
    """ASGI middleware. ``get_redis()`` returns a ``redis.asyncio.Redis`` (or None: pass through),
    ``resolve(token)`` the caller's principal (with ``key_id``) or None."""

    def __init__(
        self,
        app: ASGIApp,
        get_redis: Callable[[], Any],
        resolve: Resolver,
        ttl_s: int = 24 * 3600,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self.app = app
        self.get_redis = get_redis
        self.resolve = resolve
        self.ttl_s = ttl_s
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        idem = next((v for k, v in headers if k == HEADER), None)
        if idem is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        idem_s = idem.decode("latin-1").strip()
        if not idem_s or len(idem_s) > MAX_KEY_LEN:
            await _send_json(
                send,
                400,
                problem_body(
                    "malformed-request", 400, f"Idempotency-Key must be 1-{MAX_KEY_LEN} characters", path
                ),
            )
            return
        redis = self.get_redis()
        try:
            await self._run(scope, receive, send, redis, headers, path, idem_s)
        except RedisError:
            await _send_json(
                send,
                503,
                problem_body("unavailable", 503, "idempotency store unavailable; retry", path),
                extra_headers=[(b"retry-after", b"1")],
            )

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, redis: Any, headers: Any, path: str, idem_s: str
    ) -> None:
        token = _token(headers)
        principal = await self.resolve(token) if token and redis is not None else None
        if principal is None:
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        fp = fingerprint("POST", path, body)
        rkey = f"{self.prefix}idem:{principal.key_id}:{idem_s}"
        pending = json.dumps({"state": "pending", "fp": fp})
        if not await redis.set(rkey, pending, nx=True, ex=PENDING_TTL_S):
            raw = await redis.get(rkey)
            if raw is not None:
                rec = json.loads(raw)
                if rec.get("fp") != fp:
                    await _send_json(
                        send,
                        422,
                        problem_body(
                            "idempotency-key-reused",
                            422,
                            "this Idempotency-Key was used with a different request",
                            path,
                        ),
                    )
                    return
                if rec.get("state") == "done":
                    await _send_raw(send, rec["status"], rec["content_type"], rec["body"].encode())
                    return
                await _send_json(
                    send,
                    409,
                    problem_body(
                        "idempotency-in-progress", 409, "the first request with this key is running", path
                    ),
                    extra_headers=[(b"retry-after", b"1")],
                )
                return
            # expired between SET and GET: claim it again (rare)
            await redis.set(rkey, pending, ex=PENDING_TTL_S)

        captured: dict[str, Any] = {"status": 500, "ctype": "application/json", "chunks": []}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k == b"content-type":
                        captured["ctype"] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["chunks"].append(message.get("body", b""))
            await send(message)

        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay_receive, send_wrapper)
        except BaseException:
            with contextlib.suppress(RedisError):
                await redis.delete(rkey)
            raise
        status = int(captured["status"])
        if status >= 500 or status == 429:
            with contextlib.suppress(RedisError):
                await redis.delete(rkey)
            return
        rec = {
            "state": "done",
            "fp": fp,
            "status": status,
            "content_type": captured["ctype"],
            "body": redact_secrets(captured["ctype"], b"".join(captured["chunks"])),
        }
        with contextlib.suppress(RedisError):  # the response is already sent; a retry will re-run
            await redis.set(rkey, json.dumps(rec), ex=self.ttl_s)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


async def _send_raw(
    send: Send, status: int, ctype: str, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", ctype.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        (b"idempotent-replayed", b"true"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send, status: int, doc: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})
