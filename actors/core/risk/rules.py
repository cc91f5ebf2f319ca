"""Rules tier of the risk engine: deterministic pre-trade checks on one candidate pair.

Pure (no I/O, no clock): every input is passed in, so the same pair, parties, history and exposure
give the same decision. Each check that fires adds a machine-readable reason code; the outcome is
the worst of them (BLOCK > WARN > PASS). The checks and where they come from:

- KYC and sanctions (know-your-customer / AML pre-trade screening): a party that is unknown,
  not KYC-verified, itself on a sanctions list, or domiciled in a sanctioned country -> BLOCK.
- Roles (the project's security model): a ``seller``-only party cannot buy, a ``buyer``-only party
  cannot sell; ``trader`` does both; any other role (operator, admin, ...) cannot trade.
- Party links (Indian tax identity): a shared PAN (Permanent Account Number, also embedded in
  characters 3-12 of a GSTIN) or a shared GSTIN means one legal entity -> BLOCK; a shared mobile
  number suggests a connected party -> WARN.
- Wash trading (self-trade prevention): the same party, or a party explicitly linked in the parties
  table, on both sides -> BLOCK.
- Circular trading: B selling to A within ``circular_window_days`` of A selling the same commodity
  to B (round-tripping the same goods to inflate turnover) -> BLOCK, from allocation history.
- Credit limit (pre-trade credit check): buyer's open exposure + this pair's notional (paise) above
  the buyer's credit limit -> BLOCK; above ``credit_warn_fraction`` of it -> WARN.
- Price anomaly (fat-finger / mispricing check): modified z-score of the price against the market
  reference (median/MAD) beyond ``price_z_warn`` -> WARN.
- Settlement history (trade-credit control: a seller's credit department stops shipping to a buyer
  whose invoices are long past due, and flags one that is late at all): the buyer's
  :class:`~actors.core.risk.standing.SettlementStanding` at the pair's ``ts``: an invoice past due by
  more than ``overdue_block_days`` -> BLOCK; any overdue amount (``overdue_warn``) -> WARN; at least
  ``default_warn_count`` defaults in its history -> WARN. The matching messages give the figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from actors.core.risk.market import MarketReference
from actors.core.risk.standing import CLEAN, SettlementStanding, standing_from_rows
from actors.core.risk.types import Outcome
from actors.core.roles import CAN_BUY, CAN_SELL, Role

DAY_MS = 86_400_000


class PairLike(Protocol):
    """A candidate pair as the rules read it: :class:`actors.core.risk.types.RiskQuery` or any object with
    these attributes (the risk pool uses a lighter named tuple on the wire)."""

    @property
    def buyer_id(self) -> str: ...
    @property
    def seller_id(self) -> str: ...
    @property
    def commodity(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def quantity_kg(self) -> int: ...
    @property
    def price(self) -> int: ...
    @property
    def ts(self) -> int: ...


class KycStatus(StrEnum):
    """KYC state of a party; only ``VERIFIED`` may trade."""

    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"
    SUSPENDED = "SUSPENDED"


# Jurisdictions under comprehensive UN/OFAC embargo (ISO 3166-1 alpha-2): North Korea, Iran, Syria,
# Cuba. A default only: deployments set their own list (RulesConfig.sanctioned_countries).
DEFAULT_SANCTIONED_COUNTRIES = frozenset({"KP", "IR", "SY", "CU"})


class Reason:
    """Reason codes the rules tier emits (stable strings, recorded in events)."""

    BUYER_UNKNOWN = "BUYER_UNKNOWN"
    SELLER_UNKNOWN = "SELLER_UNKNOWN"
    BUYER_KYC_NOT_VERIFIED = "BUYER_KYC_NOT_VERIFIED"
    SELLER_KYC_NOT_VERIFIED = "SELLER_KYC_NOT_VERIFIED"
    BUYER_SANCTIONED = "BUYER_SANCTIONED"
    SELLER_SANCTIONED = "SELLER_SANCTIONED"
    BUYER_SANCTIONED_COUNTRY = "BUYER_SANCTIONED_COUNTRY"
    SELLER_SANCTIONED_COUNTRY = "SELLER_SANCTIONED_COUNTRY"
    BUYER_ROLE_CANNOT_BUY = "BUYER_ROLE_CANNOT_BUY"
    SELLER_ROLE_CANNOT_SELL = "SELLER_ROLE_CANNOT_SELL"
    LINKED_PAN = "LINKED_PAN"
    LINKED_GSTIN = "LINKED_GSTIN"
    LINKED_MOBILE = "LINKED_MOBILE"
    WASH_TRADE = "WASH_TRADE"
    CIRCULAR_TRADE = "CIRCULAR_TRADE"
    CREDIT_LIMIT_EXCEEDED = "CREDIT_LIMIT_EXCEEDED"
    CREDIT_LIMIT_WARNING = "CREDIT_LIMIT_WARNING"
    PRICE_ANOMALY = "PRICE_ANOMALY"
    BUYER_PAST_DUE = "BUYER_PAST_DUE"
    BUYER_OVERDUE = "BUYER_OVERDUE"
    BUYER_DEFAULT_HISTORY = "BUYER_DEFAULT_HISTORY"


@dataclass(frozen=True, slots=True)
class Party:
    """A counterparty as the risk engine sees it (a row of the ``parties`` table).

    ``credit_limit`` is the most open buy notional the party may carry, paise (None = no limit).
    ``country`` is ISO 3166-1 alpha-2. ``pan`` (10 chars), ``gstin`` (15 chars) and ``mobile`` are
    compared case-insensitively after removing spaces (mobile: its last 10 digits). ``linked_parties``
    are explicit links (group companies, common ownership) recorded by an administrator.
    ``version`` grows on every change; ``name`` is the display name.
    """

    party_id: str
    role: str = Role.TRADER
    kyc_status: str = KycStatus.VERIFIED
    sanctioned: bool = False
    country: str = "IN"
    pan: str | None = None
    gstin: str | None = None
    mobile: str | None = None
    credit_limit: int | None = None
    linked_parties: frozenset[str] = field(default_factory=frozenset)
    version: int = 1
    name: str | None = None

    @property
    def pans(self) -> frozenset[str]:
        """The PANs this party is known by: its own and the one embedded in its GSTIN."""
        out = set()
        if self.pan:
            out.add(_norm(self.pan))
        if self.gstin and len(_norm(self.gstin)) == 15:
            out.add(_norm(self.gstin)[2:12])
        return frozenset(out)


def _norm(value: str) -> str:
    return "".join(value.split()).upper()


def _mobile(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits[-10:]  # Indian mobile numbers: 10 digits after the +91 / 0 prefix


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Tunables of the rules tier.

    ``circular_window_days``: look-back for circular trading (30 days: one typical settlement and
    re-sale cycle in physical commodity trade). ``credit_warn_fraction``: WARN when exposure would
    exceed this fraction of the limit (0.8, a common early-warning utilisation level).
    ``price_z_warn``: modified z-score beyond which a price is anomalous (3.5, Iglewicz & Hoaglin).
    ``warn_score``/``block_score``: rules risk score in [0, 1] for a WARN / BLOCK outcome, fed to
    fusion (0 for PASS).
    Settlement history (docs/risk.md): ``overdue_block_days`` BLOCK when an invoice is past due by
    more than this many days (30: one month beyond the terms, the first bucket of receivables
    ageing); ``overdue_warn`` WARN when anything is overdue; ``default_grace_days`` days after due
    before an unpaid invoice counts as a default (the settlement kernel's grace period);
    ``default_warn_count`` WARN from this many defaults in the history (0: off).
    """

    circular_window_days: float = 30.0
    credit_warn_fraction: float = 0.8
    price_z_warn: float = 3.5
    sanctioned_countries: frozenset[str] = DEFAULT_SANCTIONED_COUNTRIES
    warn_score: float = 0.5
    block_score: float = 1.0
    overdue_block_days: float = 30.0
    overdue_warn: bool = True
    default_grace_days: float = 30.0
    default_warn_count: int = 1


