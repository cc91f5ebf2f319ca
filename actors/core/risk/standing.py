"""A buyer's settlement standing at one instant: overdue amount, days past due, default history.

Pure (no I/O, no clock): the invoices are passed in (rows of ``ml_settlements``, which the settlement
projection keeps, see ``docs/risk.md`` "Settlement history"), and so is the instant ``as_of_ts``
(the command's timestamp), so the same rows give the same standing in live trading and in replay.
The instant is the later of ``as_of_ts`` and the buyer's **desk time** (``desk_ts`` of its rows:
its latest settlement fact, an invoice issued or paid or a sweep's OVERDUE/DEFAULTED verdict, all
committed events): a season simulated through settlement timestamps ahead of the wall clock (the
season replay, a back-dated import) is judged on its own clock, and a sweep's verdict is never
undone by reading the standing at an earlier order time.

Definitions (money in paise, time epoch ms, a day = 86,400,000 ms):

- an invoice is **open** at ``as_of`` when it was issued by then (``invoiced_ts <= as_of``) and not
  fully paid by then (``paid_ts`` is None, or later than ``as_of``); its outstanding amount is
  ``amount - paid_amount`` while unpaid, the whole ``amount`` when it is paid only after ``as_of``
  (the row does not say when partial payments came, so the standing at a past instant is conservative);
- it is **past due** when open with an outstanding amount and ``due_ts < as_of``; its days past due
  are ``(as_of - due_ts) // day`` (whole days, as receivables ageing counts them);
- it is a **default** when it stayed unpaid more than ``grace_days`` after ``due_ts``: still open at
  ``as_of`` and ``as_of - due_ts > grace``, or fully paid at ``paid_ts <= as_of`` with
  ``paid_ts - due_ts > grace`` (a default stays in the history after a late payment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class SettlementStanding:
    """What a buyer owes late at one instant.

    ``overdue_paise``: outstanding on its past-due invoices (paise); ``overdue_invoices``: how many;
    ``days_past_due``: days past due of the oldest of them (0 when none); ``defaults``: invoices in
    its default history (see the module doc).
    """

    overdue_paise: int = 0
    overdue_invoices: int = 0
    days_past_due: int = 0
    defaults: int = 0

    @property
    def clean(self) -> bool:
        """Nothing overdue and no default in the history."""
        return self.overdue_paise == 0 and self.defaults == 0


CLEAN = SettlementStanding()


def standing_from_rows(
    rows: Iterable[Mapping[str, Any]], as_of_ts: int, grace_days: float
) -> SettlementStanding:
    """The standing of one buyer at ``as_of_ts`` (or its later desk time) from its invoice rows.

    ``rows``: mappings with ``invoiced_ts``, ``due_ts``, ``amount``, ``paid_ts`` (None while unpaid),
    ``paid_amount`` and optionally ``desk_ts`` (:class:`persistence.risk_reads.LateSettlementRow`);
    rows paid on time may be left out, they change nothing. ``grace_days``: days after due before an
    unpaid invoice is a default. Returns :data:`CLEAN` when nothing is late.
    """
    rows = list(rows)
    as_of_ts = max([as_of_ts, *(int(r.get("desk_ts") or 0) for r in rows)])
    grace_ms = grace_days * DAY_MS
    overdue = count = oldest_due = defaults = 0
    oldest: int | None = None
    for r in rows:
        issued, due, amount = int(r["invoiced_ts"]), int(r["due_ts"]), int(r["amount"])
        if issued > as_of_ts:
            continue
        paid_ts = r.get("paid_ts")
        if paid_ts is not None and int(paid_ts) <= as_of_ts:
            if int(paid_ts) - due > grace_ms:
                defaults += 1
            continue
        outstanding = amount - int(r.get("paid_amount") or 0) if paid_ts is None else amount
        if outstanding <= 0 or due >= as_of_ts:
            continue
        overdue += outstanding
        count += 1
        if oldest is None or due < oldest:
            oldest = due
        if as_of_ts - due > grace_ms:
            defaults += 1
    if count == 0 and defaults == 0:
        return CLEAN
    if oldest is not None:
        oldest_due = (as_of_ts - oldest) // DAY_MS
    return SettlementStanding(overdue, count, int(oldest_due), defaults)
