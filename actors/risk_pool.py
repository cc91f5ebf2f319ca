"""The risk pool: rules + ML tiers served by a Ray Serve deployment, and the client shards call.

Topology (ARCHITECTURE.md, "Runtime topology"): each shard actor calls :class:`RiskPoolClient`
``decide(request)`` once per command batch; the client sends the whole :class:`RiskRequest` as one
Serve request; ``@serve.batch`` merges concurrent requests from several shards into one evaluation
on a replica. Per evaluation a replica:

1. refreshes its party cache (one Redis ``GET`` of ``<prefix>parties:version``; a change empties the
   cache; misses are read from PostgreSQL in one query);
2. reserves credit for every buyer atomically in Redis (:mod:`persistence.exposure`), which also returns
   each buyer's exposure before the batch;
3. runs the rules tier (:mod:`actors.core.risk.rules`) on every pair;
4. runs the ML tier behind a circuit breaker (:mod:`actors.core.risk.breaker`) with a timeout:
   buyer-level scores (payment-default probability, suggested credit limit) are cached per
   (party, party version, model versions); order anomaly scores are computed per pair, vectorised;
5. fuses both (:mod:`actors.core.risk.fusion`) into one decision per pair.

Replicas are stateless (caches only): any replica can answer any request. Overload is refused, not
queued forever (``max_ongoing_requests`` / ``max_queued_requests``); the client then fails closed
(no pair is decided, so nothing is allocated in that batch, and no credit is granted).

Models: ``reconfigure(user_config)`` loads them (``ml.serving.load_models(tracking_uri, alias)``,
or a cloudpickled models object at ``models_pickle`` for offline use), so a promotion is a
``user_config`` change that Serve applies to live replicas without a restart
(:func:`apply_model_config`). Without models the ML tier reports itself unavailable and decisions
are rules-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from ray import serve

from actors.core.ids import EVENTS_CHANNEL_PATTERN
from actors.core.risk.breaker import CircuitBreaker
from actors.core.risk.fusion import FusionConfig, MlScores, fuse
from actors.core.risk.market import MarketReference
from actors.core.risk.rules import AllocationHistory, Party, RulesConfig, RulesEngine
from actors.core.risk.types import RiskDecision, RiskRequest, RiskVerdicts
from persistence.agmarknet import default_agmarknet_paths, load_price_points
from persistence.exposure import (
    ADJUST_LUA,
    DEFAULT_PREFIX,
    RESERVE_LUA,
    ExposureStore,
    pack_reserve,
    unpack_reserve,
)

log = logging.getLogger(__name__)

APP_NAME = "risk"
DEPLOYMENT_NAME = "RiskPool"
MAX_ONGOING_REQUESTS = 32
MAX_QUEUED_REQUESTS = 128
BATCH_MAX_REQUESTS = 16
BATCH_WAIT_S = 0.002
BATCH_CONCURRENCY = 2  # a second batch runs its rules while the first waits on Redis or the ML thread
PARTY_SCORE_TTL_S = 300.0
EVENTS_PATTERN = EVENTS_CHANNEL_PATTERN
MODEL_CONFIG_KEY = "risk:model_config"  # JSON user_config of the promoted models (under the prefix)
MODEL_CONFIG_VERSION_KEY = "risk:model_config_version"  # bumped on every promotion
ANOMALY_OFFSET = 0.5  # IsolationForest score of an unremarkable point

SETTLEMENTS_SQL = (
    "SELECT party_id, invoiced_ts, due_ts, amount, paid_ts, paid_amount FROM ml_settlements"
    " WHERE party_id = ANY($1::text[])"
)
HISTORY_SQL = (
    "SELECT seller_id, buyer_id, shard_id, price, quantity_kg, ts FROM allocations"
    " WHERE ts >= (SELECT COALESCE(MAX(ts), 0) FROM allocations) - $1 ORDER BY ts LIMIT $2"
)
PARTIES_SQL = (
    "SELECT party_id, name, role, kyc_status, sanctioned, country, pan, gstin, mobile, credit_limit,"
    " linked_parties, version FROM parties WHERE party_id = ANY($1::text[])"
)


# ------------------------------------------------------------------------------- wire format


class Pair(NamedTuple):
    """A candidate pair on the wire: the fields of :class:`RiskQuery` as a plain tuple (pickling a
    list of tuples costs about 1/30 of pickling the dataclasses)."""

    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    commodity: str
    region: str
    quantity_kg: int
    price: int
    ts: int


class WireRequest(NamedTuple):
    """A :class:`RiskRequest` as sent to the pool: pairs as tuples and credit requests (paise)."""

    queries: list[Pair]
    credit_requests: dict[str, int]


def to_wire(request: RiskRequest) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """Compact, cheaply pickled form of a request."""
    return (
        [
            (
                q.buy_order_id,
                q.sell_order_id,
                q.buyer_id,
                q.seller_id,
                q.commodity,
                q.region,
                q.quantity_kg,
                q.price,
                q.ts,
            )
            for q in request.queries
        ],
        dict(request.credit_requests),
    )


def from_wire(obj: Any) -> WireRequest:
    """A :class:`WireRequest` from :func:`to_wire` output (or a :class:`RiskRequest`)."""
    if isinstance(obj, RiskRequest):
        obj = to_wire(obj)
    pairs, credit = obj
    make = Pair._make
    return WireRequest([make(t) for t in pairs], dict(credit))


# ------------------------------------------------------------------------------------ ML tier


class MlTier:
    """ML scoring over a models object with the ``ml.serving.RiskModels`` interface:
    ``versions: dict[str, str]``, ``payment_default_proba(X) -> (n,)`` in [0, 1],
    ``anomaly_score(X) -> (n,)`` (IsolationForest ``s(x)`` in [0, 1], higher = more anomalous;
    rescaled here so 0.5 -> 0 and 1 -> 1) and
    ``suggested_credit_limit(X) -> (n,)`` in rupees (converted to paise here).

    Buyer-level scores are cached per (party, party version) for :data:`PARTY_SCORE_TTL_S`; a new
    models object (new versions) starts with an empty cache.
    """

    def __init__(self, models: Any, market: MarketReference) -> None:
        self.models = models
        self.market = market
        self.versions: dict[str, str] = {
            str(k): str(v) for k, v in dict(getattr(models, "versions", {})).items()
        }
        self._party_cache: dict[tuple[str, int], tuple[float, int | None, float]] = {}
        self.fast_anomaly = compile_anomaly_model(models)
        self.typical_qty: dict[str, deque[int]] = {}
        self.cache_hits = 0
        self.cache_misses = 0

    def buyers_to_score(self, buyers: Sequence[str], parties: Mapping[str, Party | None]) -> list[str]:
        """Buyers whose scores are not cached (or expired)."""
        now = time.monotonic()
        out = []
        for b in buyers:
            p = parties.get(b)
            hit = self._party_cache.get((b, p.version if p else 0))
            if hit is None or hit[2] < now:
                out.append(b)
        return out

    def observe_quantity(self, buyer: str, quantity_kg: int) -> None:
        """Feed an allocated quantity (kg): the buyer's typical order size for the anomaly model."""
        dq = self.typical_qty.get(buyer)
        if dq is None:
            dq = self.typical_qty[buyer] = deque(maxlen=50)
        dq.append(quantity_kg)

    def score(
        self,
        queries: Sequence[Any],
        parties: Mapping[str, Party | None],
        payment_features: Any,
    ) -> list[MlScores]:
        """Scores per pair (blocking, vectorised; run in a worker thread).

        ``payment_features``: DataFrame indexed by party id with the payment-default features of
        the buyers returned by :meth:`buyers_to_score` (or None when there are none).
        """
        import numpy as np

        from ml.features import build_order_features

        now = time.monotonic()
        if payment_features is not None and len(payment_features):
            pd_ = np.asarray(self.models.payment_default_proba(payment_features), dtype="float64").reshape(-1)
            pd_ = np.nan_to_num(pd_, nan=0.0)  # a model without a champion scores NaN: no signal
            try:
                lim = np.asarray(
                    self.models.suggested_credit_limit(payment_features), dtype="float64"
                ).reshape(-1)
            except Exception:  # the regressor is optional
                lim = np.full(len(pd_), np.nan)
            for i, b in enumerate(payment_features.index):
                p = parties.get(b)
                limit = None if not math.isfinite(lim[i]) else max(0, int(lim[i] * 100))
                self._party_cache[(b, p.version if p else 0)] = (
                    float(min(1.0, max(0.0, pd_[i]))),
                    limit,
                    now + PARTY_SCORE_TTL_S,
                )
                self.cache_misses += 1
        n = len(queries)
        prices = np.empty(n)
        refs = np.full(n, np.nan)
        qtys = np.empty(n)
        typical = np.full(n, np.nan)
        ts = np.empty(n)
        for i, q in enumerate(queries):
            prices[i] = q.price
            qtys[i] = q.quantity_kg
            ts[i] = q.ts
            st = self.market.stats(q.commodity, q.region)
            if st is not None:
                refs[i] = st.median
            dq = self.typical_qty.get(q.buyer_id)
            if dq:
                typical[i] = sorted(dq)[len(dq) // 2]
        X = build_order_features(prices, refs, qtys, typical, None, ts)
        if self.fast_anomaly is not None and not np.isnan(X.to_numpy()).any():
            anomaly = self.fast_anomaly.score(X.to_numpy(dtype="float64"))
        else:
            anomaly = np.asarray(self.models.anomaly_score(X), dtype="float64").reshape(-1)
        # IsolationForest s(x) (Liu, Ting & Zhou 2008): ~0.5 or below = nothing distinctive, near 1 =
        # anomalous; rescaled so that 0.5 -> 0 and 1 -> 1 before fusion.
        anomaly = np.clip(np.nan_to_num(anomaly, nan=0.0), 0.0, 1.0)
        anomaly = np.clip((anomaly - ANOMALY_OFFSET) / (1.0 - ANOMALY_OFFSET), 0.0, 1.0)
        out: list[MlScores] = []
        for i, q in enumerate(queries):
            p = parties.get(q.buyer_id)
            hit = self._party_cache.get((q.buyer_id, p.version if p else 0))
            if hit is None:
                pd_b, lim_b = 0.0, None
            else:
                pd_b, lim_b = hit[0], hit[1]
                self.cache_hits += 1
            out.append(MlScores(pd_b, float(anomaly[i]), lim_b, self.versions))
        return out


class CompiledIsolationForest:
    """Vectorised scoring of a fitted scikit-learn ``IsolationForest``: the same ``s(x)`` as
    ``-estimator.score_samples(X)`` (Liu, Ting & Zhou 2008: ``s = 2^(-E[h(x)] / c(psi))``), computed
    for all rows and trees at once with NumPy instead of one ``tree.apply`` call per tree.

    All trees are packed into flat node arrays (leaves point to themselves); a (rows, trees) array of
    node ids descends one level per step for at most the deepest tree's depth. Inputs are rounded to
    float32 first, as scikit-learn does, so split decisions match exactly.
    """

    def __init__(self, estimator: Any) -> None:
        import numpy as np
        from sklearn.ensemble._iforest import _average_path_length

        trees = estimator.estimators_
        n_features = int(estimator.n_features_in_)
        subsample = int(estimator._max_features) != n_features
        lefts, rights, feats, thrs, plen, roots = [], [], [], [], [], []
        offset = 0
        depth = 0
        for t, (tree, features) in enumerate(zip(trees, estimator.estimators_features_, strict=True)):
            tr = tree.tree_
            n = tr.node_count
            left = tr.children_left.astype(np.int64)
            right = tr.children_right.astype(np.int64)
            leaf = left == -1
            idx = np.arange(n, dtype=np.int64)
            left = np.where(leaf, idx, left) + offset
            right = np.where(leaf, idx, right) + offset
            f = tr.feature.astype(np.int64)
            f = np.where(leaf, 0, f)
            if subsample:
                f = np.asarray(features, dtype=np.int64)[f]
            lefts.append(left)
            rights.append(right)
            feats.append(f)
            thrs.append(np.where(leaf, np.inf, tr.threshold))
            plen.append(
                estimator._decision_path_lengths[t] + estimator._average_path_length_per_tree[t] - 1.0
            )
            roots.append(offset)
            offset += n
            depth = max(depth, int(tr.max_depth))
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(feats)
        self.threshold = np.concatenate(thrs)
        self.path = np.concatenate(plen)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth
        self.n_features = n_features
        self.denominator = len(trees) * float(_average_path_length([estimator._max_samples])[0])

    def score(self, X: Any) -> Any:
        """``s(x)`` in (0, 1] for an (n, d) matrix, higher = more anomalous."""
        import numpy as np

        x = np.asarray(X, dtype=np.float32).astype(np.float64)
        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.shape[0])).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        depths = self.path[node].sum(axis=1)
        if self.denominator == 0:
            return np.ones(n)
        return np.power(2.0, -depths / self.denominator)


