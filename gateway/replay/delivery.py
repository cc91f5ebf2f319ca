"""How the season's sellers deliver (pure and seeded): when, how many kg, at what quality.

Per contract, with ``random.Random(f"{seed}:{contract_id}")``:

- **whether**: the seller fails to deliver with probability ``FAIL_RATE`` (2 %); the contract is
  then cancelled by the sweep when its window ends (``SELLER_FAILED_TO_DELIVER``);
- **when**: uniformly inside the delivery window, never before ``opened_at + 1 h`` nor after
  ``delivery_until - 1 h`` (epoch ms);
- **how much**: the contracted kg times a factor uniform in [0.97, 1.03] (inside the desk's 5 %
  tolerance: weighbridge differences of a truck lot), whole kg;
- **quality at delivery**: the offered lot's quality plus a small drift drawn from the real HVI
  data (``data/cotton_quality``, UGA variety trials): ``DRIFT`` (0.3) times the deviation of a
  randomly drawn trial entry from the trials' mean, per property (staple length mm, micronaire,
  strength g/tex, uniformity %), so deliveries drift the way real lots vary; trash and moisture (%)
  drift by up to +/-0.5 and +/-1.0 points. Other commodities' parameters drift by up to +/-10 % of
  their value. Values are rounded to one decimal, as HVI reports them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.replay.quality import HVI

HOUR_MS = 3_600_000
FAIL_RATE = 0.02
DRIFT = 0.3
TOLERANCE = (0.97, 1.03)
HVI_KEYS = ("staple_length_mm", "micronaire", "strength_gtex", "uniformity_pct")
OTHER_DRIFT = {"trash_pct": 0.5, "moisture_pct": 1.0}


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """What the seller of one contract does: deliver ``kg`` at ``at`` (epoch ms) with ``quality``,
    or nothing (``at`` None)."""

    at: int | None
    kg: int
    quality: dict[str, float]


def hvi_means(hvi: Sequence[HVI]) -> HVI:
    """Mean of each HVI property over the trial entries."""
    n = len(hvi)
    return (
        sum(h[0] for h in hvi) / n,
        sum(h[1] for h in hvi) / n,
        sum(h[2] for h in hvi) / n,
        sum(h[3] for h in hvi) / n,
    )


def delivered_quality(
    rng: random.Random, offered: Mapping[str, float], hvi: Sequence[HVI], means: HVI
) -> dict[str, float]:
    """The quality measured at delivery of a lot offered at ``offered`` (see the module doc)."""
    out: dict[str, float] = {}
    entry = hvi[rng.randrange(len(hvi))] if hvi else means
    for key, value in offered.items():
        if key in HVI_KEYS:
            i = HVI_KEYS.index(key)
            v = value + DRIFT * (entry[i] - means[i])
        elif key in OTHER_DRIFT:
            v = max(0.0, value + rng.uniform(-OTHER_DRIFT[key], OTHER_DRIFT[key]))
        else:
            v = max(0.0, value * (1.0 + rng.uniform(-0.1, 0.1)))
        out[key] = round(v, 1)
    return out


def plan_delivery(
    contract_id: str,
    quantity_kg: int,
    opened_at: int,
    delivery_until: int,
    offered: Mapping[str, float],
    hvi: Sequence[HVI],
    means: HVI,
    seed: int,
) -> DeliveryPlan:
    """The delivery of one contract (see the module doc). Deterministic in ``(seed, contract_id)``."""
    rng = random.Random(f"{seed}:{contract_id}")
    if rng.random() < FAIL_RATE:
        return DeliveryPlan(None, 0, {})
    lo, hi = opened_at + HOUR_MS, max(opened_at + HOUR_MS, delivery_until - HOUR_MS)
    at = lo + int(rng.random() * (hi - lo))
    kg = max(1, round(quantity_kg * rng.uniform(*TOLERANCE)))
    return DeliveryPlan(at, kg, delivered_quality(rng, offered, hvi, means))
