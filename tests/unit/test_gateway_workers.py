"""``serve --workers N``: every worker builds the same app from the configuration the serving
process hands over in the environment."""

from __future__ import annotations

import pytest

from actors.settings import Settings
from gateway.workers import ENV, app_from_env, worker_env


def test_worker_app_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(ray_namespace="ns-w", durability="async", gateway_batch_window_ms=0.5, port=18001)
    env = worker_env(s, "postgresql://u@h:5432/db", "redis://h:6379/0", "10.0.0.1:6379", key_prefix="px:")
    monkeypatch.setenv(ENV, env[ENV])
    monkeypatch.setenv("TRADEDESK_DURABILITY", "sync")  # the handed-over settings win over the environment
    import gateway.app as app_module

    seen: dict[str, object] = {}
    real = app_module.create_app

    def spy(settings: Settings, dsn: str, redis_url: str, **kw: object) -> object:
        seen.update(settings=settings, dsn=dsn, redis_url=redis_url, **kw)
        return real(settings, dsn, redis_url, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "create_app", spy)
    app = app_from_env()
    got = seen["settings"]
    assert isinstance(got, Settings)
    assert (got.ray_namespace, got.durability, got.gateway_batch_window_ms, got.port) == (
        "ns-w",
        "async",
        0.5,
        18001,
    )
    assert got.ray_address == "10.0.0.1:6379"
    assert (seen["dsn"], seen["redis_url"], seen["key_prefix"], seen["risk"]) == (
        "postgresql://u@h:5432/db",
        "redis://h:6379/0",
        "px:",
        None,
    )
    assert "/v1/orders/availabilities" in app.openapi()["paths"]


def test_worker_needs_its_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(KeyError):
        app_from_env()
