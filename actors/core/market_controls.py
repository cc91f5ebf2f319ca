"""Market controls of a shard: price bands, operator halt/resume, the circuit breaker, the kill switch.

Rules (docs/matching.md, "Market controls"; defaults per commodity in
:mod:`actors.core.commodities`):

- **Price band**: ``[low, high]`` paise/kg (= Rs/quintal). Rule ``default``: the commodity's
  ``market_band_bp`` around the market reference; ``percent``: an operator's basis points around
  the reference; ``range``: an operator's explicit bounds; ``off``: none. With no reference (no
  Agmarknet series for the state) the percentage rules give no band: every price is accepted.
  A place or a price amend outside the band is rejected ``PRICE_OUT_OF_BAND``.
- **Halt**: while halted, places, amends that lose priority (price change or more quantity),
  proposal accepts and reservation confirms are rejected ``SHARD_HALTED``; cancels, quantity-down
  amends, proposal rejects and releases are taken; resting orders stay.
- **Circuit breaker**: after each trade (ALLOCATED, CONFIRMED) its price is compared with the
  price ``breaker_window_ms`` earlier: the last trade at or before ``ts - window``; when the shard
  has no trade that old, the market reference (or, without one, the window's first trade). A move
  of more than ``breaker_move_bp`` halts the shard until ``ts + breaker_halt_ms``; the taker's
  remaining fills are not made. The halt ends at the first command whose ``ts >= halted_until``
  (an automatic SHARD_RESUMED stamped ``halted_until``), never by the wall clock, so replay gives
  the same events.
- **Kill switch**: one KILL_SWITCH event, then a CANCELLED event per open order of the party.

State changes only by applying the events (``_ap_*`` below, registered in the projector).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from actors.core import orders as st
from actors.core import validation as v
from actors.core.commands import HaltShard, KillSwitch, ResumeShard, SetMarketReference, SetPriceBand
from actors.core.commodities import CommoditySpec
from actors.core.events import (
    CANCELLED,
    KILL_SWITCH,
    MARKET_REFERENCE,
    PRICE_BAND_SET,
    SHARD_HALTED,
    SHARD_RESUMED,
    BreakerTrigger,
    Cancelled,
    Event,
    KillSwitchPulled,
    MarketReference,
    PriceBandSet,
    ShardHalted,
    ShardResumed,
)
from actors.core.state import ShardState

BAND_MODES = ("default", "percent", "range", "off")
BP = 10_000  # basis points in 1
OPERATOR = "OPERATOR"
CIRCUIT_BREAKER = "CIRCUIT_BREAKER"
AUTO = "AUTO"


def band_for(
    rule: tuple[str, int | None, int | None, int | None], reference: int | None, spec: CommoditySpec
) -> tuple[int, int] | None:
    """The ``(low, high)`` band in paise/kg of a band ``rule`` ``(mode, band_bp, min, max)`` given
    the market ``reference`` (paise/kg or None), or None for no band. Percent bounds are rounded
    inwards to whole paise (low up, high down)."""
    mode, bp, lo, hi = rule
    if mode == "off":
        return None
    if mode == "range":
        return (lo, hi) if lo is not None and hi is not None else None
    if reference is None:
        return None
    bp = spec.market_band_bp if mode == "default" or bp is None else bp
    return -(-reference * (BP - bp) // BP), reference * (BP + bp) // BP


def _rs(p: int) -> str:
    """paise/kg as text with its Rs/quintal twin (the same number: 1 Rs/quintal = 1 paise/kg)."""
    return f"{p:,} paise/kg (Rs {p:,}/quintal)"


class MarketControls(ShardState):
    """Band and halt checks, the control commands and their events' application. ``breaker_on``:
    False = the host switched the automatic circuit breaker off (settings ``circuit_breaker``); a
    host setting, not state: the halts it records are events, so replay does not depend on it."""

    breaker_on = True

    # ---- checks used by the order commands (a comparison or two each)

    def _halt_detail(self) -> str:
        h = self.halt or {}
        until = h.get("halted_until")
        end = f" until {until} (epoch ms)" if until is not None else " until an operator resumes it"
        return f"shard {self.shard_id} is halted ({h.get('kind')}: {h.get('reason')}){end}"

    _band_text: tuple[Any, str] = (None, "")  # (band state, its text): rebuilt when the band changes

    def _band_detail(self, price: int) -> str:
        ref = self.reference
        key = (self.band, self.band_rule, ref and (ref["price"], ref["source"], ref["as_of"]))
        if self._band_text[0] != key:
            lo, hi = self.band or (0, 0)
            mode, bp, _, _ = self.band_rule
            if mode == "range":
                how = "set by an operator"
            else:
                pct = (self.spec.market_band_bp if mode == "default" or bp is None else bp) / 100
                src = f" ({ref['source']}, {ref['as_of']})" if ref and ref["as_of"] else ""
                how = f"+/-{pct:g}% around the reference {_rs(ref['price']) if ref else '-'}{src}"
            self._band_text = (key, f"the price band {lo:,}..{hi:,} paise/kg (Rs/quintal): {how}")
        return f"price {_rs(price)} is outside {self._band_text[1]}"

    def _out_of_band(self, price: int) -> bool:
        band = self.band
        return band is not None and not band[0] <= price <= band[1]

    # ---- time: the automatic end of a circuit-breaker halt

    def _auto_resume(self, now: int) -> None:
        """Record the end of a breaker halt when ``now >= halted_until`` (called by ``_advance``)."""
        until = self.halted_until
        if until is not None and now >= until:
            self._emit(SHARD_RESUMED, until, ShardResumed(AUTO, None))

    # ---- the circuit breaker (live path, after a trade event was emitted and applied)

    def _breaker_tripped(self, ev: Event, ts: int) -> bool:
        """Halt the shard when trade ``ev`` moved more than the commodity's threshold; True if so."""
        spec = self.spec
        if not self.breaker_on or spec.breaker_move_bp <= 0 or self.halted:
            return False
        first_ts, first_price = self._trades[0]  # the window as kept by _record_trade
        ref = self.reference
        if first_ts <= ts - spec.breaker_window_ms or ref is None:
            anchor, kind = first_price, "trade"
        else:
            anchor, kind = ref["price"], "market"
        price = ev.payload.price
        if abs(price - anchor) * BP <= spec.breaker_move_bp * anchor:
            return False
        move_bp = abs(price - anchor) * BP // anchor
        window_min = spec.breaker_window_ms / 60_000
        trigger = BreakerTrigger(
            ev.payload.allocation_id,
            price,
            anchor,
            kind,
            move_bp,
            spec.breaker_move_bp,
            spec.breaker_window_ms,
        )
        reason = (
            f"trade {ev.payload.allocation_id} at {_rs(price)} moved {move_bp / 100:g}% from "
            f"{'the trade price' if kind == 'trade' else 'the market reference'} {_rs(anchor)} "
            f"within {window_min:g} min (limit {spec.breaker_move_bp / 100:g}%)"
        )
        self._emit(
            SHARD_HALTED, ts, ShardHalted(CIRCUIT_BREAKER, reason, None, ts + spec.breaker_halt_ms, trigger)
        )
        return True

    # ---- commands

    def _operator_problem(self, cmd: Any) -> dict[str, Any] | None:
        if not v.valid_id(getattr(cmd, "operator_id", None)):
            return self._reject_command(cmd, v.INVALID_PARTY, "operator_id must be a non-empty string")
        return None

    def _status_result(self, command: str, changed: bool) -> dict[str, Any]:
        return {"command": command, "status": "OK", "changed": changed, "market": self.market_status()}

    def _halt(self, cmd: HaltShard) -> dict[str, Any]:
        if (bad := self._operator_problem(cmd)) is not None:
            return bad
        if not isinstance(cmd.reason, str):
            return self._reject_command(cmd, v.INVALID_TEXT, "reason must be text")
        if self.halt is not None and self.halt["kind"] == OPERATOR:
            return self._status_result("halt", False)
        reason = cmd.reason.strip() or "operator halt"
        self._emit(SHARD_HALTED, cmd.ts, ShardHalted(OPERATOR, reason, cmd.operator_id, None, None))
        return self._status_result("halt", True)

    def _resume_halt(self, cmd: ResumeShard) -> dict[str, Any]:
        if (bad := self._operator_problem(cmd)) is not None:
            return bad
        if not self.halted:
            return self._status_result("resume", False)
        self._emit(SHARD_RESUMED, cmd.ts, ShardResumed(OPERATOR, cmd.operator_id))
        return self._status_result("resume", True)

    def _set_band(self, cmd: SetPriceBand) -> dict[str, Any]:
        if (bad := self._operator_problem(cmd)) is not None:
            return bad
        mode, bp, lo, hi = cmd.mode, cmd.band_bp, cmd.min_price, cmd.max_price
        problem = None
        if mode not in BAND_MODES:
            problem = f"mode must be one of {', '.join(BAND_MODES)}"
        elif mode == "percent" and not (
            isinstance(bp, int) and v.is_int(bp) and 0 < bp < BP and lo is None and hi is None
        ):
            problem = "percent needs band_bp in 1..9999 basis points and no min/max price"
        elif mode == "range" and not (
            bp is None
            and isinstance(lo, int)
            and isinstance(hi, int)
            and v.check_price(lo) is None
            and v.check_price(hi) is None
            and lo <= hi
        ):
            problem = f"range needs min_price <= max_price, integer paise/kg in 1..{v.MAX_PRICE}"
        elif mode in ("default", "off") and not (bp is None and lo is None and hi is None):
            problem = f"{mode} takes no band_bp, min_price or max_price"
        if problem is not None:
            return self._reject_command(cmd, v.INVALID_BAND, problem)
        if (mode, bp, lo, hi) == self.band_rule:
            return self._status_result("price_band", False)
        self._emit(PRICE_BAND_SET, cmd.ts, PriceBandSet(cmd.operator_id, mode, bp, lo, hi))
        return self._status_result("price_band", True)

    def _set_reference(self, cmd: SetMarketReference) -> dict[str, Any]:
        if v.check_price(cmd.price) is not None:
            return self._reject_command(
                cmd, v.INVALID_REFERENCE, f"price must be paise/kg in 1..{v.MAX_PRICE}"
            )
        if not v.valid_id(cmd.source) or not isinstance(cmd.as_of, str):
            return self._reject_command(cmd, v.INVALID_REFERENCE, "source must be a name, as_of text")
        ref = self.reference
        if ref is not None and (ref["price"], ref["source"], ref["as_of"]) == (
            cmd.price,
            cmd.source,
            cmd.as_of,
        ):
            return self._status_result("reference", False)
        self._emit(MARKET_REFERENCE, cmd.ts, MarketReference(cmd.price, cmd.source, cmd.as_of))
        return self._status_result("reference", True)

    def _kill_switch(self, cmd: KillSwitch) -> dict[str, Any]:
        if (bad := self._operator_problem(cmd)) is not None:
            return bad
        if not v.valid_id(cmd.party_id):
            return self._reject_command(cmd, v.INVALID_PARTY, "party_id must be a non-empty string")
        live = (st.OPEN, st.PARTIALLY_FILLED)
        doomed = [
            o
            for o in self.orders.values()
            if o.party_id == cmd.party_id and o.open_kg > 0 and o.status in live
        ]
        kg = sum(o.open_kg for o in doomed)
        self._emit(KILL_SWITCH, cmd.ts, KillSwitchPulled(cmd.party_id, cmd.operator_id, len(doomed), kg))
        for o in doomed:
            self._emit(CANCELLED, cmd.ts, Cancelled(o.order_id, o.open_kg))
        return {
            "command": "kill_switch",
            "status": "OK",
            "party_id": cmd.party_id,
            "cancelled_orders": len(doomed),
            "cancelled_kg": kg,
            "order_ids": [o.order_id for o in doomed],
        }

    # ---- read side

    def market_status(self) -> dict[str, Any]:
        """``{halted, halt_kind, halt_reason, halted_since (ms), halted_until (ms or None), trigger,
        price_band: {mode, band_bp, low_paise_per_kg, high_paise_per_kg (None: no band),
        reference_paise_per_kg, reference_source, reference_as_of}}``; paise/kg = Rs/quintal."""
        h = self.halt or {}
        mode, bp, _, _ = self.band_rule
        band = self.band
        ref = self.reference or {}
        return {
            "halted": self.halted,
            "halt_kind": h.get("kind"),
            "halt_reason": h.get("reason"),
            "halted_since": h.get("since"),
            "halted_until": self.halted_until,
            "trigger": h.get("trigger"),
            "price_band": {
                "mode": mode,
                "band_bp": (self.spec.market_band_bp if mode == "default" else bp)
                if mode != "range"
                else None,
                "low_paise_per_kg": band[0] if band else None,
                "high_paise_per_kg": band[1] if band else None,
                "reference_paise_per_kg": ref.get("price"),
                "reference_source": ref.get("source"),
                "reference_as_of": ref.get("as_of"),
            },
        }

    # ---- projector part: the only code that changes the market state

    def _record_trade(self, ts: int, price: int) -> None:
        """Keep the trades of the breaker's window plus the last one at or before its start (the
        price "window ago"); called when ALLOCATED/CONFIRMED is applied."""
        trades = self._trades
        trades.append((ts, price))
        start = ts - self.spec.breaker_window_ms
        while len(trades) > 1 and trades[1][0] <= start:
            trades.popleft()

    def _ap_halted(self, ev: Event) -> None:
        p: ShardHalted = ev.payload
        self.halted = True
        self.halted_until = p.halted_until
        self.halt = {
            "kind": p.kind,
            "reason": p.reason,
            "operator_id": p.operator_id,
            "since": ev.ts,
            "halted_until": p.halted_until,
            "trigger": msgspec.to_builtins(p.trigger),
        }

    def _ap_resumed(self, ev: Event) -> None:
        self.halted = False
        self.halted_until = None
        self.halt = None

    def _refresh_band(self) -> None:
        ref = self.reference
        self.band = band_for(self.band_rule, ref["price"] if ref else None, self.spec)

    def _ap_band_set(self, ev: Event) -> None:
        p: PriceBandSet = ev.payload
        self.band_rule = (p.mode, p.band_bp, p.min_price, p.max_price)
        self._refresh_band()

    def _ap_reference(self, ev: Event) -> None:
        p: MarketReference = ev.payload
        self.reference = {"price": p.price, "source": p.source, "as_of": p.as_of}
        self._refresh_band()

    def market_snapshot(self) -> dict[str, Any]:
        """The market state for the shard snapshot (JSON-able)."""
        return {
            "halt": self.halt,
            "band_rule": list(self.band_rule),
            "reference": self.reference,
            "trades": [list(t) for t in self._trades],
        }

    def restore_market(self, snap: dict[str, Any] | None) -> None:
        """Inverse of :meth:`market_snapshot` (None: a snapshot from before market controls)."""
        if not snap:
            return
        self.halt = snap["halt"]
        self.halted = self.halt is not None
        self.halted_until = self.halt["halted_until"] if self.halt else None
        mode, bp, lo, hi = snap["band_rule"]
        self.band_rule = (mode, bp, lo, hi)
        self.reference = snap["reference"]
        self._trades = deque((int(t), int(p)) for t, p in snap["trades"])
        self._refresh_band()
