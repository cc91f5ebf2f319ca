"""What a shard tells its callers when a batch is not (or may not be) acknowledged, and the results
of commands refused before matching. Used by the shard service and mapped by the gateway."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.core.commands import PlaceOrder, command_kind
from persistence.storable import UNSTORABLE, command_problem


class ShardDraining(RuntimeError):
    """The shard is drained and takes no commands."""


class ShardUnavailable(RuntimeError):
    """The batch was definitely not committed: nothing of it is acknowledged; retry with the same
    client order ids."""


OUTCOME_UNKNOWN = "outcome unknown: retry with the same client_order_id"
"""What a client is told when a batch's commit outcome is unknown (the gateway's 503 detail too)."""


class CommitUnknown(RuntimeError):
    """The batch's commit outcome is unknown: it may be committed. Retry with the same client order
    ids: a committed order then answers with its original result."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{OUTCOME_UNKNOWN} ({detail})")


def merge_refused(
    commands: Sequence[object], refused: dict[int, str], engine_results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Engine results with the refused commands' rejections put back in their places."""
    if not refused:
        return engine_results
    it = iter(engine_results)
    return [unstorable_result(c, refused[i]) if i in refused else next(it) for i, c in enumerate(commands)]


def unstorable_result(cmd: Any, detail: str) -> dict[str, Any]:
    """The REJECTED result of a command the store cannot take (reason ``UNSTORABLE_VALUE``)."""
    base = {"status": "REJECTED", "reason": UNSTORABLE, "detail": detail, "seqs": []}
    if isinstance(cmd, PlaceOrder):
        coid = cmd.client_order_id if command_problem(cmd.client_order_id) is None else None
        extra: dict[str, Any] = {
            "order_id": None,
            "client_order_id": coid,
            "allocations": [],
            "proposals": [],
        }
        return {"command": "place", **extra, "duplicate": False, **base}
    return {"command": command_kind(cmd), "target": None, **base}
