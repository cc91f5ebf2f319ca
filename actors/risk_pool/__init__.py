"""The risk pool: rules + ML tiers served by a Ray Serve deployment, and the client shards call.

Split by job: :mod:`~actors.risk_pool.wire` (compact wire format and shared names),
:mod:`~actors.risk_pool.ml_tier` (ML scoring behind the circuit breaker with a timeout;
:mod:`~actors.risk_pool.iforest` its compiled IsolationForest),
:mod:`~actors.risk_pool.replica` (the Serve deployment class: batching, party cache, model hot reload
from the Redis config), :mod:`~actors.risk_pool.client` (the picklable, fail-closed
:class:`RiskPoolClient`) and :mod:`~actors.risk_pool.deploy` (:func:`deploy_risk_pool`,
:func:`apply_model_config`, :data:`APP_NAME`).

Topology (ARCHITECTURE.md, "Runtime topology"): each shard actor calls the client once per command
batch; ``@serve.batch`` merges concurrent requests from several shards into one evaluation.
"""

from actors.risk_pool.client import PoolUnavailable, RiskPoolClient
from actors.risk_pool.deploy import apply_model_config, build_risk_app, deploy_risk_pool, publish_model_config
from actors.risk_pool.iforest import CompiledIsolationForest, compile_anomaly_model
from actors.risk_pool.ml_tier import MlTier
from actors.risk_pool.wire import APP_NAME, DEPLOYMENT_NAME, from_wire, to_wire

__all__ = [
    "APP_NAME",
    "DEPLOYMENT_NAME",
    "CompiledIsolationForest",
    "MlTier",
    "PoolUnavailable",
    "RiskPoolClient",
    "apply_model_config",
    "build_risk_app",
    "compile_anomaly_model",
    "deploy_risk_pool",
    "from_wire",
    "publish_model_config",
    "to_wire",
]
