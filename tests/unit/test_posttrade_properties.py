"""Properties of the settlement kernel over random post-trade command sequences (hypothesis)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.events import Event, decode_events, encode_events
from actors.core.posttrade.engine import (
    Cancel,
    Command,
    OpenContract,
    Pay,
    PostTradeError,
    RecordDelivery,
    SettlementEngine,
    Sweep,
)
from actors.core.posttrade.state import SettlementState, contract_view, invoice_view
from actors.core.posttrade.terms import DAY_MS

PARTIES = ("P1", "P2", "P3")
DAY = DAY_MS


def _command(draw: st.DrawFn, e: SettlementEngine, now: int, n: int) -> Command:
    kind = draw(
        st.sampled_from(["open", "deliver", "deliver", "deliver", "pay", "pay", "pay", "cancel", "sweep"])
    )
    contracts = sorted(e.state.contracts)
    invoices = sorted(e.state.invoices)
    if kind == "open" or not contracts:
        b, s = draw(st.permutations(PARTIES))[:2]
        kg = draw(st.integers(1, 5000))
        price = draw(st.integers(1, 20000))
        ranges = {"micronaire": (3.5, 4.9), "strength_gtex": (26.0, 45.0)}
        return OpenContract(
            now, f"A-IN-GJ.cotton-{n}", "IN-GJ.cotton", n, "cotton", "IN-GJ", b, s, kg, price, ranges
        )
    if kind == "deliver":
        c = e.state.contracts[draw(st.sampled_from(contracts))]
        kg = draw(st.integers(0, c.terms.quantity_kg + 200))
        q = {"micronaire": draw(st.floats(2.0, 7.0)), "strength_gtex": draw(st.floats(15.0, 45.0))}
        return RecordDelivery(
            now, c.terms.seller_id, c.contract_id, kg, q, now, key=draw(st.sampled_from(["", "k1", "k2"]))
        )
    if kind == "pay" and invoices:
        inv = e.state.invoices[draw(st.sampled_from(invoices))]
        amount = draw(st.one_of(st.just(inv.outstanding), st.integers(1, max(1, inv.outstanding + 10))))
        ref = draw(st.sampled_from(["U1", "U2", "U3", f"U{n}"]))
        return Pay(now, inv.issued.buyer_id, inv.issued.invoice_id, amount, ref, now)
    if kind == "cancel":
        c = e.state.contracts[draw(st.sampled_from(contracts))]
        who = draw(st.sampled_from([c.terms.buyer_id, c.terms.seller_id, None]))
        return Cancel(now, who, c.contract_id, "MUTUAL" if who else "OPERATOR", now)
    return Sweep(now, now)


@st.composite
def runs(draw: st.DrawFn) -> list[list[Command]]:
    """Batches of commands built against a live engine, so most of them are valid."""
    e = SettlementEngine()
    now = 0
    batches: list[list[Command]] = []
    for _ in range(draw(st.integers(1, 6))):
        batch: list[Command] = []
        for _ in range(draw(st.integers(1, 8))):
            now += draw(st.integers(0, 6)) * DAY
            cmd = _command(draw, e, now, len(batches) * 100 + len(batch) + 1)
            batch.append(cmd)
            with contextlib.suppress(PostTradeError):
                e.execute(cmd)
        batches.append(batch)
    return batches


@settings(max_examples=150, deadline=None)
@given(runs())
def test_ledger_invariants_hold_after_every_batch_and_replay_equals_live(
    batches: list[list[Command]],
) -> None:
    e = SettlementEngine()
    log: list[Event] = []
    for batch in batches:
        for cmd in batch:
            try:
                events, _ = e.execute(cmd)
            except PostTradeError:
                continue
            log += events
        ledger = e.state.ledger
        ledger.check()  # debits == credits, balances == recomputed, no account beyond its flags
        for inv in e.state.invoices.values():
            assert 0 <= inv.paid <= inv.issued.amount
        for p in PARTIES:
            assert ledger.exposure(p) == e.state.exposure_of_contracts(p) >= 0
    assert [x.seq for x in log] == list(range(1, len(log) + 1))
    replay = SettlementState()
    replay.apply_all(decode_events(encode_events(log)))
    assert replay.ledger == e.state.ledger
    assert [contract_view(replay, c) for c in replay.contracts.values()] == [
        contract_view(e.state, c) for c in e.state.contracts.values()
    ]
    assert [invoice_view(i) for i in replay.invoices.values()] == [
        invoice_view(i) for i in e.state.invoices.values()
    ]
