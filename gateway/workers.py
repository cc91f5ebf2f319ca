"""Several gateway processes on one port, all attached to one Ray cluster.

The gateway is stateless: API-key lookups are cached per process (revocations reach every process
through Redis pub/sub), idempotency keys and rate-limit buckets live in Redis, WebSocket fan-out
comes from Redis pub/sub, webhook dispatchers share their work through PostgreSQL row locks. So
``tradedesk serve --workers N`` runs N copies of the app under uvicorn's process manager (one
listening socket, the kernel spreads connections; a worker that dies is replaced). Each worker is a
Ray driver of the cluster the serving process started or joined (``ray_address``, in the same
``ray_namespace``) and finds the ``shard-directory`` actor by name.

The serving process hands the workers their configuration in one environment variable
(:data:`ENV`, JSON: the settings, the database and Redis URLs, the Ray address, the Redis key
prefix and, when there is one, the pickled risk pool client); :func:`app_from_env` is the factory
each worker calls. ``python -m gateway.workers --port P --workers N`` runs them with the
configuration already in the environment (the gateway benchmark does this).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
from typing import Any

ENV = "TRADEDESK_GATEWAY_WORKER"
FACTORY = "gateway.workers:app_from_env"


def worker_env(
    settings: Any,
    dsn: str,
    redis_url: str,
    ray_address: str,
    key_prefix: str | None = None,
    risk: Any = None,
    log_level: str | None = None,
) -> dict[str, str]:
    """The environment entry (``{ENV: json}``) that :func:`app_from_env` reads. ``ray_address`` is
    the GCS address of the running cluster (``ray.get_runtime_context().gcs_address``); with
    ``log_level``, each worker logs to the files of ``settings.data_dir`` as ``serve`` does."""
    doc: dict[str, Any] = {
        "settings": settings.model_dump(mode="json"),
        "dsn": dsn,
        "redis_url": redis_url,
        "ray_address": ray_address,
        "key_prefix": key_prefix,
        "risk": base64.b64encode(pickle.dumps(risk)).decode() if risk is not None else None,
        "log_level": log_level,
    }
    return {ENV: json.dumps(doc)}


def app_from_env() -> Any:
    """The FastAPI app of one worker, from :data:`ENV` (raises KeyError when it is not set)."""
    from actors.settings import Settings
    from gateway.app import create_app

    doc = json.loads(os.environ[ENV])
    settings = Settings(**{**doc["settings"], "ray_address": doc["ray_address"]})
    if doc.get("log_level"):
        from gateway.logfiles import LogFiles, configure_logging

        configure_logging(LogFiles.under(settings.data_dir), doc["log_level"])
    risk = pickle.loads(base64.b64decode(doc["risk"])) if doc.get("risk") else None
    kw: dict[str, Any] = {"risk": risk}
    if doc.get("key_prefix"):
        kw["key_prefix"] = doc["key_prefix"]
    return create_app(settings, doc["dsn"], doc["redis_url"], **kw)


def run(host: str, port: int, workers: int, log_level: str = "warning", access_log: bool = False) -> None:
    """Serve :func:`app_from_env` with ``workers`` processes on ``host:port`` until SIGINT/SIGTERM
    (uvicorn's process manager: in-flight requests finish, then the workers exit)."""
    import uvicorn

    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        lifespan="on",
        access_log=access_log,
        log_config=None,
    )


if __name__ == "__main__":  # pragma: no cover - the benchmark's entry point
    import argparse

    ap = argparse.ArgumentParser(description="gateway worker processes (configuration in the environment)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    run(a.host, a.port, a.workers)
