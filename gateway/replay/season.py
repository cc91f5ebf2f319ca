"""The season after the match: deliveries, invoices, payments and sweeps, through the HTTP API.

After the replay's orders, every allocation is a contract (``CT-<allocation_id>``). The season:

1. reads each contract (``GET /v1/contracts/{id}``) for its opening time and delivery window;
2. plans its delivery (:mod:`gateway.replay.delivery`: when, kg, quality drifted from the offered
   lot by real HVI variation) and records it as the seller (``POST .../deliveries`` with
   ``delivered_at``), which raises the invoice;
3. plans each invoice's payments from the buyer's real UCI payment behaviour
   (:mod:`gateway.replay.behaviour`) and makes them as the buyer (``POST /v1/invoices/{id}/payments``
   with ``paid_at`` and a payment reference per payment, so a retry is idempotent);
4. runs the end-of-day sweep (``POST /v1/admin/settlement/sweep``, ``as_of`` = the end of each
   virtual day) between days, so invoices go OVERDUE, then DEFAULTED past the grace period, and
   windows without delivery are cancelled.

Time is virtual: it starts at the contracts' opening (the orders' arrival) and advances only through
these command timestamps, one virtual day at a time, in time order; the wall clock is never waited
for. Finally it reads every invoice (``GET /v1/invoices``, operator view) and the ledger balances.
"""

from __future__ import annotations

import asyncio
import heapq
import sys
from collections import Counter
from typing import Any

from gateway.replay.behaviour import Behaviour, behaviour_for, payments_for
from gateway.replay.client import Client, problem_reason
from gateway.replay.delivery import hvi_means, plan_delivery
from gateway.replay.quality import HVI
from gateway.replay.stats import SeasonStats, Trade

DAY_MS = 86_400_000
GRACE_DAYS = 30  # the settlement kernel's default grace period: the last sweep runs past it


def contract_id_for(allocation_id: str) -> str:
    """The contract of an allocation (the settlement interface: ``CT-`` + allocation id)."""
    return "CT-" + allocation_id


async def _contract(client: Client, token: str, t: Trade, wait_s: float = 30.0) -> dict[str, Any] | None:
    """The allocation's contract; the settlement host opens it from the committed log a moment after
    the allocation, so a 404 is retried for up to ``wait_s`` seconds."""
    path = f"/v1/contracts/{contract_id_for(t.allocation_id)}"
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        r = await client.call("GET", path, token)
        if r.status_code == 200:
            doc: dict[str, Any] = r.json()
            return doc
        if r.status_code != 404 or asyncio.get_running_loop().time() > deadline:
            return None
        await asyncio.sleep(0.25)


def _ms(doc: dict[str, Any], *keys: str) -> int | None:
    for k in keys:
        v = doc.get(k)
        if isinstance(v, int | float):
            return int(v)
    return None


