"""Benchmarks: `tradedesk bench core|shard|risk|gateway`, JSON with throughput, latency and a baseline."""

from actors.core.regions import REGIONS

# Real regions for multi-shard runs (one shard per region, cotton): India's ISO 3166-2 codes, sorted.
BENCH_REGIONS: tuple[str, ...] = tuple(sorted(REGIONS))
