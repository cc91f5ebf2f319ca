"""A double-entry ledger on TigerBeetle's model (pure): accounts, transfers, two-phase transfers.

Modelled on TigerBeetle (docs.tigerbeetle.com, "Accounts", "Transfers", "Two-phase transfers"):

- An :class:`Account` holds four integer balances: ``debits_pending``, ``debits_posted``,
  ``credits_pending``, ``credits_posted`` (paise), and flags: ``DEBITS_MUST_NOT_EXCEED_CREDITS``
  (``debits_pending + debits_posted <= credits_posted``) or ``CREDITS_MUST_NOT_EXCEED_DEBITS``
  (``credits_pending + credits_posted <= debits_posted``).
- A :class:`Transfer` debits one account and credits another by the same ``amount`` (> 0). A
  ``PENDING`` transfer adds to the pending balances only; a later ``POST_PENDING`` transfer (naming
  it in ``pending_id``) moves ``amount`` <= the pending amount to the posted balances and releases
  the rest; ``VOID_PENDING`` releases it all. A pending transfer is posted or voided at most once.
- Transfer ids are unique; a transfer that would break a flag or a rule raises
  :class:`LedgerError` and changes nothing (TigerBeetle's per-transfer result codes).

Accounts are ``<party>:<kind>`` for the kinds in :data:`KINDS`; their flags come from
:data:`KIND_FLAGS` (docs/post-trade.md, "Ledger"). The desk's own party is :data:`DESK`.
Invariants (:meth:`Ledger.check`): the sums of debits and credits are equal (pending and posted
separately); every stored balance equals the balance recomputed from the transfers; no account is
beyond its flags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DESK = "DESK"
CASH, RECEIVABLE, PAYABLE, GOODS_IN_TRANSIT, EXPOSURE = (
    "cash",
    "receivable",
    "payable",
    "goods_in_transit",
    "exposure",
)
KINDS = (CASH, RECEIVABLE, PAYABLE, GOODS_IN_TRANSIT, EXPOSURE)

DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
PENDING = 1 << 1
POST_PENDING = 1 << 2
VOID_PENDING = 1 << 3

# A buyer's payable cannot be paid beyond what was invoiced; a seller's receivable cannot be
# collected beyond what was invoiced; exposure never goes below zero. Cash and goods are free.
KIND_FLAGS = {
    CASH: 0,
    RECEIVABLE: CREDITS_MUST_NOT_EXCEED_DEBITS,
    PAYABLE: DEBITS_MUST_NOT_EXCEED_CREDITS,
    GOODS_IN_TRANSIT: 0,
    EXPOSURE: CREDITS_MUST_NOT_EXCEED_DEBITS,
}


class LedgerError(ValueError):
    """A transfer was refused; ``code`` is the TigerBeetle-style result name."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def account_id(party_id: str, kind: str) -> str:
    """Ledger account id ``<party>:<kind>``."""
    return f"{party_id}:{kind}"


def account_flags(acct: str) -> int:
    """Flags of account ``acct``: its kind's (:data:`KIND_FLAGS`), none for the desk's."""
    party, _, kind = acct.rpartition(":")
    return 0 if party == DESK else KIND_FLAGS.get(kind, 0)


def kind_of(acct: str) -> str:
    """The kind part of an account id."""
    return acct.rpartition(":")[2]


