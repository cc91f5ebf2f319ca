"""The synthetic order stream of the shard benchmarks and the percentile of their latencies:
:func:`make_orders` (deterministic cotton place commands for one shard, also used by the tests and the
other benchmarks) and :func:`percentile` (nearest rank).

Units: prices paise/kg, quantities kg, timestamps epoch ms, latencies as given.
"""

from __future__ import annotations

import random

from actors.core.commands import PlaceOrder

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, epoch ms


def make_orders(
    region: str,
    commodity: str,
    n: int,
    seed: int = 0,
    prefix: str = "c",
    parties: int = 200,
    ts0: int = T0,
    mid_price: int = 15_000,
) -> list[PlaceOrder]:
    """``n`` synthetic place commands for one shard: half availabilities, half requirements, prices
    around ``mid_price`` paise/kg (+-2 %), quantities 1-40 bales (170 kg each), ``client_order_id``
    ``<prefix><i>``, timestamps 1 ms apart from ``ts0``. Deterministic for a seed."""
    rnd = random.Random(seed)
    band = mid_price // 50
    out = []
    for i in range(n):
        side = "BUY" if rnd.random() < 0.5 else "SELL"
        out.append(
            PlaceOrder(
                ts=ts0 + i,
                party_id=f"P{rnd.randrange(parties)}",
                client_order_id=f"{prefix}{i}",
                side=side,
                commodity=commodity,
                region=region,
                quantity_kg=rnd.randrange(1, 41) * 170,
                price=mid_price + rnd.randrange(-band, band + 1),
                lat=22.3 + rnd.random(),
                lon=70.8 + rnd.random(),
            )
        )
    return out


def percentile(xs: list[float], q: float) -> float:
    """``q``-th percentile (0-100) of ``xs`` by nearest rank; 0.0 when empty."""
    if not xs:
        return 0.0
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))
    return s[k]
