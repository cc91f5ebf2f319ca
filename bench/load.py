"""HTTP load generator of the gateway benchmarks (``bench/gateway.py``, ``bench/abuse.py``): raw
HTTP/1.1 keep-alive connections over asyncio, only to 127.0.0.1, unique crossing order bodies, and
closed-loop (``closed_loop``: fixed concurrency) and open-loop (``open_loop``: fixed offered rate,
latency from each request's scheduled send time) drivers. Each driver returns a summary dict:
``requests``, ``ok``, status ``codes``, ``elapsed_s``, ``per_s`` and latency percentiles in ms.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from actors.core.regions import REGIONS


class Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None, headers: str) -> int:
        """Status code of one request; 599 for a connection error (the connection is reopened)."""
        try:
            return await self._request(method, path, body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            if self.w is not None:
                self.w.close()
            self.r = self.w = None
            return 599

    async def _request(self, method: str, path: str, body: bytes | None, headers: str) -> int:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.r is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.w.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await self.r.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.r.readexactly(length)
        return status


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(lat: list[float], elapsed: float, codes: dict[int, int], n: int) -> dict[str, Any]:
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    return {
        "requests": n,
        "ok": ok,
        "codes": {str(k): v for k, v in sorted(codes.items())},
        "elapsed_s": round(elapsed, 3),
        "req_per_s": round(n / elapsed, 1) if elapsed else 0.0,
        "ok_per_s": round(ok / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(lat, 0.50) * 1000, 2),
        "p99_ms": round(pct(lat, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
    }


class Orders:
    """Unique order bodies: even i = availability of party A, odd i = crossing requirement of B."""

    def __init__(self, regions: list[str], tokens: list[str], tag: str, profile: str | None = None) -> None:
        self.profile = profile
        self.regions = regions
        self.heads = [f"Authorization: Bearer {t}\r\n" for t in tokens]
        self.tag = tag
        self.i = 0

    def order(self, i: int) -> tuple[str, dict[str, Any]]:
        region = self.regions[(i // 2) % len(self.regions)]
        lat, lon = REGIONS[region].center
        loc = {"lat": round(lat, 4), "lon": round(lon, 4), "region": region}
        qty = {"value": 1, "unit": "tonne"}
        extra = {"profile": self.profile} if self.profile else {}
        if i % 2 == 0:
            return "SELL", {
                **extra,
                "client_order_id": f"{self.tag}{i}",
                "commodity": "cotton",
                "quantity": qty,
                "price_paise_per_kg": 7000,
                "location": loc,
                "quality": {"micronaire": 4.2},
            }
        return "BUY", {
            **extra,
            "client_order_id": f"{self.tag}{i}",
            "commodity": "cotton",
            "quantity": qty,
            "max_price_paise_per_kg": 7100,
            "location": loc,
            "quality_ranges": {"micronaire": {"min": 3.5, "max": 4.9}},
        }

    def next_single(self) -> tuple[str, bytes, str]:
        i = self.i
        self.i += 1
        side, body = self.order(i)
        path = "/v1/orders/availabilities" if side == "SELL" else "/v1/orders/requirements"
        return path, json.dumps(body).encode(), self.heads[i % 2]

    def next_batch(self, size: int) -> bytes:
        """``size`` orders alternating SELL/BUY (one party: they rest; for the no-HTTP baseline)."""
        orders = []
        for _ in range(size):
            side, body = self.order(self.i)
            self.i += 1
            orders.append({"side": side, **body})
        return json.dumps({"orders": orders}).encode()

    def next_side_batch(self, size: int) -> tuple[bytes, str]:
        """Batches alternate: ``size`` availabilities of party A, then the ``size`` requirements of
        party B that cross them (a batch request is one API key, so one party). Returns (body, auth)."""
        if self.i % 2 == 0 and not getattr(self, "_pending", None):
            self._base = self.i
            idx = [self._base + 2 * m for m in range(size)]
            self._pending = True
            head = self.heads[0]
        else:
            idx = [self._base + 2 * m + 1 for m in range(size)]
            self.i = self._base + 2 * size
            self._pending = False
            head = self.heads[1]
        orders = []
        for i in idx:
            side, body = self.order(i)
            orders.append({"side": side, **body})
        return json.dumps({"orders": orders}).encode(), head


async def closed_loop(port: int, conc: int, n: int, max_s: float, make: Any) -> dict[str, Any]:
    """``n`` requests (at most ``max_s`` seconds) from ``conc`` connections, each sending its next
    request when the previous answer came; ``make()`` gives (method, path, body, headers)."""
    lat: list[float] = []
    codes: dict[int, int] = {}
    sent = 0
    deadline = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal sent
        c = Conn(port)
        while sent < n and time.perf_counter() < deadline:
            sent += 1
            method, path, body, head = make()
            t = time.perf_counter()
            code = await c.request(method, path, body, head)
            lat.append(time.perf_counter() - t)
            codes[code] = codes.get(code, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return summary(lat, time.perf_counter() - t0, codes, len(lat))


async def open_loop(port: int, rate: float, seconds: float, conns: int, make: Any) -> dict[str, Any]:
    """``rate`` requests/s offered for ``seconds`` over ``conns`` connections; latency counts from
    each request's scheduled send time. The summary adds ``offered_per_s``."""
    n = int(rate * seconds)
    q: asyncio.Queue[float | None] = asyncio.Queue()
    lat: list[float] = []
    codes: dict[int, int] = {}

    async def worker() -> None:
        c = Conn(port)
        while True:
            sched = await q.get()
            if sched is None:
                return
            method, path, body, head = make()
            code = await c.request(method, path, body, head)
            lat.append(time.perf_counter() - sched)
            codes[code] = codes.get(code, 0) + 1

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    t0 = time.perf_counter()
    for i in range(n):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        q.put_nowait(at)
    for _ in workers:
        q.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=seconds + 60)
    res = summary(lat, time.perf_counter() - t0, codes, len(lat))
    res["offered_per_s"] = rate
    return res