@dataclass(slots=True)
class Account:
    """One ledger account: balances in paise, ``flags`` from :data:`KIND_FLAGS`."""

    id: str
    flags: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def balance(self) -> int:
        """Posted debits minus posted credits, plus pending debits minus pending credits."""
        return self.debits_posted + self.debits_pending - self.credits_posted - self.credits_pending

    def violation(self) -> str | None:
        """Which flag the balances break, or None."""
        if self.flags & DEBITS_MUST_NOT_EXCEED_CREDITS and (
            self.debits_pending + self.debits_posted > self.credits_posted
        ):
            return "exceeds_credits"
        if self.flags & CREDITS_MUST_NOT_EXCEED_DEBITS and (
            self.credits_pending + self.credits_posted > self.debits_posted
        ):
            return "exceeds_debits"
        return None


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer: ``amount`` paise from ``debit`` to ``credit`` account; ``flags`` 0 (posted at
    once), PENDING, POST_PENDING or VOID_PENDING (``pending_id`` names the pending transfer; for
    those the accounts must be the pending transfer's). ``code``: what the posting is (open,
    delivery, invoice, payment, cancel...); ``contract_id`` and ``ts`` (epoch ms) for statements."""

    id: str
    debit: str
    credit: str
    amount: int
    flags: int = 0
    pending_id: str = ""
    code: str = ""
    contract_id: str = ""
    ts: int = 0


@dataclass(slots=True)
class Ledger:
    """Accounts and transfers in application order. Mutated only by :meth:`apply`."""

    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    open_pending: dict[str, Transfer] = field(default_factory=dict)

    def account(self, acct: str) -> Account:
        """The account ``acct``, created with its kind's flags on first use (the desk's accounts are
        clearing accounts without flags)."""
        a = self.accounts.get(acct)
        if a is None:
            a = self.accounts[acct] = Account(acct, account_flags(acct))
        return a

    def apply(self, t: Transfer) -> None:
        """Apply one transfer atomically, or raise :class:`LedgerError` and change nothing."""
        if t.id in self.transfers:
            raise LedgerError("exists", t.id)
        if t.debit == t.credit:
            raise LedgerError("accounts_must_be_different", t.id)
        dr, cr = self.account(t.debit), self.account(t.credit)
        saved = _state(dr), _state(cr)
        if t.flags & (POST_PENDING | VOID_PENDING):
            p = self.open_pending.get(t.pending_id)
            if p is None:
                closed = t.pending_id in self.transfers
                code = "pending_transfer_already_closed" if closed else "pending_transfer_not_found"
                raise LedgerError(code, t.id)
            if (p.debit, p.credit) != (t.debit, t.credit):
                raise LedgerError("pending_transfer_has_different_accounts", t.id)
            amount = 0 if t.flags & VOID_PENDING else t.amount
            if amount < 0 or amount > p.amount:
                raise LedgerError("exceeds_pending_transfer_amount", t.id)
            dr.debits_pending -= p.amount
            cr.credits_pending -= p.amount
            dr.debits_posted += amount
            cr.credits_posted += amount
        else:
            if t.amount <= 0:
                raise LedgerError("amount_must_not_be_zero", t.id)
            if t.flags & PENDING:
                dr.debits_pending += t.amount
                cr.credits_pending += t.amount
            else:
                dr.debits_posted += t.amount
                cr.credits_posted += t.amount
        bad = dr.violation() or cr.violation()
        if bad:
            _restore(dr, saved[0])
            _restore(cr, saved[1])
            raise LedgerError(bad, f"{t.id} ({t.debit} -> {t.credit}, {t.amount})")
        self.transfers[t.id] = t
        if t.flags & PENDING:
            self.open_pending[t.id] = t
        elif t.flags & (POST_PENDING | VOID_PENDING):
            del self.open_pending[t.pending_id]

    def apply_all(self, transfers: Iterable[Transfer]) -> None:
        """Apply transfers in order (each atomically)."""
        for t in transfers:
            self.apply(t)

    def exposure(self, party_id: str) -> int:
        """Credit exposure of ``party_id`` (paise): its exposure account's balance."""
        a = self.accounts.get(account_id(party_id, EXPOSURE))
        return a.balance() if a else 0

    def check(self) -> None:
        """Raise AssertionError unless every invariant of the module docstring holds."""
        accts = self.accounts.values()
        assert sum(a.debits_posted for a in accts) == sum(a.credits_posted for a in accts)
        assert sum(a.debits_pending for a in accts) == sum(a.credits_pending for a in accts)
        recomputed = recompute(self.transfers.values())
        for a in accts:
            assert _state(a) == recomputed.get(a.id, (0, 0, 0, 0)), a.id
            assert a.violation() is None, a.id


def _state(a: Account) -> tuple[int, int, int, int]:
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)


def _restore(a: Account, s: tuple[int, int, int, int]) -> None:
    a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted = s


def recompute(transfers: Iterable[Transfer]) -> dict[str, tuple[int, int, int, int]]:
    """Balances ``(debits_pending, debits_posted, credits_pending, credits_posted)`` per account
    recomputed from scratch from ``transfers`` (in application order)."""
    bal: dict[str, list[int]] = {}
    amounts: dict[str, Transfer] = {}
    for t in transfers:
        dr = bal.setdefault(t.debit, [0, 0, 0, 0])
        cr = bal.setdefault(t.credit, [0, 0, 0, 0])
        if t.flags & PENDING:
            amounts[t.id] = t
            dr[0] += t.amount
            cr[2] += t.amount
        elif t.flags & (POST_PENDING | VOID_PENDING):
            p = amounts[t.pending_id]
            posted = 0 if t.flags & VOID_PENDING else t.amount
            dr[0] -= p.amount
            cr[2] -= p.amount
            dr[1] += posted
            cr[3] += posted
        else:
            dr[1] += t.amount
            cr[3] += t.amount
    return {k: (v[0], v[1], v[2], v[3]) for k, v in bal.items()}
