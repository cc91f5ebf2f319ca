"""Benchmarks: `tradedesk bench core|shard|risk|gateway|abuse|rollback|ledger`, JSON with throughput,
latency and a baseline measured in the same run."""

from typing import Annotated

import typer

from actors.core.commodities import get_spec
from actors.core.regions import REGIONS

# Real regions for multi-shard runs (one cotton shard per region): the states where cotton is traded
# first, then India's other ISO 3166-2 codes, each group sorted.
_COTTON = get_spec("cotton").traded_in
BENCH_REGIONS: tuple[str, ...] = tuple(sorted(_COTTON)) + tuple(sorted(set(REGIONS) - _COTTON))

# options several benchmarks share (one place for their names, defaults and environment variables)
JsonOut = Annotated[bool, typer.Option("--json", help="print one JSON object")]
AdminDsn = Annotated[
    str,
    typer.Option(
        envvar="TRADEDESK_BENCH_ADMIN_DSN", help="admin DSN; a throw-away database is created next to it"
    ),
]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
RedisUrl = Annotated[str, typer.Option(envvar="TRADEDESK_REDIS_URL")]
REDIS_URL = "redis://127.0.0.1:6379/0"
RayAddress = Annotated[str | None, typer.Option(envvar="TRADEDESK_RAY_ADDRESS")]