def compile_anomaly_model(models: Any) -> CompiledIsolationForest | None:
    """A compiled scorer for the models' ``order_anomaly`` estimator when it is a plain
    scikit-learn IsolationForest without a shadow challenger; None otherwise (use the model)."""
    est = getattr(models, "estimators", {}).get("order_anomaly") if hasattr(models, "estimators") else None
    if est is None or type(est).__name__ != "IsolationForest":
        return None
    if getattr(models, "challengers", {}).get("order_anomaly") is not None:
        return None
    try:
        return CompiledIsolationForest(est)
    except Exception as exc:  # an unexpected scikit-learn layout: fall back to the model
        log.info("risk pool: IsolationForest not compiled (%s)", exc)
        return None


def load_models_from_config(cfg: Mapping[str, Any]) -> Any:
    """The models object a ``user_config`` names: ``models_pickle`` (a cloudpickle file holding a
    models object, or a dict ``{"versions", "estimators"}`` made into ``ml.serving.RiskModels``) or
    ``tracking_uri`` + ``alias`` (``ml.serving.load_models``). None when nothing is registered."""
    path = cfg.get("models_pickle")
    if path:
        import cloudpickle

        with open(path, "rb") as fh:
            obj = cloudpickle.load(fh)
        if isinstance(obj, dict) and "estimators" in obj:  # {"versions", "estimators"}: fitted offline
            from ml.serving import RiskModels

            return RiskModels(dict(obj["versions"]), dict(obj["estimators"]))
        return obj
    uri = cfg.get("tracking_uri")
    if uri:
        try:
            from ml.serving import load_models
        except ImportError:
            log.warning("ml.serving is not available; ML tier off")
            return None
        return load_models(uri, alias=cfg.get("alias", "champion"))
    return None


