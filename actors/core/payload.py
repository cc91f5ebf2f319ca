"""The base class of every typed event payload (shard and settlement streams) and its schema version.

Kept apart from :mod:`actors.core.events` so the settlement payloads
(:mod:`actors.core.posttrade.events`) can subclass it while the shard codec registers them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

SCHEMA_VERSION = 1


class Payload(msgspec.Struct, frozen=True, gc=False):
    """Base of every event payload. ``SCHEMA``: the payload's schema version."""

    SCHEMA: ClassVar[int] = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (shallow: nested dicts are shared, a nested Order stays a Struct;
        use :func:`msgspec.to_builtins` for plain JSON data)."""
        return msgspec.structs.asdict(self)
