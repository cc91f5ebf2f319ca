"""The ML tier of the risk pool: scoring with the promoted models, behind a circuit breaker with a timeout.

:class:`MlTier` scores a batch of pairs with a models object (``ml.serving.RiskModels`` or anything
with the :class:`ScoringModels` interface): buyer-level scores (payment-default probability,
suggested credit limit) are cached per (party, party version); order anomaly scores are computed per
pair, vectorised (:class:`~actors.risk_pool.iforest.CompiledIsolationForest` for a plain
IsolationForest). :class:`MlGate` runs
it behind the :class:`~actors.core.risk.breaker.CircuitBreaker` with a timeout: a failure, timeout or
open circuit gives None, and the decision is rules-only. :func:`load_models_from_config` builds the
models object a Serve ``user_config`` names.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from actors.core.risk.breaker import CircuitBreaker
from actors.core.risk.fusion import DEFAULT_ML_TIMEOUT_MS, DEFAULT_ML_TIMEOUT_PER_PAIR_MS, MlScores
from actors.core.risk.market import MarketReference
from actors.core.risk.rules import Party
from actors.risk_pool.iforest import compile_anomaly_model
from actors.risk_pool.wire import Pair

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PARTY_SCORE_TTL_S = 300.0
WARM_UP_PARTY = "__warm_up__"  # the synthetic buyer of :meth:`MlTier.warm_up`
ANOMALY_OFFSET = 0.5  # IsolationForest score of an unremarkable point


class ScoringModels(Protocol):
    """What the ML tier calls on a models object (``ml.serving.RiskModels``): ``versions`` model ->
    registry version; each scorer takes an (n, d) feature frame and returns (n,) floats:
    default probability in [0, 1], IsolationForest ``s(x)`` in [0, 1], credit limit in rupees."""

    versions: dict[str, str]

    def payment_default_proba(self, X: Any) -> Any: ...

    def anomaly_score(self, X: Any) -> Any: ...

    def suggested_credit_limit(self, X: Any) -> Any: ...


class MlTier:
    """ML scoring over a models object with the ``ml.serving.RiskModels`` interface:
    ``versions: dict[str, str]``, ``payment_default_proba(X) -> (n,)`` in [0, 1],
    ``anomaly_score(X) -> (n,)`` (IsolationForest ``s(x)`` in [0, 1], higher = more anomalous;
    rescaled here so 0.5 -> 0 and 1 -> 1) and
    ``suggested_credit_limit(X) -> (n,)`` in rupees (converted to paise here).

    Buyer-level scores are cached per (party, party version) for :data:`PARTY_SCORE_TTL_S`; a new
    models object (new versions) starts with an empty cache.
    """

    def __init__(self, models: ScoringModels, market: MarketReference) -> None:
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
        self.prior_scored = 0  # buyers scored with the no-history prior
        self.anomaly_rows = 0  # pairs scored by the compiled anomaly model
        self.anomaly_distinct_rows = 0  # of which distinct feature rows (each scored once)

    @property
    def cached_parties(self) -> int:
        """Buyers whose scores are cached."""
        return len(self._party_cache)

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

    def warm_up(self, payment_features: pd.DataFrame | None) -> None:
        """Score one synthetic pair (buyer ``WARM_UP_PARTY``) and forget it: the first real batch then
        does not pay the first-call costs (lazy imports, the models' first predict) inside the ML
        timeout. Blocking; run it in the worker thread after loading models."""
        pair = Pair("warm-up", "warm-up", WARM_UP_PARTY, WARM_UP_PARTY, "cotton", "", 1000, 1, 0)
        self.score([pair], {}, payment_features)
        self._party_cache.clear()
        self.cache_hits = self.cache_misses = self.prior_scored = 0
        self.anomaly_rows = self.anomaly_distinct_rows = 0

    def observe_quantity(self, buyer: str, quantity_kg: int) -> None:
        """Feed an allocated quantity (kg): the buyer's typical order size for the anomaly model."""
        dq = self.typical_qty.get(buyer)
        if dq is None:
            dq = self.typical_qty[buyer] = deque(maxlen=50)
        dq.append(quantity_kg)

    def score(
        self,
        queries: Sequence[Pair],
        parties: Mapping[str, Party | None],
        payment_features: pd.DataFrame | None,
    ) -> list[MlScores]:
        """Scores per pair (blocking, vectorised; run in a worker thread).

        ``payment_features``: DataFrame indexed by party id with the payment-default features of
        the buyers returned by :meth:`buyers_to_score` (or None when there are none).
        """
        import numpy as np

        from ml.features import build_order_features, no_payment_history
        from ml.serving import PAYMENT_DEFAULT_PRIOR

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
            # No payment history of its own: the population prior, and no suggested limit (the desk's
            # own credit limit applies); docs/risk.md, "Parties without history".
            fresh = no_payment_history(payment_features)
            if fresh.any() and "payment_default" in self.versions:
                pd_[fresh] = float(getattr(self.models, "payment_default_prior", PAYMENT_DEFAULT_PRIOR))
                lim[fresh] = np.nan
            self.prior_scored += int(fresh.sum())
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
        # the market reference and a buyer's typical size are read once per call, not once per pair
        ref_of: dict[tuple[str, str], float] = {}
        typical_of: dict[str, float] = {}
        refs_l: list[float] = []
        typical_l: list[float] = []
        for q in queries:
            market = (q.commodity, q.region)
            ref = ref_of.get(market)
            if ref is None:
                st = self.market.stats(q.commodity, q.region)
                ref = ref_of[market] = float(st.median) if st is not None else math.nan
            refs_l.append(ref)
            typ = typical_of.get(q.buyer_id)
            if typ is None:
                dq = self.typical_qty.get(q.buyer_id)
                typ = typical_of[q.buyer_id] = float(sorted(dq)[len(dq) // 2]) if dq else math.nan
            typical_l.append(typ)
        prices = np.fromiter((q.price for q in queries), dtype="float64", count=n)
        qtys = np.fromiter((q.quantity_kg for q in queries), dtype="float64", count=n)
        ts = np.fromiter((q.ts for q in queries), dtype="float64", count=n)
        refs = np.asarray(refs_l, dtype="float64")
        typical = np.asarray(typical_l, dtype="float64")
        X = build_order_features(prices, refs, qtys, typical, None, ts)
        if self.fast_anomaly is not None and not np.isnan(X.to_numpy()).any():
            anomaly, distinct = self.fast_anomaly.score_counted(X.to_numpy(dtype="float64"))
            self.anomaly_rows += n
            self.anomaly_distinct_rows += distinct
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


def load_models_from_config(cfg: Mapping[str, Any], shadow_dsn: str | None = None) -> ScoringModels | None:
    """The models object a ``user_config`` names: ``models_pickle`` (a cloudpickle file holding a
    models object, or a dict ``{"versions", "estimators"}`` made into ``ml.serving.RiskModels``) or
    ``tracking_uri`` + ``alias`` (``ml.serving.load_models``; shadow scores are written to
    ``shadow_dsn`` when given). None when nothing is registered."""
    path = cfg.get("models_pickle")
    if path:
        import cloudpickle

        with open(path, "rb") as fh:
            obj = cloudpickle.load(fh)
        if isinstance(obj, dict) and "estimators" in obj:  # {"versions", "estimators"}: fitted offline
            from ml.serving import RiskModels

            return RiskModels(dict(obj["versions"]), dict(obj["estimators"]))
        models: ScoringModels = obj
        return models
    uri = cfg.get("tracking_uri")
    if uri:
        from ml.serving import load_models

        return load_models(uri, alias=str(cfg.get("alias", "champion")), shadow_dsn=shadow_dsn)
    return None


def breaker_from_config(cfg: Mapping[str, Any]) -> CircuitBreaker:
    """A breaker with the ``breaker_*`` fields of a user_config (absent: the breaker's defaults)."""
    kw: dict[str, Any] = {}
    if "breaker_failures" in cfg:
        kw["failure_threshold"] = int(cfg["breaker_failures"])
    if "breaker_window_s" in cfg:
        kw["window_s"] = float(cfg["breaker_window_s"])
    if "breaker_cooldown_s" in cfg:
        kw["cooldown_s"] = float(cfg["breaker_cooldown_s"])
    return CircuitBreaker(**kw)


FeatureSource = Callable[[list[str], int], Awaitable["pd.DataFrame | None"]]


@dataclass
class MlCounters:
    """ML-tier outcomes of one replica: answered, failed, timed out, skipped (circuit open)."""

    ok: int = 0
    failures: int = 0
    timeouts: int = 0
    skipped_open: int = 0


class MlGate:
    """Runs :meth:`MlTier.score` behind a circuit breaker with a timeout.

    Args:
        breaker: the circuit breaker (failures and timeouts open it).
        timeout_ms: budget for features + scoring of one batch, milliseconds, plus
            ``per_pair_ms`` for each pair of the batch (large batches cost more to score).
        executor: where the blocking scoring runs (a thread pool).
        on_state: called after every breaker change (the replica exports it as a gauge).
    """

    def __init__(
        self,
        breaker: CircuitBreaker | None = None,
        timeout_ms: float = DEFAULT_ML_TIMEOUT_MS,
        executor: Executor | None = None,
        on_state: Callable[[CircuitBreaker], None] | None = None,
        counters: MlCounters | None = None,
        per_pair_ms: float = DEFAULT_ML_TIMEOUT_PER_PAIR_MS,
    ) -> None:
        self.breaker = breaker or CircuitBreaker()
        self.timeout_s = float(timeout_ms) / 1000.0
        self.per_pair_s = float(per_pair_ms) / 1000.0
        self.executor = executor
        self.on_state = on_state
        self.counters = counters or MlCounters()

    def _changed(self) -> None:
        if self.on_state is not None:
            self.on_state(self.breaker)

    async def scores(
        self,
        ml: MlTier | None,
        queries: list[Pair],
        parties: Mapping[str, Party | None],
        features: FeatureSource,
    ) -> list[MlScores] | None:
        """Scores per pair, or None (no models, no pairs, circuit open, failure, timeout).
        ``features(buyers, as_of_ts)`` returns the payment features of buyers not in the cache."""
        if ml is None or not queries:
            return None
        if not self.breaker.allow():
            self.counters.skipped_open += 1
            return None
        buyers = ml.buyers_to_score(sorted({q.buyer_id for q in queries}), parties)
        as_of = max(q.ts for q in queries)

        async def run() -> list[MlScores]:
            feats = await features(buyers, as_of)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, ml.score, queries, parties, feats)

        try:
            budget = self.timeout_s + self.per_pair_s * len(queries)
            scores = await asyncio.wait_for(run(), timeout=budget)
        except TimeoutError:
            self.counters.timeouts += 1
            self.breaker.record_failure()
            return None
        except Exception as exc:
            self.counters.failures += 1
            self.breaker.record_failure()
            log.debug("risk pool: ML tier failed: %s", exc)
            return None
        finally:
            self._changed()
        self.breaker.record_success()
        self.counters.ok += 1
        self._changed()
        return scores