def settlement_messages(standing: SettlementStanding, config: RulesConfig) -> dict[str, str]:
    """Reason code -> human message with the figures, for the settlement checks that fire on
    ``standing`` under ``config`` (empty when none fires). Amounts are shown in rupees (paise / 100)."""
    out: dict[str, str] = {}
    s = standing
    owed = f"Rs {s.overdue_paise / 100:,.2f} overdue on {s.overdue_invoices} invoice(s)"
    if s.overdue_paise > 0 and s.days_past_due > config.overdue_block_days:
        out[Reason.BUYER_PAST_DUE] = (
            f"buyer has an invoice {s.days_past_due} days past due "
            f"(limit {config.overdue_block_days:g}); {owed}"
        )
    if s.overdue_paise > 0 and config.overdue_warn:
        out[Reason.BUYER_OVERDUE] = f"buyer is overdue: {owed}, oldest {s.days_past_due} days past due"
    if config.default_warn_count > 0 and s.defaults >= config.default_warn_count:
        out[Reason.BUYER_DEFAULT_HISTORY] = (
            f"buyer has {s.defaults} default(s) in its history (unpaid more than "
            f"{config.default_grace_days:g} days after due)"
        )
    return out


@dataclass(frozen=True, slots=True)
class RuleResult:
    """Rules-tier answer for one pair: outcome, reason codes (in check order) and risk score in
    [0, 1]; ``price_z`` is the price's modified z-score when a market reference was available;
    ``messages`` the human messages (with the figures) of the settlement reasons, code -> text."""

    outcome: Outcome
    reasons: tuple[str, ...]
    score: float
    price_z: float | None = None
    messages: Mapping[str, str] = field(default_factory=dict)


