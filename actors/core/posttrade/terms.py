"""Contract terms of the desk: delivery windows, payment terms, grace period, delivery tolerance.

One source for these defaults (docs/post-trade.md, "Terms"). They are decided when a contract opens
and recorded in its CONTRACT_OPENED event, so a later change of the configuration never changes an
open contract (replay reads the event, not this table).

- Delivery window: the seller delivers within ``delivery_window_days`` of the allocation; cotton 15
  days (the issue's figure; ICE and Indian lint contracts deliver within days to weeks of the
  trade), grains and oilseeds 10 days (NCDEX compulsory-delivery contracts settle within the
  expiry month's tender period).
- Payment terms: days after delivery; cotton 30, grains and oilseeds 15 (Indian mandi and
  ginner trade credit is 7-45 days); a party override wins (``party_payment_terms_days``).
- Grace: an invoice unpaid ``grace_days`` (30) after due is DEFAULTED.
- Tolerance: a delivery within +/- ``tolerance_bps`` (500 = 5 %) of the contracted kg settles at
  the contract price; the excess beyond +5 % is refused (not invoiced), and the remainder below -5 %
  stays open until the window ends, when it is cancelled (SELLER_FAILED_TO_DELIVER).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DAY_MS = 86_400_000

DELIVERY_WINDOW_DAYS: Mapping[str, int] = MappingProxyType(
    {"cotton": 15, "soybean": 10, "mustard": 10, "chana": 10, "wheat": 10}
)
PAYMENT_TERMS_DAYS: Mapping[str, int] = MappingProxyType(
    {"cotton": 30, "soybean": 15, "mustard": 15, "chana": 15, "wheat": 15}
)
DEFAULT_WINDOW_DAYS = 15
DEFAULT_TERMS_DAYS = 30
DEFAULT_GRACE_DAYS = 30
DEFAULT_TOLERANCE_BPS = 500


@dataclass(frozen=True, slots=True)
class Terms:
    """The desk's settlement configuration. Days are whole days of 86 400 000 ms."""

    delivery_window_days: Mapping[str, int] = field(default_factory=lambda: DELIVERY_WINDOW_DAYS)
    payment_terms_days: Mapping[str, int] = field(default_factory=lambda: PAYMENT_TERMS_DAYS)
    party_payment_terms_days: Mapping[str, int] = field(default_factory=dict)
    grace_days: int = DEFAULT_GRACE_DAYS
    tolerance_bps: int = DEFAULT_TOLERANCE_BPS

    def window_ms(self, commodity: str) -> int:
        """Length of the delivery window of ``commodity`` in ms."""
        return int(self.delivery_window_days.get(commodity, DEFAULT_WINDOW_DAYS)) * DAY_MS

    def terms_days(self, commodity: str, buyer_id: str) -> int:
        """Payment terms (days after delivery) for ``buyer_id`` buying ``commodity``."""
        if buyer_id in self.party_payment_terms_days:
            return int(self.party_payment_terms_days[buyer_id])
        return int(self.payment_terms_days.get(commodity, DEFAULT_TERMS_DAYS))

    def max_settled_kg(self, quantity_kg: int) -> int:
        """Most kg a contract of ``quantity_kg`` settles (+tolerance, rounded down)."""
        return quantity_kg * (10_000 + self.tolerance_bps) // 10_000

    def complete_kg(self, quantity_kg: int) -> int:
        """Settled kg from which delivery is complete (-tolerance, rounded up)."""
        return -(-quantity_kg * (10_000 - self.tolerance_bps) // 10_000)
