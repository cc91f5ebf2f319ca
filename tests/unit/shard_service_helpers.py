"""Helpers for the shard service unit tests: a store that fails on demand, a credit-keeping decider
(exposure per buyer in memory, the same arithmetic as ``persistence/exposure.py``), order streams."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from actors.core.commands import PlaceOrder
from actors.core.risk.types import RiskRequest, RiskVerdicts
from bench.shard import make_orders
from persistence.event_store import BatchRows
from persistence.memory_store import MemoryEventStore
from persistence.store import EventRow

REGION = "IN-GJ"


def orders(n: int, prefix: str, seed: int = 3, ts0: int = 1_700_000_000_000) -> list[PlaceOrder]:
    """``n`` valid cotton place commands in Gujarat (see ``bench.shard.make_orders``)."""
    return make_orders(REGION, "cotton", n, seed=seed, prefix=prefix, parties=8, ts0=ts0)


def with_city(cmd: PlaceOrder, city: str) -> PlaceOrder:
    """A copy of ``cmd`` with another ``city``."""
    return dataclasses.replace(cmd, city=city)


class FlakyStore(MemoryEventStore):
    """The in-memory store whose next appends fail: ``fail_before`` (raised, nothing written),
    ``fail_after`` (written, then raised: a commit whose answer was lost), ``down`` (every call
    raises ConnectionError) and ``delay_s`` (slow appends). ``reads``: ``after_seq`` of every read."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_before: list[BaseException] = []
        self.fail_after: list[BaseException] = []
        self.down = False
        self.down_on_fail = False  # an injected failure also takes the store down
        self.delay_s = 0.0  # each append waits this long first (commits in flight)
        self.reads: list[int] = []

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store down")

    async def append(self, rows: BatchRows) -> int:
        self._check()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_before:
            self.down = self.down_on_fail
            raise self.fail_before.pop(0)
        seq = await super().append(rows)
        if self.fail_after:
            self.down = self.down_on_fail
            raise self.fail_after.pop(0)
        return seq

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        self._check()
        self.reads.append(after_seq)
        return await super().read_events(shard_id, after_seq, limit)

    async def latest_snapshot(self, shard_id: str) -> Any:
        self._check()
        return await super().latest_snapshot(shard_id)


class CreditLedger:
    """A risk decider that passes every pair and grants credit up to ``limit`` paise per buyer,
    keeping each buyer's exposure like the Redis exposure store: grant added at decide time,
    ``settle`` gives back ``grant - used``, ``release`` gives back amounts."""

    needs_queries = True

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.exposure: dict[str, int] = {}

    def decide(self, request: RiskRequest) -> RiskVerdicts:
        grants = {}
        for buyer, amount in request.credit_requests.items():
            room = max(0, self.limit - self.exposure.get(buyer, 0))
            grants[buyer] = min(amount, room)
            self.exposure[buyer] = self.exposure.get(buyer, 0) + grants[buyer]
        return RiskVerdicts(credit_grants=grants, pass_all=True)

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
        for buyer, grant in grants.items():
            self.exposure[buyer] -= max(0, grant - used.get(buyer, 0))

    def release(self, amounts: Mapping[str, int]) -> None:
        for buyer, amount in amounts.items():
            self.exposure[buyer] = max(0, self.exposure.get(buyer, 0) - abs(amount))

    def total(self) -> int:
        return sum(self.exposure.values())