# ------------------------------------------------------------------------- replica (Serve)


@dataclass
class PoolCounters:
    requests: int = 0
    batches: int = 0
    decisions: int = 0
    ml_decisions: int = 0
    ml_ok: int = 0
    ml_failures: int = 0
    ml_timeouts: int = 0
    ml_skipped_open: int = 0
    party_cache_flushes: int = 0
    party_loads: int = 0


class RiskPoolReplica:
    """One risk replica (the Serve deployment class; see :func:`build_risk_app`).

    Args:
        dsn: PostgreSQL DSN (parties, allocation history, settlements).
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
        self.breaker = CircuitBreaker()
        self.ml: MlTier | None = None
        self.ml_timeout_s = 0.05
        self.config_version: str | None = None
        self.dsn = dsn
        self.prefix = prefix
        self.redis = aredis.Redis.from_url(redis_url)
        self._reserve = self.redis.register_script(RESERVE_LUA)
        self._adjust = self.redis.register_script(ADJUST_LUA)
        self._db: Any = None
        self._db_lock = asyncio.Lock()
        self.parties: dict[str, Party | None] = {}
        self.model_config_seen: Any = None
        self._reload_lock = asyncio.Lock()
        self.parties_version: Any = None
        self.counters = PoolCounters()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="risk-ml")
        self._load_history = load_history
        self._bg: asyncio.Task[None] | None = None
        self._gauge: Any = None
        try:
            from ray.util.metrics import Gauge

            self._gauge = Gauge(
                "tradedesk_risk_ml_breaker_state",
                description="ML-tier circuit breaker: 0 closed, 1 half-open, 2 open",
            )
        except Exception:  # metrics are best-effort outside a Ray worker
            self._gauge = None

    # -- configuration --------------------------------------------------------------------------

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply a ``user_config``: model source (``models_pickle`` or ``tracking_uri``/``alias``),
        ``ml_timeout_ms``, fusion (``rules_weight``, ``ml_weight``, ``warn_threshold``,
        ``block_threshold``), breaker (``breaker_failures``, ``breaker_window_s``,
        ``breaker_cooldown_s``). Models load in a thread; a load failure leaves the ML tier off."""
        cfg = dict(user_config or {})
        self.ml_timeout_s = float(cfg.get("ml_timeout_ms", 50.0)) / 1000.0
        fusion_keys = ("rules_weight", "ml_weight", "warn_threshold", "block_threshold", "penalty")
        self.fusion = FusionConfig(**{k: float(cfg[k]) for k in fusion_keys if k in cfg})
        self.breaker = CircuitBreaker(
            failure_threshold=int(cfg.get("breaker_failures", 5)),
            window_s=float(cfg.get("breaker_window_s", 10.0)),
            cooldown_s=float(cfg.get("breaker_cooldown_s", 5.0)),
        )
        try:
            models = await asyncio.get_running_loop().run_in_executor(
                self._executor, load_models_from_config, cfg
            )
        except Exception as exc:
            log.warning("risk pool: model load failed, ML tier off: %s", exc)
            models = None
        old = self.ml
        self.ml = MlTier(models, self.market) if models is not None else None
        if self.ml is not None and old is not None:
            self.ml.typical_qty = old.typical_qty
        self.config_version = str(cfg.get("version", "")) or None
        if "config_seq" in cfg:
            self.model_config_seen = max(int(cfg["config_seq"]), int(self.model_config_seen or 0))
        self._set_gauge()

    async def _reload_model_config(self, model_version: Any) -> None:
        """Apply the model config promoted through Redis (:func:`apply_model_config`): the live
        replica reloads its models without a restart. One reload at a time."""
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

    def _set_gauge(self) -> None:
        if self._gauge is not None:
            with contextlib.suppress(Exception):
                self._gauge.set(self.breaker.state_value)

    # -- lazy resources ---------------------------------------------------------------------------

    async def _database(self) -> Any:
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
                    rows = await db.fetch(HISTORY_SQL, window_ms, 500_000)
                except Exception as exc:
                    rows = []
                    log.info("risk pool: no allocation history yet (%s)", type(exc).__name__)
                for r in rows:
                    self._observe(
                        r["seller_id"], r["buyer_id"], r["shard_id"], r["price"], r["quantity_kg"], r["ts"]
                    )
            pubsub = self.redis.pubsub()
            await pubsub.psubscribe(EVENTS_PATTERN)
            async for msg in pubsub.listen():
                if msg.get("type") != "pmessage":
                    continue
                try:
                    data = json.loads(msg["data"])
                    events = data if isinstance(data, list) else [data]
                    for ev in events:
                        if ev.get("type") == "ALLOCATED":
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
        found: dict[str, Party] = {}
        if db is not None:
            from persistence.parties import party_from_row

            rows = await db.fetch(PARTIES_SQL, missing)
            found = {r["party_id"]: party_from_row(r) for r in rows}
        self.counters.party_loads += len(missing)
        for pid in missing:
            self.parties[pid] = found.get(pid)

    async def _payment_features(self, buyers: list[str], as_of_ts: int) -> Any:
        if not buyers:
            return None
        rows: list[Any] = []
        db = await self._database()
        if db is not None:
            try:
                rows = [dict(r) for r in await db.fetch(SETTLEMENTS_SQL, buyers)]
            except Exception as exc:
                if type(exc).__name__ != "UndefinedTableError":
                    raise
        from ml.features import party_payment_features

        limits: dict[str, int] = {}
        for b in buyers:
            p = self.parties.get(b)
            limits[b] = p.credit_limit if p is not None and p.credit_limit is not None else 0
        feats = party_payment_features(rows, limits, as_of_ts)
        return feats.loc[buyers]

    async def _ml_scores(self, queries: list[Pair]) -> list[MlScores] | None:
        ml = self.ml
        if ml is None or not queries:
            return None
        if not self.breaker.allow():
            self.counters.ml_skipped_open += 1
            return None
        buyers = ml.buyers_to_score(sorted({q.buyer_id for q in queries}), self.parties)
        as_of = max(q.ts for q in queries)

        async def run() -> list[MlScores]:
            feats = await self._payment_features(buyers, as_of)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, ml.score, queries, self.parties, feats)

        try:
            scores = await asyncio.wait_for(run(), timeout=self.ml_timeout_s)
        except TimeoutError:
            self.counters.ml_timeouts += 1
            self.breaker.record_failure()
            return None
        except Exception as exc:
            self.counters.ml_failures += 1
            self.breaker.record_failure()
            log.debug("risk pool: ML tier failed: %s", exc)
            return None
        finally:
            self._set_gauge()
        self.breaker.record_success()
        self.counters.ml_ok += 1
        self._set_gauge()
        return scores

    # -- the request path ------------------------------------------------------------------------

    async def decide(self, request: Any) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
        """Decide one shard batch (:func:`to_wire` form or a :class:`RiskRequest`). Returns
        (decisions as tuples in query order, credit grants in paise)."""
        self.counters.requests += 1
        out: tuple[list[tuple[Any, ...]], dict[str, int]] = await self._decide_batch(from_wire(request))
        return out

    @serve.batch(
        max_batch_size=BATCH_MAX_REQUESTS,
        batch_wait_timeout_s=BATCH_WAIT_S,
        max_concurrent_batches=BATCH_CONCURRENCY,
    )
    async def _decide_batch(
        self, requests: list[WireRequest]
    ) -> list[tuple[list[tuple[Any, ...]], dict[str, int]]]:
        return await self._decide_many(requests)

    async def _decide_many(
        self, requests: list[WireRequest]
    ) -> list[tuple[list[tuple[Any, ...]], dict[str, int]]]:
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

        # One atomic Redis call: per request and buyer, exposure before and the grant.
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

        rules = self.rules
        evaluate = rules.evaluate
        rule_results = [
            evaluate(q, parties.get(q.buyer_id), parties.get(q.seller_id), exposure.get(q.buyer_id, 0))
            for q in queries
        ]
        ml_scores = await ml_task if ml_task is not None else None
        ml_expected = self.ml is not None and ml_scores is None
        fusion = self.fusion
        decisions: list[tuple[Any, ...]] = []
        for k, q in enumerate(queries):
            ml = ml_scores[k] if ml_scores is not None else None
            after = exposure.get(q.buyer_id, 0) + q.quantity_kg * q.price
            decisions.append(
                _encode(fuse(rule_results[k], ml, fusion, ml_expected=ml_expected, exposure_after=after))
            )
        self.counters.decisions += len(queries)
        if ml_scores is not None:
            self.counters.ml_decisions += len(queries)
        results = []
        pos = 0
        for i, r in enumerate(requests):
            n = len(r.queries)
            results.append((decisions[pos : pos + n], grants[i]))
            pos += n
        return results

    async def stats(self) -> dict[str, Any]:
        """Counters, breaker state, cache sizes and model versions of this replica."""
        import os

        c = self.counters
        return {
            "replica": f"{os.uname().nodename}:{os.getpid()}",
            "requests": c.requests,
            "batches": c.batches,
            "decisions": c.decisions,
            "ml_decisions": c.ml_decisions,
            "ml_ok": c.ml_ok,
            "ml_failures": c.ml_failures,
            "ml_timeouts": c.ml_timeouts,
            "ml_skipped_open": c.ml_skipped_open,
            "breaker_state": str(self.breaker.state),
            "breaker_opened": self.breaker.opened_count,
            "ml_available": self.ml is not None,
            "model_versions": dict(self.ml.versions) if self.ml else {},
            "party_cache": len(self.parties),
            "party_cache_flushes": c.party_cache_flushes,
            "party_loads": c.party_loads,
            "party_score_cache": len(self.ml._party_cache) if self.ml else 0,
            "party_score_hits": self.ml.cache_hits if self.ml else 0,
            "history_pairs": len(self.rules.history),
            "config_version": self.config_version,
        }

    async def check_health(self) -> None:
        """Serve health check: the replica answers while Redis answers."""
        await self.redis.ping()


