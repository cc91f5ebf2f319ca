"""Test harness: the real gateway app under uvicorn on 127.0.0.1 (random port, own thread and event
loop) over a real runtime (Ray actors, PostgreSQL, Redis), plus a bootstrap admin key and helpers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx

LOC = {"lat": 21.17, "lon": 72.83, "city": "Surat"}


class Gateway:
    """A running gateway: ``base`` URL, ``admin`` token, the app and its runtime. ``settings`` go to
    the gateway's :class:`actors.settings.Settings`, ``runtime`` to the runtime's
    (``start_test_runtime`` overrides, e.g. the shard policy), ``decider`` the shards' risk decider
    (e.g. a deployed risk pool's client; None: pass-all)."""

    def __init__(
        self,
        dsn: str,
        redis_url: str,
        key_dir: Path,
        runtime: dict[str, Any] | None = None,
        decider: Any = None,
        **settings: Any,
    ) -> None:
        from actors.settings import Settings
        from gateway.app import ServerThread, create_app
        from persistence.api_keys import ensure_admin_key_async
        from tests.integration.conftest import start_test_runtime

        self.namespace = f"gwt-{uuid.uuid4().hex[:10]}"
        self.runtime = start_test_runtime(
            dsn, redis_url, decider, ray_namespace=self.namespace, **(runtime or {})
        )
        fields: dict[str, Any] = {
            "ray_namespace": self.namespace,
            "rate_limit_per_s": 2000.0,
            "rate_limit_burst": 4000,
            "data_dir": key_dir,  # the webhook secrets' key file
        }
        fields.update(settings)
        self.settings = Settings(**fields)
        key_file = key_dir / "admin.key"
        asyncio.run(ensure_admin_key_async(dsn, key_file))
        self.key_file = key_file
        self.admin = key_file.read_text().strip()
        self.prefix = f"tdgw:{uuid.uuid4().hex[:8]}:"
        self.app = create_app(
            self.settings,
            dsn,
            redis_url,
            key_prefix=self.prefix,
            directory=self.runtime.directory,
            risk=decider,
        )
        self.risk: Any = decider
        self.server = ServerThread(self.app)
        self.base = self.server.start()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def stop(self) -> None:
        from tests.integration.conftest import kill_namespace

        self.server.stop()
        kill_namespace(self.namespace)

    # -- helpers -----------------------------------------------------------------------------------
    def party(self, party_id: str, roles: list[str], **fields: Any) -> str:
        """Create a party and return a fresh API key token with ``roles``."""
        with self.client(self.admin) as c:
            r = c.post("/v1/admin/parties", json={"party_id": party_id, "role": roles[0], **fields})
            assert r.status_code in (201, 409), r.text
            r = c.post("/v1/admin/api-keys", json={"party_id": party_id, "roles": roles, "label": "test"})
            assert r.status_code == 201, r.text
            return str(r.json()["token"])


def availability(
    coid: str, region: str, price: int = 7000, qty: float = 10, unit: str = "tonne", **kw: Any
) -> dict:
    return {
        "client_order_id": coid,
        "commodity": "cotton",
        "quantity": {"value": qty, "unit": unit},
        "price_paise_per_kg": price,
        "location": {**LOC, "region": region},
        "quality": {"staple_length_mm": 29.0, "micronaire": 4.2, "strength_gtex": 30.0},
        **kw,
    }


def requirement(
    coid: str, region: str, price: int = 7200, qty: float = 4, unit: str = "tonne", **kw: Any
) -> dict:
    return {
        "client_order_id": coid,
        "commodity": "cotton",
        "quantity": {"value": qty, "unit": unit},
        "max_price_paise_per_kg": price,
        "location": {**LOC, "region": region},
        "quality_ranges": {"micronaire": {"min": 3.5, "max": 4.9}},
        **kw,
    }
