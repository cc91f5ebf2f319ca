"""How the gateway words a shard's failure: a definite failure is 503 ``unavailable`` ("nothing was
acknowledged"), an unknown commit outcome (the shard lost its commit's answer, or the gateway's call
timed out while the shard ran) is 503 ``outcome-unknown`` ("retry with the same client_order_id")."""

from __future__ import annotations

import asyncio

import pytest

from actors.settings import Settings
from actors.shard_outcomes import OUTCOME_UNKNOWN, CommitUnknown, ShardUnavailable
from gateway.batching import MicroBatcher
from gateway.problems import Problem
from gateway.service import GatewayService


async def _run_with(exc: BaseException, timeout_s: float = 5.0) -> Problem:
    async def submit(shard: str, cmds: list[object]) -> list[object]:
        if isinstance(exc, TimeoutError):
            await asyncio.sleep(timeout_s * 4)
        raise exc

    svc = GatewayService(Settings(), "postgresql://unused", "redis://unused")
    svc.batcher = MicroBatcher(submit, window_ms=0, call_timeout_s=timeout_s)
    try:
        with pytest.raises(Problem) as info:
            await svc.run("IN-GJ.cotton", [object()])
    finally:
        await svc.batcher.close()
    return info.value


@pytest.mark.parametrize(
    "exc",
    [CommitUnknown("connection lost during COMMIT"), TimeoutError()],
    ids=["shard-lost-answer", "gateway-timeout"],
)
async def test_unknown_outcome_is_its_own_503(exc: BaseException) -> None:
    p = await _run_with(exc, timeout_s=0.05)
    assert (p.slug, p.status, p.detail) == ("outcome-unknown", 503, OUTCOME_UNKNOWN)
    assert p.detail == "outcome unknown: retry with the same client_order_id"


async def test_definite_failure_says_nothing_acknowledged() -> None:
    p = await _run_with(ShardUnavailable("commit failed"))
    assert (p.slug, p.status) == ("unavailable", 503)
    assert p.detail is not None and "nothing was acknowledged" in p.detail