def _encode(d: RiskDecision) -> tuple[Any, ...]:
    return (str(d.outcome), d.reasons, d.penalty, d.trust, d.score, d.tiers, d.model_versions)


def _decode(t: Sequence[Any]) -> RiskDecision:
    from actors.core.risk.types import Outcome

    return RiskDecision(Outcome(t[0]), tuple(t[1]), t[2], t[3], t[4], tuple(t[5]), dict(t[6]))


def build_risk_app(
    dsn: str | None,
    redis_url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    min_replicas: int = 1,
    max_replicas: int = 2,
    user_config: dict[str, Any] | None = None,
    rules_config: dict[str, Any] | None = None,
    num_cpus: float = 0.5,
    max_ongoing_requests: int = MAX_ONGOING_REQUESTS,
    max_queued_requests: int = MAX_QUEUED_REQUESTS,
    load_history: bool = True,
) -> Any:
    """The Serve application of the risk pool (not yet running; see :func:`deploy_risk_pool`).

    ``autoscaling_config`` scales between ``min_replicas`` and ``max_replicas`` on ongoing requests
    (target 8 per replica); ``max_ongoing_requests`` caps a replica's concurrent requests and
    ``max_queued_requests`` the handle-side queue, beyond which requests are refused
    (``BackPressureError``) instead of queued forever.
    """
    dep = serve.deployment(
        name=DEPLOYMENT_NAME,
        ray_actor_options={"num_cpus": num_cpus},
        autoscaling_config={
            "min_replicas": min_replicas,
            "max_replicas": max(min_replicas, max_replicas),
            "target_ongoing_requests": 8,
            "upscale_delay_s": 5.0,
            "downscale_delay_s": 60.0,
        },
        max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_queued_requests,
        user_config=dict(user_config or {}),
        health_check_period_s=10.0,
    )(RiskPoolReplica)
    return dep.bind(dsn, redis_url, prefix, rules_config, 500, load_history)


