"""The decider protocols: the shard tells a remote (awaited) decider from a synchronous one by type,
and the wire encoding of decisions round-trips."""

from __future__ import annotations

import pickle

from actors.core.risk.types import (
    AsyncRiskDecider,
    Outcome,
    PassAllDecider,
    RiskDecision,
    RiskQuery,
    RiskRequest,
)
from actors.risk_pool.client import RiskPoolClient
from actors.risk_pool.wire import decode_decision, encode_decision, from_wire, to_wire


def test_pass_all_is_a_synchronous_decider() -> None:
    d = PassAllDecider()
    assert not isinstance(d, AsyncRiskDecider)
    v = d.decide(RiskRequest())
    dec = v.get("b", "s")
    assert v.pass_all and dec is not None and dec.outcome == Outcome.PASS
    d.settle({"B": 10}, {"B": 5})
    d.release({"B": 5})


def test_pool_client_is_the_async_decider_and_pickles_without_handles() -> None:
    c = RiskPoolClient("redis://127.0.0.1:6379/0", "tdtest:x:", app_name="nope", timeout_s=0.1)
    assert isinstance(c, AsyncRiskDecider)
    c2 = pickle.loads(pickle.dumps(c))
    assert (c2.app_name, c2.prefix, c2.timeout_s, c2.failures) == ("nope", "tdtest:x:", 0.1, 0)
    assert c2._handle is None and c2._store is None


def test_wire_round_trip() -> None:
    q = RiskQuery("BO1", "SO1", "B", "S", "cotton", "IN-GJ", 1000, 7500, 123)
    wire = from_wire(to_wire(RiskRequest([q], {"B": 7_500_000})))
    assert wire.queries[0].quantity_kg == 1000 and wire.credit_requests == {"B": 7_500_000}
    assert from_wire(RiskRequest([q])).queries[0] == tuple(to_wire(RiskRequest([q]))[0][0])
    d = RiskDecision(
        Outcome.WARN, ("LINKED_MOBILE",), 0.2, 0.65, 0.35, ("rules", "ml"), {"payment_default": "3"}
    )
    assert decode_decision(encode_decision(d)) == d
    c = RiskPoolClient("redis://127.0.0.1:6379/0")
    v = c.verdicts(RiskRequest([q]), ([encode_decision(d)], {"B": 0}))
    assert v.get("BO1", "SO1") == d and v.credit_grants == {"B": 0}
