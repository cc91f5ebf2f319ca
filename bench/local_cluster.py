"""A multi-node Ray cluster on one machine, with the node types of ``cluster.yaml``.

As Ray's own tests do (:class:`ray.cluster_utils.Cluster`): a head (``tradedesk_head``), matching
nodes (``tradedesk_matching``) and a risk node (``tradedesk_risk``), each its own raylet and object
store with small CPU and memory budgets. Node loss is simulated the hard way
(:meth:`LocalCluster.kill_node`): the node's raylet, object store and every worker process are
killed at once, as when a machine dies. Failure detection is tuned shorter than Ray's default
(:data:`HEALTH_CHECK`): a dead node is declared after about 1.5 s instead of 15 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

from actors.placement import HEAD_RESOURCE, MATCHING_RESOURCE, RISK_RESOURCE

NODE_OBJECT_STORE_BYTES = 80 * 1024 * 1024  # per node: enough for command batches, fits a small box
MATCHING_UNITS = 100  # tradedesk_matching per matching node (cluster.yaml): at most 100 shards each
#: GCS health checks of the raylets: ~1.5 s to declare a node dead (Ray's default 3 s x 5 = 15 s).
HEALTH_CHECK = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def _forget_address(address: str) -> None:
    """Ray's cluster helper records its head as *the* local cluster (``/tmp/ray/ray_current_cluster``),
    so every later ``ray.init()`` on this machine would join it: remove the record (drivers of this
    cluster connect by address)."""
    from ray._common.utils import reset_ray_address
    from ray._private.utils import read_ray_address

    if read_ray_address() == address:
        reset_ray_address()


_GCS_ENV = ("RAY_REDIS_ADDRESS", "RAY_external_storage_namespace")


class LocalCluster:
    """Head + ``matching`` matching nodes + ``risk`` risk nodes on this machine. ``connect()`` makes
    this process a driver of it (``ray.init``); ``shutdown()`` ends every node. ``gcs_redis``
    (``host:port``): GCS fault tolerance on that Redis (:meth:`kill_gcs`, :meth:`start_gcs`)."""

    def __init__(
        self,
        matching: int = 2,
        risk: int = 1,
        cpus_per_node: int = 1,
        system_config: dict[str, Any] | None = None,
        gcs_redis: str | None = None,
    ) -> None:
        from ray.cluster_utils import Cluster

        self.cpus = cpus_per_node
        self.gcs_redis = gcs_redis
        self.storage_namespace = f"tdgcs-{uuid.uuid4().hex[:10]}"
        with self._gcs_env():
            self.cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": cpus_per_node,
                    "resources": {HEAD_RESOURCE: 1},
                    "object_store_memory": NODE_OBJECT_STORE_BYTES,
                    "include_dashboard": False,
                    "_system_config": {**HEALTH_CHECK, **(system_config or {})},
                },
            )
        self.head: Any = self.cluster.head_node
        _forget_address(self.address)
        self.matching = [self.add_matching() for _ in range(matching)]
        self.risk = [
            self.cluster.add_node(
                num_cpus=cpus_per_node,
                resources={RISK_RESOURCE: 100},
                object_store_memory=NODE_OBJECT_STORE_BYTES,
            )
            for _ in range(risk)
        ]
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        """The GCS address for ``ray.init(address=...)``."""
        return str(self.cluster.address)

    def connect(self, namespace: str) -> None:
        """``ray.init`` into this cluster (driver on the head node)."""
        import ray

        ray.init(
            address=self.address,
            namespace=namespace,
            log_to_driver=False,
            configure_logging=False,
        )

    def add_matching(self) -> Any:
        """Start one more matching node (a node joins); returns Ray's node object (``.node_id``)."""
        node = self.cluster.add_node(
            num_cpus=self.cpus,
            resources={MATCHING_RESOURCE: MATCHING_UNITS},
            object_store_memory=NODE_OBJECT_STORE_BYTES,
        )
        self.cluster.wait_for_nodes()
        return node

    def kill_node(self, node: Any) -> float:
        """Hard node loss: SIGKILL the node's raylet, object store and every worker process at once
        (no graceful drain, as a machine that dies), then tell the cluster helper it is gone.
        Returns the ``time.monotonic()`` of the kill."""
        import psutil

        procs = []
        for infos in node.all_processes.values():
            for info in infos:
                try:
                    p = psutil.Process(info.process.pid)
                    procs += [p, *p.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
        t = time.monotonic()
        for p in procs:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        self.cluster.remove_node(node, allow_graceful=False)
        if node in self.matching:
            self.matching.remove(node)
        return t

    @contextlib.contextmanager
    def _gcs_env(self) -> Iterator[None]:
        """GCS fault tolerance (as ``cluster.yaml``): the head's GCS keeps its tables in Redis
        ``gcs_redis`` under a namespace of its own; the variables are set only while the GCS starts,
        so other Ray instances of this process do not inherit them."""
        if not self.gcs_redis:
            yield
            return
        saved = {k: os.environ.get(k) for k in _GCS_ENV}
        os.environ.update(dict(zip(_GCS_ENV, (self.gcs_redis, self.storage_namespace), strict=True)))
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def kill_gcs(self) -> None:
        """Kill the head's GCS server (the head restart of GCS fault tolerance, first half)."""
        self.head.kill_gcs_server()

    def start_gcs(self) -> None:
        """Start the GCS server again on the head; it reloads its tables from Redis."""
        with self._gcs_env():
            self.head.start_gcs_server()

    def shutdown(self) -> None:
        """End the driver connection and every node; delete the GCS tables from Redis."""
        import ray

        ray.shutdown()
        self.cluster.shutdown()
        if self.gcs_redis:
            import redis

            host, _, port = self.gcs_redis.rpartition(":")
            r = redis.Redis(host=host, port=int(port))
            for key in r.scan_iter(f"*{self.storage_namespace}*"):
                r.delete(key)
            r.close()
