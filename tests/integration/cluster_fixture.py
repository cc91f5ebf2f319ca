"""The multi-node cluster fixture: head + two matching nodes + a risk node on this machine
(:class:`bench.local_cluster.LocalCluster`, GCS fault tolerance on the test Redis as in
``cluster.yaml``), a tradedesk runtime and the real gateway on it.

One cluster per test module (starting it costs ~15 s). The session's local Ray instance (``ray_session``)
is shut down while the module runs and started again afterwards, so the other modules never see the
cluster. Import ``td_cluster`` into a test module to use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import REDIS_URL, create_database, drop_database
from tests.integration.conftest import unique_region

HOSTED_REGION = unique_region()
"""The region whose shards share a host process (``shard_hosting`` region mode); every other shard
of the cluster tests has its own process."""


@dataclass
class ClusterRig:
    """The cluster, the gateway over it (``gw.runtime`` its runtime) and the module's database."""

    cluster: Any
    gw: Any
    dsn: str

    @property
    def runtime(self) -> Any:
        return self.gw.runtime


@pytest.fixture(scope="module")
def td_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRig]:
    import ray

    from bench.local_cluster import LocalCluster
    from tests.conftest import init_local_ray
    from tests.integration.gateway_server import Gateway

    had_local = ray.is_initialized()
    if had_local:
        ray.shutdown()
    name, dsn = create_database()
    from urllib.parse import urlparse

    redis = urlparse(REDIS_URL)
    cluster = LocalCluster(matching=2, risk=1, gcs_redis=f"{redis.hostname}:{redis.port or 6379}")
    gw = None
    try:
        cluster.connect("tradedesk-test")
        hosting = {"*": "process", HOSTED_REGION: "region"}
        runtime = {"snapshot_every": 500, "shard_hosting": hosting}
        gw = Gateway(dsn, REDIS_URL, tmp_path_factory.mktemp("cluster"), runtime=runtime)
        yield ClusterRig(cluster, gw, dsn)
    finally:
        if gw is not None:
            with contextlib.suppress(Exception):
                gw.stop()
        cluster.shutdown()
        drop_database(name)
        if had_local:
            init_local_ray()
