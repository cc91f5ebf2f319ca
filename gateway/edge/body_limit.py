"""Request-body size limit enforced while the body streams in (ASGI middleware).

A ``Content-Length`` header can be checked before reading, but a chunked body (``Transfer-Encoding:
chunked``) announces no size. :class:`BodyLimitMiddleware` therefore counts the bytes of every
``http.request`` message as the application receives them. As soon as the count passes
``max_bytes`` it answers **413** ``payload-too-large`` (problem+json, ``Connection: close``) and stops
the request: the receive call that crossed the limit raises :class:`BodyTooLarge`, so no handler
buffers more than ``max_bytes`` plus one chunk, and whatever response the application tries to send
afterwards is dropped. A declared ``Content-Length`` above the limit is refused before any byte is
read. WebSocket and lifespan traffic passes through untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import problems


class BodyTooLarge(Exception):
    """Raised inside the application's ``receive()`` once the body passes the limit."""


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a request body over ``max_bytes`` bytes, however it is framed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        state = {"received": 0, "over": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise BodyTooLarge(f"request body over {self.max_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"] and not state["started"]:
                return  # the application's answer to the cut-off body; ours is the 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if state["started"]:
                raise
        if state["over"] and not state["started"]:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = problems.problem_response(
            "payload-too-large",
            f"request body over {self.max_bytes} bytes",
            instance=scope.get("path"),
            headers={"Connection": "close"},
        )
        await resp(scope, receive, send)
