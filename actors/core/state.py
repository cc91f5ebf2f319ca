"""The state of one shard's engine, shared by the parts of :class:`actors.core.engine.ShardEngine`.

The engine is split by job into mixins over this base: order commands (:mod:`actors.core.placing`),
matching and fill planning (:mod:`actors.core.matching`), negotiation
(:mod:`actors.core.negotiation`), the projector (:mod:`actors.core.projector`, the only mutator of
this state) and the read side (:mod:`actors.core.queries`). This module declares the state and the
few methods the parts call on one another; the engine class provides them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from actors.core.book import BookSide
from actors.core.commodities import CommoditySpec, get_spec
from actors.core.events import Event, Payload
from actors.core.ids import shard_id_for
from actors.core.orders import Order
from actors.core.regions import normalize_region
from actors.core.risk.types import RiskVerdicts

NEAR_SWEEP_MIN = 1024  # near-duplicate keys held before the first sweep

PASS_ALL = RiskVerdicts(pass_all=True)
PROFILES = ("price_time", "quality")
CLOSED_RETENTION = 2_000  # closed orders / rejections kept in memory (docs/matching.md, "Retention")
MIN_CLOSED_RETENTION = 2  # one event closes at most two orders: both stay until the command ends


class ShardState:
    """Book, orders, proposals, reservations and idempotency results of one (region, commodity).

    ``results``: ``(party_id, client_order_id) -> place result dict`` (idempotent retries);
    ``proposals`` / ``reservations``: id -> dict (the event payload's fields plus ``status``);
    ``near_dups``: near-duplicate key -> ``(order_id, ts)``. Per-batch fields start with ``_``.
    ``closed_retention``: how many fully closed orders and rejected places stay in memory
    (:mod:`actors.core.retention`); ``evicted_any``: whether any has left.

    Raises:
        KeyError: unknown commodity. ValueError: unknown profile, ``closed_retention`` below
        :data:`MIN_CLOSED_RETENTION`.
    """

    def __init__(
        self,
        region: str,
        commodity: str,
        profile: str | None = None,
        closed_retention: int = CLOSED_RETENTION,
    ):
        self.spec: CommoditySpec = get_spec(commodity)
        self.region = normalize_region(region)
        self.commodity = self.spec.name
        self.shard_id = shard_id_for(region, self.commodity)
        self.profile = profile or self.spec.default_profile
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}")
        if not isinstance(closed_retention, int) or closed_retention < MIN_CLOSED_RETENTION:
            raise ValueError(f"closed_retention must be an integer >= {MIN_CLOSED_RETENTION}")
        self.closed_retention = closed_retention
        self._trim_at = closed_retention + closed_retention // 32  # evict in groups (retention.py)
        self.evicted_any = False
        self.seq = 0
        self.clock = 0
        self.orders: dict[str, Order] = {}
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
        self.results: dict[tuple[str, str], dict[str, Any]] = {}
        self.proposals: dict[str, dict[str, Any]] = {}
        self.reservations: dict[str, dict[str, Any]] = {}
        self.near_dups: dict[tuple[Any, ...], tuple[str, int]] = {}
        self._expiries: list[tuple[int, str]] = []
        self._holds: list[tuple[int, str]] = []
        # retention windows (actors/core/retention.py)
        self._closed: deque[Any] = deque()
        self._links: dict[str, list[str]] = {}  # order id -> its proposal and reservation ids
        self._near_sweep_at = NEAR_SWEEP_MIN
        # market controls (actors/core/market_controls.py): halt, band rule, reference, trade window
        self.halted = False
        self.halted_until: int | None = None
        self.halt: dict[str, Any] | None = None
        self.band_rule: tuple[str, int | None, int | None, int | None] = ("default", None, None, None)
        self.reference: dict[str, Any] | None = None
        self.band: tuple[int, int] | None = None
        self._trades: deque[tuple[int, int]] = deque()
        # per-batch state
        self._out: list[Event] = []
        self._verdicts: RiskVerdicts = PASS_ALL
        self._credit_left: dict[str, int] = {}
        self._credit_used: dict[str, int] = {}
        self._refs: dict[str, str] = {}
        self._pending: Order | None = None  # live-path order object for the next ORDER_ACCEPTED
        self._pending_near: tuple[Any, ...] | None = None  # and its near-duplicate key
        self._validated: dict[int, Any] = {}  # id(command) -> place command plan() found valid
        self._remembered: dict[tuple[str, str], dict[str, Any]] = {}  # remember_result(), one batch
        self._in_batch = False  # inside execute(): evicted orders go to _batch_evicted
        self._batch_evicted: dict[str, Order] = {}  # orders evicted by the last execute()

    def side_of(self, o: Order) -> BookSide:
        """The book side an order rests on (bids for BUY, asks for SELL)."""
        return self.bids if o.side == "BUY" else self.asks

    # ---- provided by the engine's parts (declared here for the type checker)

    def _emit(self, etype: str, ts: int, payload: Payload) -> Event:
        raise NotImplementedError

    def _next_id(self, prefix: str) -> str:
        raise NotImplementedError

    def _reject_command(self, cmd: Any, reason: str, detail: str) -> dict[str, Any]:
        raise NotImplementedError

    def _match(self, taker: Order, ts: int, via: str) -> None:
        raise NotImplementedError

    def _crosses(self, taker: Order) -> bool:
        raise NotImplementedError

    def _order_closed(self, o: Order) -> None:
        raise NotImplementedError

    def _rejection_closed(self, key: tuple[str, str], seq: int) -> None:
        raise NotImplementedError

    def _link(self, order_ids: Any, ref: str) -> None:
        raise NotImplementedError

    def _near_recorded(self) -> None:
        raise NotImplementedError

    def _trim(self) -> None:
        raise NotImplementedError

    def _spec_of(self, commodity: Any) -> CommoditySpec | None:
        raise NotImplementedError

    def _order_from_command(self, cmd: Any, order_id: str, seq: int, near_dup: str | None) -> Order:
        raise NotImplementedError

    def _ranked(self, taker: Order, decide: bool = True) -> Iterable[Any]:
        raise NotImplementedError

    def apply(self, event: Event) -> None:
        raise NotImplementedError

    def _auto_resume(self, now: int) -> None:
        raise NotImplementedError

    def _breaker_tripped(self, ev: Event, ts: int) -> bool:
        raise NotImplementedError

    def _record_trade(self, ts: int, price: int) -> None:
        raise NotImplementedError

    def _out_of_band(self, price: int) -> bool:
        raise NotImplementedError

    def _band_detail(self, price: int) -> str:
        raise NotImplementedError

    def _halt_detail(self) -> str:
        raise NotImplementedError

    def market_status(self) -> dict[str, Any]:
        raise NotImplementedError

    def market_snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def restore_market(self, snap: dict[str, Any] | None) -> None:
        raise NotImplementedError
