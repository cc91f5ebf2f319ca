"""``Allow`` for every path: ``OPTIONS`` answers 204 with the methods of all routes on that path,
and a method no route on the path takes answers 405 ``method-not-allowed`` with the same ``Allow``.

Starlette alone answers OPTIONS with 405 and lists only the first matching route's methods, so a
path served by two routes (``GET`` and ``PATCH /v1/admin/parties/{party_id}``) lost ``PATCH``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import problems

#: Methods probed for ``Allow`` (OPTIONS is always allowed on an existing path).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: (method, path) pairs remembered as fully matched (the set is emptied when it is full).
MAX_REMEMBERED = 4096


def _match(routes: Iterable[Any], scope: Scope, method: str) -> Match:
    """Best match of any route for ``scope`` with ``method`` (routers nest, so ask each route)."""
    best = Match.NONE
    probe = {**scope, "method": method}
    for route in routes:
        m, _ = route.matches(probe)
        if m is Match.FULL:
            return m
        if m is Match.PARTIAL:
            best = m
    return best


def allowed_methods(routes: Iterable[Any], scope: Scope) -> set[str]:
    """Methods of every HTTP route whose path matches ``scope`` (empty: no such path)."""
    routes = list(routes)
    return {m for m in METHODS if _match(routes, scope, m) is Match.FULL}


class AllowMiddleware:
    """ASGI middleware; ``get_routes()`` returns the app's routes (read on each request, so routes
    added after the middleware count)."""

    def __init__(self, app: ASGIApp, get_routes: Callable[[], Iterable[Any]]) -> None:
        self.app = app
        self.get_routes = get_routes
        # (route count, method, path) of requests a route takes as they are: passed on unchecked
        self._full: set[tuple[int, str, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        routes = list(self.get_routes())
        seen = (len(routes), method, scope.get("root_path", "") + scope["path"])
        if seen in self._full:  # the hot path: a (method, path) already matched in full
            await self.app(scope, receive, send)
            return
        first = _match(routes, scope, method)
        if first is Match.FULL and method != "OPTIONS":
            if len(self._full) >= MAX_REMEMBERED:
                self._full.clear()
            self._full.add(seen)
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(routes, scope) if first is not Match.NONE else set()
        if not methods:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        if method == "OPTIONS":
            await send(
                {"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        resp = problems.problem_response(
            "method-not-allowed",
            f"{method} is not allowed here; allowed: {allow}",
            instance=scope["path"],
            headers={"Allow": allow},
        )
        await resp(scope, receive, send)
