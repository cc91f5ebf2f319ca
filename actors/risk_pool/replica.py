"""One risk-pool replica: the Ray Serve deployment class (see :mod:`actors.risk_pool.deploy`).

Per batch of requests (``@serve.batch`` merges concurrent requests from several shards) a replica:

1. refreshes its party cache (one Redis ``MGET`` of ``<prefix>parties:version`` and the model-config
   version; a party change empties the cache; misses are read from PostgreSQL in one query through
   :meth:`persistence.parties.PartyRepository.get_many`); a new model-config version reloads the
   models (hot reload, no restart);
2. reserves credit for every buyer atomically in Redis (:mod:`persistence.exposure`), which also
   returns each buyer's exposure before the batch;
3. reads the buyers' late invoices (``ml_settlements``, :func:`persistence.risk_reads.late_settlements`)
   beside the credit reservation, then runs the rules tier (:mod:`actors.core.risk.rules`) on every
   pair, while the ML tier
   (:mod:`actors.risk_pool.ml_tier`) scores in a worker thread behind its circuit breaker;
4. fuses both (:mod:`actors.core.risk.fusion`) into one decision per pair.

Replicas are stateless (caches only): any replica can answer any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray import serve

from actors.core.events import ALLOCATED
from actors.core.ids import EVENTS_CHANNEL_PATTERN
from actors.core.risk.breaker import CircuitBreaker
from actors.core.risk.fusion import (
    DEFAULT_ML_TIMEOUT_MS,
    DEFAULT_ML_TIMEOUT_PER_PAIR_MS,
    FusionConfig,
    MlScores,
    fuse,
)
from actors.core.risk.market import MarketReference
from actors.core.risk.rules import AllocationHistory, Party, RulesConfig, RulesEngine
from actors.core.risk.types import RiskReply, RiskRequest, WireDecision
from actors.risk_pool.ml_tier import (
    WARM_UP_PARTY,
    MlCounters,
    MlGate,
    MlTier,
    breaker_from_config,
    load_models_from_config,
)
from actors.risk_pool.tally import DecisionTally
from actors.risk_pool.wire import (
    MODEL_CONFIG_KEY,
    MODEL_CONFIG_VERSION_KEY,
    Pair,
    WireRequest,
    WireRequestTuple,
    encode_decision,
    from_wire,
)
from persistence import risk_reads
from persistence.agmarknet import default_agmarknet_paths, load_price_points
from persistence.exposure import ADJUST_LUA, DEFAULT_PREFIX, RESERVE_LUA, pack_reserve, unpack_reserve
from persistence.parties import PartyRepository

if TYPE_CHECKING:
    import asyncpg
    import pandas as pd

log = logging.getLogger(__name__)

BATCH_MAX_REQUESTS = 16
BATCH_WAIT_S = 0.002
BATCH_CONCURRENCY = 2  # a second batch runs its rules while the first waits on Redis or the ML thread
HISTORY_LIMIT = 500_000  # allocations read at start for the circular-trading window
FUSION_KEYS = ("rules_weight", "ml_weight", "warn_threshold", "block_threshold", "penalty")


@dataclass
class PoolCounters:
    """Request-path counters of one replica (the ML tier's are :class:`MlCounters`)."""

    requests: int = 0
    batches: int = 0
    decisions: int = 0
    ml_decisions: int = 0
    party_cache_flushes: int = 0
    party_loads: int = 0


class RiskPoolReplica:
    """One risk replica (the Serve deployment class; see :func:`actors.risk_pool.deploy.build_risk_app`).

    Args:
        dsn: PostgreSQL DSN (parties, allocation history, settlements); None = no database.
        redis_url: Redis URL (exposure counters, party version key, committed events).
        prefix: Redis key prefix for exposure and party keys.
        rules_config: :class:`RulesConfig` fields (JSON-able dict).
        market_window: prices kept per (commodity, region) series.
        load_history: read recent allocations at start and follow committed events.
    """

    def __init__(
        self,
        dsn: str | None,
        redis_url: str,
        prefix: str = DEFAULT_PREFIX,
        rules_config: dict[str, Any] | None = None,
        market_window: int = 500,
        load_history: bool = True,
    ) -> None:
        import redis.asyncio as aredis

        rc = dict(rules_config or {})
        if "sanctioned_countries" in rc:
            rc["sanctioned_countries"] = frozenset(rc["sanctioned_countries"])
        self.market = MarketReference(window=market_window).seed(load_price_points(default_agmarknet_paths()))
        self.rules = RulesEngine(RulesConfig(**rc), self.market, AllocationHistory())
        self.fusion = FusionConfig()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="risk-ml")
        self.ml_counters = MlCounters()
        self.tally = DecisionTally()
        self.gate = MlGate(executor=self._executor, on_state=self._set_gauge, counters=self.ml_counters)
        self.ml: MlTier | None = None
        self.config_version: str | None = None
        self.dsn = dsn
        self.prefix = prefix
        self.redis = aredis.Redis.from_url(redis_url)
        self._reserve = self.redis.register_script(RESERVE_LUA)
        self._adjust = self.redis.register_script(ADJUST_LUA)
        self._db: asyncpg.Pool | None = None
        self._db_lock = asyncio.Lock()
        self.parties: dict[str, Party | None] = {}
        self.model_config_seen: int | None = None
        self._reload_lock = asyncio.Lock()
        self.parties_version: bytes | str | None = None
        self.counters = PoolCounters()
        self._load_history = load_history
        self._bg: asyncio.Task[None] | None = None
        self._gauge: Any = None  # ray.util.metrics.Gauge when running in a Ray worker
        try:
            from ray.util.metrics import Gauge

            self._gauge = Gauge(
                "tradedesk_risk_ml_breaker_state",
                description="ML-tier circuit breaker: 0 closed, 1 half-open, 2 open",
            )
        except Exception:  # metrics are best-effort outside a Ray worker
            self._gauge = None

    @property
    def breaker(self) -> CircuitBreaker:
        """The ML tier's circuit breaker."""
        return self.gate.breaker

    # -- configuration --------------------------------------------------------------------------

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply a ``user_config``: model source (``models_pickle`` or ``tracking_uri``/``alias``),
        ``ml_timeout_ms``, ``ml_timeout_per_pair_ms``, fusion (``rules_weight``, ``ml_weight``,
        ``warn_threshold``, ``block_threshold``, ``penalty``), breaker (``breaker_failures``,
        ``breaker_window_s``, ``breaker_cooldown_s``); absent keys take the defaults of
        :class:`FusionConfig` and :class:`CircuitBreaker`. Models load in a thread; a load failure
        leaves the ML tier off."""
        cfg = dict(user_config or {})
        self.fusion = FusionConfig(**{k: float(cfg[k]) for k in FUSION_KEYS if k in cfg})
        self.gate = MlGate(
            breaker_from_config(cfg),
            float(cfg.get("ml_timeout_ms", DEFAULT_ML_TIMEOUT_MS)),
            self._executor,
            self._set_gauge,
            self.ml_counters,
            float(cfg.get("ml_timeout_per_pair_ms", DEFAULT_ML_TIMEOUT_PER_PAIR_MS)),
        )
        loop = asyncio.get_running_loop()
        try:
            models = await loop.run_in_executor(self._executor, load_models_from_config, cfg, self.dsn)
        except Exception as exc:
            log.warning("risk pool: model load failed, ML tier off: %s", exc)
            models = None
        old = self.ml
        ml = MlTier(models, self.market) if models is not None else None
        if ml is not None:
            try:  # outside the ML timeout: the first real batch must not pay the first-call costs
                feats = await self._payment_features([WARM_UP_PARTY], 0)
                await loop.run_in_executor(self._executor, ml.warm_up, feats)
            except Exception as exc:
                log.info("risk pool: ML warm-up failed: %s", exc)
            if old is not None:
                ml.typical_qty = old.typical_qty
        self.ml = ml
        self.config_version = str(cfg.get("version", "")) or None
        if "config_seq" in cfg:
            self.model_config_seen = max(int(cfg["config_seq"]), int(self.model_config_seen or 0))
        self._set_gauge(self.breaker)

    async def _reload_model_config(self, model_version: int) -> None:
        """Apply the model config promoted through Redis
        (:func:`~actors.risk_pool.deploy.apply_model_config`): the live replica reloads its models
        without a restart. One reload at a time."""
        async with self._reload_lock:
            if model_version == self.model_config_seen:
                return
            raw = await self.redis.get(f"{self.prefix}{MODEL_CONFIG_KEY}")
            self.model_config_seen = model_version
            if raw:
                try:
                    cfg = json.loads(raw)
                except ValueError:
                    log.warning("risk pool: promoted model config is not JSON; ignored")
                    return
                cfg["config_seq"] = model_version
                await self.reconfigure(cfg)

    def _set_gauge(self, breaker: CircuitBreaker) -> None:
        if self._gauge is not None:
            with contextlib.suppress(Exception):
                self._gauge.set(breaker.state_value)

    # -- lazy resources ---------------------------------------------------------------------------

    async def _database(self) -> asyncpg.Pool | None:
        if self._db is None and self.dsn:
            async with self._db_lock:
                if self._db is None:
                    import asyncpg

                    self._db = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        return self._db

    def _start_background(self) -> None:
        if self._bg is None and self._load_history:
            self._bg = asyncio.get_running_loop().create_task(self._follow_allocations())

    async def _follow_allocations(self) -> None:
        """Load recent allocations (circular-trading window) and follow committed ALLOCATED events."""
        try:
            db = await self._database()
            if db is not None:
                window_ms = int(self.rules.config.circular_window_days * 86_400_000)
                try:
                    rows = await risk_reads.recent_allocations(db, window_ms, HISTORY_LIMIT)
                except Exception as exc:
                    rows = []
                    log.info("risk pool: no allocation history yet (%s)", type(exc).__name__)
                for r in rows:
                    self._observe(r.seller_id, r.buyer_id, r.shard_id, r.price, r.quantity_kg, r.ts)
            pubsub = self.redis.pubsub()
            await pubsub.psubscribe(EVENTS_CHANNEL_PATTERN)
            async for msg in pubsub.listen():
                if msg.get("type") != "pmessage":
                    continue
                raw = msg["data"]
                if (ALLOCATED.encode() if isinstance(raw, bytes) else ALLOCATED) not in raw:
                    continue  # no allocation in this message: not parsed (most events are not)
                try:
                    data = json.loads(raw)
                    for ev in data if isinstance(data, list) else [data]:
                        if ev.get("type") == ALLOCATED:
                            p = ev["payload"]
                            self._observe(
                                p["seller_id"],
                                p["buyer_id"],
                                ev["shard_id"],
                                p["price"],
                                p["quantity_kg"],
                                ev["ts"],
                            )
                except Exception:  # a malformed message must not stop the follower
                    continue
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("risk pool: allocation follower stopped: %s", exc)

    def _observe(self, seller: str, buyer: str, shard_id: str, price: int, qty: int, ts: int) -> None:
        region, _, commodity = str(shard_id).partition(".")
        self.rules.record_allocation(seller, buyer, commodity, int(price), region, int(ts))
        if self.ml is not None:
            self.ml.observe_quantity(buyer, int(qty))

    async def _refresh_parties(self, ids: set[str]) -> None:
        version, raw_model_version = await self.redis.mget(
            f"{self.prefix}parties:version", f"{self.prefix}{MODEL_CONFIG_VERSION_KEY}"
        )
        if raw_model_version is not None and int(raw_model_version) != self.model_config_seen:
            await self._reload_model_config(int(raw_model_version))
        if version != self.parties_version:
            if self.parties:
                self.counters.party_cache_flushes += 1
            self.parties = {}
            self.parties_version = version
        missing = [p for p in ids if p not in self.parties]
        if not missing:
            return
        db = await self._database()
        found = await PartyRepository(db).get_many(missing) if db is not None else {}
        self.counters.party_loads += len(missing)
        for pid in missing:
            self.parties[pid] = found.get(pid)

    async def _payment_features(self, buyers: list[str], as_of_ts: int) -> pd.DataFrame | None:
        """Payment-default features (n_buyers, d) of ``buyers`` from their settlement rows."""
        if not buyers:
            return None
        db = await self._database()
        rows = await risk_reads.settlements(db, buyers) if db is not None else []
        from ml.features import party_payment_features

        limits: dict[str, int] = {}
        for b in buyers:
            p = self.parties.get(b)
            limits[b] = p.credit_limit if p is not None and p.credit_limit is not None else 0
        feats = party_payment_features(rows, limits, as_of_ts)
        return feats.loc[buyers]

    async def _late_settlements(self, buyers: set[str]) -> dict[str, list[risk_reads.LateSettlementRow]]:
        """The buyers' invoices unpaid or paid late, per buyer (settlement-history rules)."""
        db = await self._database() if buyers else None
        return await risk_reads.late_settlements(db, sorted(buyers)) if db is not None else {}

    async def _ml_scores(self, queries: list[Pair]) -> list[MlScores] | None:
        return await self.gate.scores(self.ml, queries, self.parties, self._payment_features)

    # -- the request path ------------------------------------------------------------------------

    async def decide(self, request: WireRequestTuple | RiskRequest) -> RiskReply:
        """Decide one shard batch (:func:`~actors.risk_pool.wire.to_wire` form or a
        :class:`RiskRequest`). Returns (decisions as tuples in query order, credit grants in paise)."""
        self.counters.requests += 1
        out: RiskReply = await self._decide_batch(from_wire(request))
        return out

    @serve.batch(
        max_batch_size=BATCH_MAX_REQUESTS,
        batch_wait_timeout_s=BATCH_WAIT_S,
        max_concurrent_batches=BATCH_CONCURRENCY,
    )
    async def _decide_batch(self, requests: list[WireRequest]) -> list[RiskReply]:
        return await self._decide_many(requests)

    async def _grants(
        self, requests: list[WireRequest], queries: list[Pair]
    ) -> tuple[dict[str, int], list[dict[str, int]]]:
        """One atomic Redis call: per request and buyer, the exposure before (paise) and the grant."""
        parties = self.parties
        entries: list[tuple[int, str, int, int | None]] = []
        seen_buyers: set[str] = set()
        for i, r in enumerate(requests):
            for buyer, amount in r.credit_requests.items():
                p = parties.get(buyer)
                limit = 0 if p is None else p.credit_limit
                entries.append((i, buyer, amount if limit is not None else 0, limit))
                seen_buyers.add(buyer)
        for q in queries:
            if q.buyer_id not in seen_buyers:
                seen_buyers.add(q.buyer_id)
                entries.append((-1, q.buyer_id, 0, -1))
        exposure: dict[str, int] = {}
        grants: list[dict[str, int]] = [{} for _ in requests]
        if entries:
            keys, args = pack_reserve(self.prefix, [(b, amount, limit) for _, b, amount, limit in entries])
            replies = unpack_reserve(await self._reserve(keys=keys, args=args))
            for (i, buyer, _, limit), (before, grant) in zip(entries, replies, strict=True):
                exposure.setdefault(buyer, before)
                if i >= 0 and limit is not None and limit != -1:
                    grants[i][buyer] = grant
        return exposure, grants

    async def _decide_many(self, requests: list[WireRequest]) -> list[RiskReply]:
        self._start_background()
        self.counters.batches += 1
        queries = [q for r in requests for q in r.queries]
        ids: set[str] = set()
        for q in queries:
            ids.add(q.buyer_id)
            ids.add(q.seller_id)
        for r in requests:
            ids.update(r.credit_requests)
        await self._refresh_parties(ids)
        parties = self.parties
        # The ML tier runs in a worker thread while the credit reservation and the rules proceed.
        ml_task = asyncio.ensure_future(self._ml_scores(queries)) if self.ml is not None and queries else None
        late_task = asyncio.ensure_future(self._late_settlements({q.buyer_id for q in queries}))
        exposure, grants = await self._grants(requests, queries)
        late = await late_task
        evaluate = self.rules.evaluate
        rule_results = [
            evaluate(
                q,
                parties.get(q.buyer_id),
                parties.get(q.seller_id),
                exposure.get(q.buyer_id, 0),
                late.get(q.buyer_id, ()),
            )
            for q in queries
        ]
        ml_scores = await ml_task if ml_task is not None else None
        ml_expected = self.ml is not None and ml_scores is None
        fusion = self.fusion
        decisions: list[WireDecision] = []
        tally = self.tally
        for k, q in enumerate(queries):
            ml = ml_scores[k] if ml_scores is not None else None
            after = exposure.get(q.buyer_id, 0) + q.quantity_kg * q.price
            d = fuse(rule_results[k], ml, fusion, ml_expected=ml_expected, exposure_after=after)
            tally.add(d)
            if ml is not None:
                tally.add_ml(ml)
            decisions.append(encode_decision(d))
        self.counters.decisions += len(queries)
        if ml_scores is not None:
            self.counters.ml_decisions += len(queries)
        results: list[RiskReply] = []
        pos = 0
        for i, r in enumerate(requests):
            n = len(r.queries)
            results.append((decisions[pos : pos + n], grants[i]))
            pos += n
        return results

    async def stats(self) -> dict[str, Any]:
        """Counters, breaker state, cache sizes and model versions of this replica (JSON-able)."""
        c, m, ml = self.counters, self.ml_counters, self.ml
        return {
            "replica": f"{os.uname().nodename}:{os.getpid()}",
            "requests": c.requests,
            "batches": c.batches,
            "decisions": c.decisions,
            "ml_decisions": c.ml_decisions,
            "ml_ok": m.ok,
            "ml_failures": m.failures,
            "ml_timeouts": m.timeouts,
            "ml_skipped_open": m.skipped_open,
            "breaker_state": str(self.breaker.state),
            "breaker_opened": self.breaker.opened_count,
            "ml_available": ml is not None,
            "model_versions": dict(ml.versions) if ml else {},
            "party_cache": len(self.parties),
            "party_cache_flushes": c.party_cache_flushes,
            "party_loads": c.party_loads,
            "party_score_cache": ml.cached_parties if ml else 0,
            "party_score_hits": ml.cache_hits if ml else 0,
            "history_pairs": len(self.rules.history),
            "config_version": self.config_version,
            "prior_scored": ml.prior_scored if ml else 0,
            "anomaly_rows": ml.anomaly_rows if ml else 0,
            "anomaly_distinct_rows": ml.anomaly_distinct_rows if ml else 0,
            "decided": self.tally.as_dict(),
        }

    async def check_health(self) -> None:
        """Serve health check: the replica answers while Redis answers."""
        await self.redis.ping()
