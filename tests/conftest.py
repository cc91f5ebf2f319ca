"""Shared fixtures: one local Ray instance per session, a fresh PostgreSQL database per test module,
and a Redis URL with a per-test key prefix. Services are the machine's (127.0.0.1:5432 database
``test`` and 127.0.0.1:6379) unless TRADEDESK_TEST_DATABASE_URL / TRADEDESK_TEST_REDIS_URL say
otherwise."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ADMIN_DSN = os.environ.get("TRADEDESK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TRADEDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _dsn_for(dbname: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{dbname}"


def init_local_ray() -> None:
    """Start the session's local Ray instance (4 CPUs, namespace ``tradedesk-test``) if none runs."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=4,
            include_dashboard=False,
            namespace="tradedesk-test",
            log_to_driver=False,
            configure_logging=False,
        )


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray instance for the whole test session (a multi-node module swaps it for its
    cluster and starts it again afterwards: tests/integration/cluster_fixture.py)."""
    import ray

    init_local_ray()
    yield
    ray.shutdown()


def create_database() -> tuple[str, str]:
    """Create an empty database; returns (name, dsn)."""
    import psycopg2

    name = f"td_test_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name, _dsn_for(name)


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, empty PostgreSQL database, dropped after the module."""
    name, dsn = create_database()
    yield dsn
    drop_database(name)


@pytest.fixture()
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture()
def key_prefix() -> str:
    """A unique Redis key prefix so tests never see each other's keys."""
    return f"tdtest:{uuid.uuid4().hex[:10]}:"