class AllocationHistory:
    """Who sold what to whom, and when: the last allocation time (epoch ms) per
    (seller, buyer, commodity). Feeds the circular-trading check."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], int] = {}

    def record(self, seller_id: str, buyer_id: str, commodity: str, ts: int) -> None:
        """Record an allocation of ``commodity`` from ``seller_id`` to ``buyer_id`` at ``ts`` (ms)."""
        key = (seller_id, buyer_id, commodity)
        if ts > self._last.get(key, -1):
            self._last[key] = ts

    def last_sale(self, seller_id: str, buyer_id: str, commodity: str) -> int | None:
        """Epoch ms of the latest allocation from ``seller_id`` to ``buyer_id``, or None."""
        return self._last.get((seller_id, buyer_id, commodity))

    def __len__(self) -> int:
        return len(self._last)


_RANK = {Outcome.PASS: 0, Outcome.WARN: 1, Outcome.BLOCK: 2}


def worst(a: Outcome, b: Outcome) -> Outcome:
    """The more severe of two outcomes (BLOCK > WARN > PASS)."""
    return a if _RANK[a] >= _RANK[b] else b


class RulesEngine:
    """Evaluates the rules for candidate pairs; holds the config, market reference and history."""

    def __init__(
        self,
        config: RulesConfig | None = None,
        market: MarketReference | None = None,
        history: AllocationHistory | None = None,
    ) -> None:
        self.config = config or RulesConfig()
        self.market = market
        self.history = history if history is not None else AllocationHistory()
        self._memo: dict[tuple[int, str], tuple[Party | None, tuple[tuple[Outcome, str], ...]]] = {}

    def _party_checks(self, p: Party | None, side: str, out: list[tuple[Outcome, str]]) -> None:
        # Party-level results depend only on the (immutable) party and the config: memoised per
        # party object, so a batch with many pairs of one party checks it once.
        memo = self._memo.get((id(p), side))
        if memo is not None and memo[0] is p:
            out.extend(memo[1])
            return
        hits: list[tuple[Outcome, str]] = []
        self._party_checks_uncached(p, side, hits)
        if len(self._memo) > 100_000:
            self._memo.clear()
        self._memo[(id(p), side)] = (p, tuple(hits))
        out.extend(hits)

    def _party_checks_uncached(self, p: Party | None, side: str, out: list[tuple[Outcome, str]]) -> None:
        buyer = side == "BUYER"
        if p is None:
            out.append((Outcome.BLOCK, Reason.BUYER_UNKNOWN if buyer else Reason.SELLER_UNKNOWN))
            return
        if p.kyc_status != KycStatus.VERIFIED:
            out.append(
                (Outcome.BLOCK, Reason.BUYER_KYC_NOT_VERIFIED if buyer else Reason.SELLER_KYC_NOT_VERIFIED)
            )
        if p.sanctioned:
            out.append((Outcome.BLOCK, Reason.BUYER_SANCTIONED if buyer else Reason.SELLER_SANCTIONED))
        if (p.country or "").upper() in self.config.sanctioned_countries:
            out.append(
                (
                    Outcome.BLOCK,
                    Reason.BUYER_SANCTIONED_COUNTRY if buyer else Reason.SELLER_SANCTIONED_COUNTRY,
                )
            )
        if buyer and p.role not in CAN_BUY:
            out.append((Outcome.BLOCK, Reason.BUYER_ROLE_CANNOT_BUY))
        if not buyer and p.role not in CAN_SELL:
            out.append((Outcome.BLOCK, Reason.SELLER_ROLE_CANNOT_SELL))

    def evaluate(
        self,
        q: PairLike,
        buyer: Party | None,
        seller: Party | None,
        exposure: int = 0,
        settlements: Iterable[Mapping[str, Any]] = (),
    ) -> RuleResult:
        """Run every rule on pair ``q``.

        Args:
            q: the pair; ``quantity_kg`` kg at ``price`` paise/kg, ``ts`` epoch ms.
            buyer, seller: the parties (None when not in the parties table).
            exposure: the buyer's open exposure before this pair, paise notional.
            settlements: the buyer's invoice rows (``ml_settlements``; those paid on time may be left
                out), read at ``q.ts`` by :func:`~actors.core.risk.standing.standing_from_rows`.

        Returns:
            The outcome, reason codes and rules risk score (0 PASS, ``warn_score``, ``block_score``).
        """
        cfg = self.config
        hits: list[tuple[Outcome, str]] = []
        self._party_checks(buyer, "BUYER", hits)
        self._party_checks(seller, "SELLER", hits)

        if q.buyer_id == q.seller_id:
            hits.append((Outcome.BLOCK, Reason.WASH_TRADE))
        elif buyer is not None and seller is not None:
            if q.seller_id in buyer.linked_parties or q.buyer_id in seller.linked_parties:
                hits.append((Outcome.BLOCK, Reason.WASH_TRADE))
            if buyer.pans & seller.pans:
                hits.append((Outcome.BLOCK, Reason.LINKED_PAN))
            if buyer.gstin and seller.gstin and _norm(buyer.gstin) == _norm(seller.gstin):
                hits.append((Outcome.BLOCK, Reason.LINKED_GSTIN))
            if buyer.mobile and seller.mobile and _mobile(buyer.mobile) == _mobile(seller.mobile):
                hits.append((Outcome.WARN, Reason.LINKED_MOBILE))

        # Circular: this pair is seller B -> buyer A; look for A -> B of the same commodity.
        back = self.history.last_sale(q.buyer_id, q.seller_id, q.commodity)
        if back is not None and 0 <= q.ts - back <= cfg.circular_window_days * DAY_MS:
            hits.append((Outcome.BLOCK, Reason.CIRCULAR_TRADE))

        if buyer is not None and buyer.credit_limit is not None:
            after = exposure + q.quantity_kg * q.price
            if after > buyer.credit_limit:
                hits.append((Outcome.BLOCK, Reason.CREDIT_LIMIT_EXCEEDED))
            elif after > cfg.credit_warn_fraction * buyer.credit_limit:
                hits.append((Outcome.WARN, Reason.CREDIT_LIMIT_WARNING))

        standing = standing_from_rows(settlements, q.ts, cfg.default_grace_days) if settlements else CLEAN
        messages = settlement_messages(standing, cfg) if not standing.clean else {}
        for code in messages:
            hits.append((Outcome.BLOCK if code == Reason.BUYER_PAST_DUE else Outcome.WARN, code))

        z: float | None = None
        if self.market is not None:
            stats = self.market.stats(q.commodity, q.region)
            if stats is not None:
                z = stats.robust_z(q.price)
                if abs(z) > cfg.price_z_warn:
                    hits.append((Outcome.WARN, Reason.PRICE_ANOMALY))

        outcome = Outcome.PASS
        reasons: list[str] = []
        for o, r in hits:
            outcome = worst(outcome, o)
            if r not in reasons:
                reasons.append(r)
        score = {Outcome.PASS: 0.0, Outcome.WARN: cfg.warn_score, Outcome.BLOCK: cfg.block_score}[outcome]
        return RuleResult(outcome, tuple(reasons), score, z, messages)

    def record_allocation(
        self, seller_id: str, buyer_id: str, commodity: str, price: int, region: str, ts: int
    ) -> None:
        """Feed an allocation back: history for circular trading, price for the market reference."""
        self.history.record(seller_id, buyer_id, commodity, ts)
        if self.market is not None:
            self.market.observe(commodity, region, price)


def linked_by_identity(party: Party, others: Iterable[Party]) -> dict[str, tuple[str, ...]]:
    """Parties among ``others`` linked to ``party`` and why (``LINKED_PAN``, ``LINKED_GSTIN``,
    ``LINKED_MOBILE``, ``WASH_TRADE`` for an explicit link): what the gateway fills into
    ``PlaceOrder.linked_parties`` for self-trade prevention."""
    out: dict[str, tuple[str, ...]] = {}
    for o in others:
        if o.party_id == party.party_id:
            continue
        why: list[str] = []
        if o.party_id in party.linked_parties or party.party_id in o.linked_parties:
            why.append(Reason.WASH_TRADE)
        if party.pans & o.pans:
            why.append(Reason.LINKED_PAN)
        if party.gstin and o.gstin and _norm(party.gstin) == _norm(o.gstin):
            why.append(Reason.LINKED_GSTIN)
        if party.mobile and o.mobile and _mobile(party.mobile) == _mobile(o.mobile):
            why.append(Reason.LINKED_MOBILE)
        if why:
            out[o.party_id] = tuple(why)
    return out


def parties_by_id(parties: Iterable[Party]) -> Mapping[str, Party]:
    """Index parties by id."""
    return {p.party_id: p for p in parties}
