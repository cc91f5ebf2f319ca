"""Deploying the risk pool on Ray Serve and pushing model configurations to it.

:func:`deploy_risk_pool` starts (or updates) the Serve application :data:`APP_NAME` and returns a
:class:`~actors.risk_pool.client.RiskPoolClient`. Overload is refused, not queued forever
(``max_ongoing_requests`` / ``max_queued_requests``); the client then fails closed.

Models: ``reconfigure(user_config)`` on each replica loads them (``ml.serving.load_models(tracking_uri,
alias)``, or a cloudpickled models object at ``models_pickle`` for offline use). A promotion or rollback
is :func:`apply_model_config`: the merged config is published in Redis under the prefix
(:data:`~actors.risk_pool.wire.MODEL_CONFIG_KEY`, version bumped), and every live replica reconfigures
before its next batch, without a restart. Without models the ML tier reports itself unavailable and
decisions are rules-only.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from actors.risk_pool.client import RiskPoolClient
from actors.risk_pool.replica import RiskPoolReplica
from actors.risk_pool.wire import APP_NAME, DEPLOYMENT_NAME, MODEL_CONFIG_KEY, MODEL_CONFIG_VERSION_KEY
from actors.settings import Settings
from persistence.exposure import DEFAULT_PREFIX, ExposureStore, rebuild_exposure

if TYPE_CHECKING:
    from ray.serve import Application

__all__ = ["APP_NAME", "apply_model_config", "build_risk_app", "deploy_risk_pool", "publish_model_config"]

MAX_ONGOING_REQUESTS = 32
MAX_QUEUED_REQUESTS = 128
TARGET_ONGOING_REQUESTS = 8
MARKET_WINDOW = 500  # prices kept per (commodity, region) series


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
) -> Application:
    """The Serve application of the risk pool (not yet running; see :func:`deploy_risk_pool`).

    ``autoscaling_config`` scales between ``min_replicas`` and ``max_replicas`` on ongoing requests
    (target 8 per replica); ``max_ongoing_requests`` caps a replica's concurrent requests and
    ``max_queued_requests`` the handle-side queue, beyond which requests are refused
    (``BackPressureError``) instead of queued forever.
    """
    from ray import serve

    dep = serve.deployment(
        name=DEPLOYMENT_NAME,
        ray_actor_options={"num_cpus": num_cpus},
        autoscaling_config={
            "min_replicas": min_replicas,
            "max_replicas": max(min_replicas, max_replicas),
            "target_ongoing_requests": TARGET_ONGOING_REQUESTS,
            "upscale_delay_s": 5.0,
            "downscale_delay_s": 60.0,
        },
        max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_queued_requests,
        user_config=dict(user_config or {}),
        health_check_period_s=10.0,
    )(RiskPoolReplica)
    return dep.bind(dsn, redis_url, prefix, rules_config, MARKET_WINDOW, load_history)


def model_config(settings: Settings, user_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pool's ``user_config``: ML timeout and fusion weights from ``settings``
    (``risk_ml_timeout_ms``, ``risk_rules_weight``, ``risk_ml_weight``), ``tracking_uri`` from
    ``mlflow_tracking_uri`` when set, then ``user_config`` on top."""
    cfg: dict[str, Any] = {
        "ml_timeout_ms": float(settings.risk_ml_timeout_ms),
        "ml_timeout_per_pair_ms": float(settings.risk_ml_timeout_per_pair_ms),
        "rules_weight": float(settings.risk_rules_weight),
        "ml_weight": float(settings.risk_ml_weight),
    }
    if settings.mlflow_tracking_uri:
        cfg["tracking_uri"] = settings.mlflow_tracking_uri
    cfg.update(user_config or {})
    return cfg


def rules_config_from(settings: Settings) -> dict[str, Any]:
    """:class:`~actors.core.risk.rules.RulesConfig` fields set by the settings: the settlement-history
    rules (``risk_overdue_block_days``, ``risk_overdue_warn``, ``risk_default_warn_count``, and the
    settlement kernel's grace period ``settlement_grace_days`` for the default history; docs/risk.md)."""
    return {
        "overdue_block_days": float(settings.risk_overdue_block_days),
        "overdue_warn": bool(settings.risk_overdue_warn),
        "default_grace_days": float(settings.settlement_grace_days),
        "default_warn_count": int(settings.risk_default_warn_count),
    }


def deploy_risk_pool(
    settings: Settings,
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
    shard is allocating). Replica bounds (``risk_min_replicas``, ``risk_max_replicas``) and the
    model config (:func:`model_config`) come from ``settings``; ``user_config`` overrides the latter.
    The settlement-history rules come from ``settings`` (:func:`rules_config_from`);
    ``rules_config`` overrides them.
    """
    from ray import serve
    from ray.serve.config import ProxyLocation

    if rebuild and dsn:
        asyncio.run(rebuild_exposure(dsn, ExposureStore.from_url(redis_url, prefix)))
    cfg = model_config(settings, user_config)
    # This deploy's config becomes the current one; replicas note its version so they do not load
    # the same models twice.
    cfg["config_seq"] = publish_model_config(redis_url, cfg, prefix)
    serve.start(proxy_location=ProxyLocation.Disabled)
    app = build_risk_app(
        dsn,
        redis_url,
        prefix=prefix,
        min_replicas=int(settings.risk_min_replicas),
        max_replicas=int(settings.risk_max_replicas),
        user_config=cfg,
        rules_config={**rules_config_from(settings), **(rules_config or {})},
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
    settings: Settings,
    dsn: str | None,
    redis_url: str,
    user_config: dict[str, Any],
    *,
    prefix: str = DEFAULT_PREFIX,
    app_name: str = APP_NAME,
    **_: object,
) -> RiskPoolClient:
    """Push a new model configuration (promotion or rollback) to the running pool without
    restarting it: the merged config (:func:`model_config`: settings, then ``user_config`` with
    ``tracking_uri`` / ``alias`` or ``models_pickle``, ``ml_timeout_ms``, fusion and breaker fields,
    ``version``) is published in Redis and the live replicas ``reconfigure`` before their next
    batch. ``dsn`` is unused (kept for call compatibility); other keyword arguments are ignored."""
    publish_model_config(redis_url, model_config(settings, user_config), prefix)
    return RiskPoolClient(redis_url, prefix, app_name=app_name)