class Season:
    """One season over ``trades`` with party tokens ``keys`` and the admin token (see module doc)."""

    def __init__(
        self,
        client: Client,
        keys: dict[str, str],
        admin: str,
        hvi: list[HVI],
        behaviours: list[Behaviour],
        seed: int,
    ) -> None:
        self.client, self.keys, self.admin, self.seed = client, keys, admin, seed
        self.hvi, self.means, self.behaviours = hvi, hvi_means(hvi), behaviours
        self.stats = SeasonStats()
        self.queue: list[tuple[int, int, str, dict[str, Any]]] = []
        self._n = 0
        self._invoices_of: Counter[str] = Counter()
        self.trades: list[Trade] = []

    def _push(self, at: int, kind: str, item: dict[str, Any]) -> None:
        self._n += 1
        heapq.heappush(self.queue, (at, self._n, kind, item))

    async def _plan_contract(self, t: Trade) -> None:
        doc = await _contract(self.client, self.keys[t.seller_id], t)
        if doc is None:
            self.stats.errors["contract:missing"] += 1
            return
        self.stats.contracts += 1
        opened = _ms(doc, "opened_at", "delivery_from") or t.ts
        until = _ms(doc, "delivery_until") or opened + 15 * DAY_MS
        self.stats.last_ts = max(self.stats.last_ts, until + DAY_MS)
        kg = int(doc.get("quantity_kg") or t.quantity_kg)
        plan = plan_delivery(
            doc["contract_id"], kg, opened, until, t.quality, self.hvi, self.means, self.seed
        )
        if plan.at is None:
            self.stats.not_delivered += 1
            return
        body = {
            "quantity": {"value": plan.kg, "unit": "kg"},
            "quality": plan.quality,
            "delivered_at": plan.at,
        }
        self._push(plan.at, "deliver", {"trade": t, "contract_id": doc["contract_id"], "body": body})

    async def _deliver(self, item: dict[str, Any]) -> None:
        t: Trade = item["trade"]
        path = f"/v1/contracts/{item['contract_id']}/deliveries"
        # the replay delivers each contract once: a retried POST (timeout, 5xx) is the same delivery
        key = f"season-{item['contract_id']}-D1"
        r = await self.client.call("POST", path, self.keys[t.seller_id], item["body"], idempotency_key=key)
        if r.status_code >= 400:
            self.stats.errors[f"deliver:{problem_reason(r)}"] += 1
            return
        d = r.json()
        self.stats.record_delivery(d)
        inv = d.get("invoice") or {}
        if not inv.get("invoice_id"):
            return
        b = behaviour_for(t.buyer_id, self.behaviours, self.seed)
        k = self._invoices_of[t.buyer_id]
        self._invoices_of[t.buyer_id] += 1
        pays, never = payments_for(b, k, inv["invoice_id"], int(inv["amount"]), int(inv["due_at"]), self.seed)
        self.stats.planned_defaults += int(never)
        self.stats.last_ts = max(self.stats.last_ts, int(inv["due_at"]) + (GRACE_DAYS + 1) * DAY_MS)
        for p in pays:
            body = {"amount": p.amount, "payment_ref": p.ref, "paid_at": p.paid_at}
            self._push(p.paid_at, "pay", {"buyer": t.buyer_id, "invoice_id": inv["invoice_id"], "body": body})

    async def _pay(self, item: dict[str, Any]) -> None:
        path = f"/v1/invoices/{item['invoice_id']}/payments"
        r = await self.client.call("POST", path, self.keys[item["buyer"]], item["body"])
        if r.status_code >= 400:
            self.stats.errors[f"pay:{problem_reason(r)}"] += 1
            return
        self.stats.payments += 1
        self.stats.paid_paise += int(item["body"]["amount"])

    async def _sweep(self, as_of: int) -> None:
        r = await self.client.call("POST", "/v1/admin/settlement/sweep", self.admin, {"as_of": as_of})
        self.stats.sweeps += 1
        if r.status_code >= 400:
            self.stats.errors[f"sweep:{problem_reason(r)}"] += 1

    async def run(self, trades: list[Trade], progress: bool = True) -> SeasonStats:
        """Plan every contract, then play the events day by day with a sweep at each day's end."""
        self.trades = list(trades)
        await asyncio.gather(*(self._plan_contract(t) for t in trades))
        if not self.queue:
            return self.stats
        day_end = (self.queue[0][0] // DAY_MS + 1) * DAY_MS
        self.stats.first_ts = self.queue[0][0]
        bar = _bar(progress)
        while self.queue or day_end <= self.stats.last_ts:
            todays: list[tuple[str, dict[str, Any]]] = []
            while self.queue and self.queue[0][0] < day_end:
                _, _, kind, item = heapq.heappop(self.queue)
                todays.append((kind, item))
            # one virtual day: deliveries first (they raise the invoices), then payments
            await asyncio.gather(*(self._deliver(i) for k, i in todays if k == "deliver"))
            await asyncio.gather(*(self._pay(i) for k, i in todays if k == "pay"))
            await self._sweep(day_end)
            self.stats.end_ts = day_end
            bar.update(1)
            day_end += DAY_MS
        bar.close()
        await self._read_back()
        return self.stats

    async def _read_back(self) -> None:
        """Every invoice's final state (operator view, paginated) and the buyers' ledger balances."""
        cursor: str | None = None
        while True:
            path = "/v1/invoices?limit=500" + (f"&cursor={cursor}" if cursor else "")
            r = await self.client.call("GET", path, self.admin)
            if r.status_code != 200:
                self.stats.errors[f"invoices:{problem_reason(r)}"] += 1
                break
            page = r.json()
            for inv in page.get("items") or []:
                self.stats.record_invoice(inv)
            cursor = page.get("next_cursor")
            if not cursor:
                break
        buyers = sorted({t.buyer_id for t in self.trades})
        await asyncio.gather(*(self._balances(b) for b in buyers))

    async def _balances(self, buyer: str) -> None:
        """A buyer's ledger balances (its exposure) with its credit limit from the parties admin API."""
        r = await self.client.call("GET", "/v1/ledger/balances", self.keys[buyer])
        if r.status_code != 200:
            self.stats.errors[f"balances:{problem_reason(r)}"] += 1
            return
        doc = dict(r.json())
        p = await self.client.call("GET", f"/v1/admin/parties/{buyer}", self.admin)
        if p.status_code == 200:
            doc["credit_limit"] = p.json().get("credit_limit_paise")
        self.stats.record_balances(buyer, doc)


def _bar(enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=None, unit="day", desc="season", disable=not enabled, file=sys.stderr)
