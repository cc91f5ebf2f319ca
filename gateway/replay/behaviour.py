"""How the season's buyers pay (pure and seeded): one real UCI credit row per buyer.

Each buyer of the season is given one row of the UCI "default of credit card clients" file (UCI
dataset 350, Yeh and Lien 2009; ``data/credit_risk``), drawn with ``random.Random(f"{seed}:{buyer}")``.
Its six monthly repayment statuses ``PAY_0, PAY_2..PAY_6`` (-2 no use, -1 paid duly, 0 revolving,
n >= 1 payment delayed n months), its bills ``BILL_AMT1..6`` and payments ``PAY_AMT1..6`` become the
buyer's payment behaviour; the ``k``-th invoice of the buyer reads month ``k mod 6`` of the row
(month 1 = ``PAY_0``/``PAY_AMT1``):

- **days late** of the first payment: status <= 0 -> paid on time, 0-5 days before due; status
  n >= 1 -> ``30 (n - 1) + u`` days after due, ``u`` uniform in [1, 30) (UCI's "n months late");
- **fraction paid** by that first payment: the month's payment ratio ``PAY_AMTm / BILL_AMT(m+1)``
  (what was paid in month m against the previous statement; Yeh and Lien's columns), clipped to
  [0, 1]; 1 when there was no bill to pay (month 6, having no earlier statement, uses its own);
- **the rest**: paid 30 days after the first payment, unless the row is a defaulter
  (``default.payment.next.month`` = 1) whose month status is 2 or worse: then the rest is never paid
  and the invoice ends DEFAULTED (past the grace period) at the sweep.

Amounts are whole paise: the first payment is ``floor(amount * fraction)`` (none when 0), the rest
``amount`` minus it, so each invoice is paid exactly in full or left with a positive balance.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from gateway.replay.quality import ROOT

UCI_FILE = ROOT / "data" / "credit_risk" / "uci_default_credit_card_clients.csv"
DAY_MS = 86_400_000
MONTHS = 6
STATUS_COLUMNS = ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")
TARGET = "default.payment.next.month"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One buyer's payment behaviour: the UCI row it came from (0-based line of the data rows),
    its six monthly statuses, six payment ratios in [0, 1] and whether the client defaulted."""

    row: int
    status: tuple[int, ...]
    pay_ratio: tuple[float, ...]
    defaulter: bool


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment to make: ``amount`` paise at ``paid_at`` epoch ms, reference ``ref``."""

    paid_at: int
    amount: int
    ref: str


def _ratio(paid: float, bill: float) -> float:
    if bill <= 0:
        return 1.0
    return min(1.0, max(0.0, paid / bill))


def load_behaviours(path: Path = UCI_FILE) -> list[Behaviour]:
    """Every row of the UCI file as a :class:`Behaviour`. Raises OSError / KeyError on a file that is
    missing or lacks the columns."""
    out: list[Behaviour] = []
    with path.open(encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            status = tuple(int(float(row[c])) for c in STATUS_COLUMNS)
            # payment in month m (PAY_AMTm) against the statement of the month before (BILL_AMT(m+1));
            # month 6 has no earlier statement in the row: its own (BILL_AMT6)
            ratios = tuple(
                _ratio(float(row[f"PAY_AMT{m}"]), float(row[f"BILL_AMT{min(m + 1, MONTHS)}"]))
                for m in range(1, MONTHS + 1)
            )
            out.append(Behaviour(i, status, ratios, row[TARGET].strip() == "1"))
    return out


def behaviour_for(buyer_id: str, behaviours: list[Behaviour], seed: int) -> Behaviour:
    """The behaviour of ``buyer_id``: a row drawn with ``Random(f"{seed}:{buyer_id}")``."""
    return behaviours[random.Random(f"{seed}:{buyer_id}").randrange(len(behaviours))]


def payments_for(
    b: Behaviour, k: int, invoice_id: str, amount: int, due_at: int, seed: int
) -> tuple[list[Payment], bool]:
    """The payments of the ``k``-th invoice (0-based) of a buyer with behaviour ``b``: ``amount``
    paise due at ``due_at`` epoch ms. Returns (payments in time order, whether the rest is never
    paid). Seeded by ``invoice_id``."""
    rng = random.Random(f"{seed}:{invoice_id}")
    m = k % MONTHS
    status = b.status[m]
    if status <= 0:
        first_at = due_at - int(rng.uniform(0.0, 5.0) * DAY_MS)
    else:
        first_at = due_at + int((30 * (status - 1) + rng.uniform(1.0, 30.0)) * DAY_MS)
    first = amount if b.pay_ratio[m] >= 1.0 else int(amount * b.pay_ratio[m])
    out = [Payment(first_at, first, f"{invoice_id}-P1")] if first > 0 else []
    rest = amount - first
    if rest <= 0:
        return out, False
    if b.defaulter and status >= 2:
        return out, True
    out.append(Payment(first_at + 30 * DAY_MS, rest, f"{invoice_id}-P2"))
    return out, False