# -------------------------------------------------------------------------------------- client


class PoolUnavailable(RuntimeError):
    """The risk pool refused or failed a request (overload, timeout, no replica)."""


class RiskPoolClient:
    """The :class:`~actors.core.risk.types.RiskDecider` a shard actor uses: one Serve call per batch.

    Picklable (handles and Redis clients are created lazily in the process that uses it).
    ``decide`` fails closed: if the pool does not answer within ``timeout_s`` or refuses the request,
    no pair gets a decision and every credit grant is 0, so the batch allocates nothing (orders
    still rest on the book). ``settle`` returns unused credit directly in Redis (no Ray hop).
    """

    needs_queries = True

    def __init__(
        self,
        redis_url: str,
        prefix: str = DEFAULT_PREFIX,
        app_name: str = APP_NAME,
        deployment_name: str = DEPLOYMENT_NAME,
        timeout_s: float = 5.0,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.app_name = app_name
        self.deployment_name = deployment_name
        self.timeout_s = timeout_s
        self._handle: Any = None
        self._store: ExposureStore | None = None
        self.failures = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_store"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def handle(self) -> Any:
        if self._handle is None:
            self._handle = serve.get_deployment_handle(self.deployment_name, app_name=self.app_name)
        return self._handle

    @property
    def store(self) -> ExposureStore:
        if self._store is None:
            self._store = ExposureStore.from_url(self.redis_url, self.prefix)
        return self._store

    def decide_async(self, request: RiskRequest) -> Any:
        """Send a request; returns the Serve response (``.result(timeout_s=...)``)."""
        return self.handle.decide.remote(to_wire(request))

    def verdicts(
        self, request: RiskRequest, reply: tuple[list[tuple[Any, ...]], dict[str, int]]
    ) -> RiskVerdicts:
        """Turn a pool reply into :class:`RiskVerdicts` for ``request``."""
        encoded, grants = reply
        decisions = {q.key: _decode(t) for q, t in zip(request.queries, encoded, strict=True)}
        return RiskVerdicts(decisions=decisions, credit_grants=dict(grants))

    def decide(self, request: RiskRequest) -> RiskVerdicts:
        """Vet a shard batch through the pool; fails closed (see the class docstring)."""
        if not request.queries and not request.credit_requests:
            return RiskVerdicts()
        try:
            reply = self.decide_async(request).result(timeout_s=self.timeout_s)
        except Exception as exc:
            self.failures += 1
            log.warning("risk pool unavailable, failing closed: %s", type(exc).__name__)
            return RiskVerdicts(credit_grants={b: 0 for b in request.credit_requests})
        return self.verdicts(request, reply)

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
        """Give back credit granted but not used by a batch (paise)."""
        if grants or used:
            self.store.settle(grants, used)

    def release(self, amounts: Mapping[str, int]) -> None:
        """Give back exposure (paise) of released reservations or settled trades."""
        if amounts:
            self.store.release(amounts)

    def stats(self) -> dict[str, Any]:
        """One replica's stats (whichever answers)."""
        result: dict[str, Any] = self.handle.stats.remote().result(timeout_s=self.timeout_s)
        return result

    def all_stats(self, attempts: int = 32) -> list[dict[str, Any]]:
        """Stats of every replica reached in ``attempts`` calls (requests are spread over replicas)."""
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(attempts):
            st = self.stats()
            seen[str(st.get("replica"))] = st
        return list(seen.values())


# ---------------------------------------------------------------------------------- deployment


def deploy_risk_pool(
    settings: Any,
    dsn: str | None,
    redis_url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    user_config: dict[str, Any] | None = None,
    rules_config: dict[str, Any] | None = None,
    num_cpus: float = 0.5,
    rebuild: bool = True,
    app_name: str = APP_NAME,
    load_history: bool = True,
) -> RiskPoolClient:
    """Start (or update) the risk pool on the connected Ray cluster and return a client.

    Rebuilds the Redis exposure counters from PostgreSQL first (``rebuild``; do it only when no
    shard is allocating). Replica bounds, ML timeout and fusion weights come from ``settings``
    (``risk_min_replicas``, ``risk_max_replicas``, ``risk_ml_timeout_ms``, ``risk_rules_weight``,
    ``risk_ml_weight``, ``mlflow_tracking_uri``); ``user_config`` overrides the model part.
    """
    if rebuild and dsn:
        from persistence.exposure import rebuild_exposure

        store = ExposureStore.from_url(redis_url, prefix)
        asyncio.run(rebuild_exposure(dsn, store))
    cfg: dict[str, Any] = {
        "ml_timeout_ms": float(getattr(settings, "risk_ml_timeout_ms", 50.0)),
        "rules_weight": float(getattr(settings, "risk_rules_weight", 0.7)),
        "ml_weight": float(getattr(settings, "risk_ml_weight", 0.3)),
    }
    uri = getattr(settings, "mlflow_tracking_uri", None)
    if uri:
        cfg["tracking_uri"] = uri
    cfg.update(user_config or {})
    # This deploy's config becomes the current one; replicas note its version so they do not load
    # the same models twice.
    cfg["config_seq"] = publish_model_config(redis_url, cfg, prefix)
    from ray.serve.config import ProxyLocation

    serve.start(proxy_location=ProxyLocation.Disabled)
    app = build_risk_app(
        dsn,
        redis_url,
        prefix=prefix,
        min_replicas=int(getattr(settings, "risk_min_replicas", 1)),
        max_replicas=int(getattr(settings, "risk_max_replicas", 2)),
        user_config=cfg,
        rules_config=rules_config,
        num_cpus=num_cpus,
        load_history=load_history,
    )
    serve.run(app, name=app_name, route_prefix=None)
    return RiskPoolClient(redis_url, prefix, app_name=app_name)


def publish_model_config(redis_url: str, user_config: dict[str, Any], prefix: str = DEFAULT_PREFIX) -> int:
    """Store ``user_config`` as the pool's model config in Redis and bump its version; every
    replica applies it (``reconfigure``) before its next batch. Returns the new version."""
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        pipe = r.pipeline(transaction=True)
        pipe.set(f"{prefix}{MODEL_CONFIG_KEY}", json.dumps(user_config, sort_keys=True))
        pipe.incr(f"{prefix}{MODEL_CONFIG_VERSION_KEY}")
        return int(pipe.execute()[1])
    finally:
        r.close()


def apply_model_config(
    settings: Any,
    dsn: str | None,
    redis_url: str,
    user_config: dict[str, Any],
    *,
    prefix: str = DEFAULT_PREFIX,
    app_name: str = APP_NAME,
    **_: Any,
) -> RiskPoolClient:
    """Push a new model configuration (promotion or rollback) to the running pool without
    restarting it: the merged config (settings defaults, then ``user_config``: ``tracking_uri`` /
    ``alias`` or ``models_pickle``, ``ml_timeout_ms``, fusion and breaker fields, ``version``) is
    published in Redis and the live replicas ``reconfigure`` before their next batch."""
    cfg: dict[str, Any] = {
        "ml_timeout_ms": float(getattr(settings, "risk_ml_timeout_ms", 50.0)),
        "rules_weight": float(getattr(settings, "risk_rules_weight", 0.7)),
        "ml_weight": float(getattr(settings, "risk_ml_weight", 0.3)),
    }
    uri = getattr(settings, "mlflow_tracking_uri", None)
    if uri:
        cfg["tracking_uri"] = uri
    cfg.update(user_config)
    publish_model_config(redis_url, cfg, prefix)
    return RiskPoolClient(redis_url, prefix, app_name=app_name)
