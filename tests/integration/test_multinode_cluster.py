"""tradedesk on a multi-node Ray cluster on this machine (head, two matching nodes, a risk node), with
the real gateway over HTTP and clients that keep placing orders throughout:

- the runtime's actors sit on their node types, and the directory's view of where each shard runs
  equals Ray's own (the state API);
- a live move (CLI -> API -> fenced handover) under a steady load: no order refused or lost;
- a matching node dies (raylet and every worker SIGKILLed): its shards restart on the other matching
  node from PostgreSQL; clients see only 503 with Retry-After, retried with the same client order
  ids; every acknowledged order is in the log exactly once, seqs gap-free;
- a matching node joins and a rebalance moves load (measured commands/s) onto it, not idle shards;
- a shard of the shared hosting mode (several shards per host process) moves live and fails over
  like a shard in its own process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import ray

from actors.placement import actor_nodes, host_name
from tests.integration.cluster_fixture import HOSTED_REGION, ClusterRig, td_cluster  # noqa: F401
from tests.integration.conftest import assert_gap_free, db_events, db_rows, unique_region
from tests.integration.gateway_server import availability, requirement

pytestmark = [pytest.mark.integration, pytest.mark.multinode]


class Load:
    """One client placing orders on one shard over HTTP, one after another (``pace_s`` apart). A 503
    must carry Retry-After and is retried with the same client order id after 50 ms; 2xx answers are
    acknowledgements; anything else is recorded in ``bad``."""

    def __init__(self, rig: ClusterRig, token: str, region: str, tag: str, pace_s: float = 0.0) -> None:
        self.rig, self.token, self.region, self.tag, self.pace_s = rig, token, region, tag, pace_s
        self.acked: dict[str, float] = {}  # client order id -> monotonic time of the answer
        self.retried: list[tuple[float, int, str]] = []  # (time, status, problem type) of 503s
        self.bad: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def wait_acks(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert time.monotonic() < deadline, (self.tag, len(self.acked), self.bad[:3], self.retried[-3:])
            assert not self.bad, self.bad[:3]
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        i = 0
        with self.rig.gw.client(self.token) as c:
            while not self._stop.is_set():
                coid = f"{self.tag}{i}"
                if i % 2:
                    path, body = "/v1/orders/requirements", requirement(coid, self.region, qty=1)
                else:
                    path, body = "/v1/orders/availabilities", availability(coid, self.region, qty=2)
                while True:
                    r = c.post(path, json=body, timeout=90)
                    if r.status_code in (200, 201):
                        self.acked[coid] = time.monotonic()
                        break
                    if r.status_code == 503 and r.headers.get("retry-after"):
                        self.retried.append((time.monotonic(), 503, r.json().get("type", "")))
                        time.sleep(0.05)
                        continue
                    self.bad.append((r.status_code, r.text[:300]))
                    return
                i += 1
                if self.pace_s:
                    time.sleep(self.pace_s)


def _shards(rig: ClusterRig) -> dict[str, dict[str, Any]]:
    with rig.gw.client(rig.gw.admin) as a:
        r = a.get("/v1/admin/shards")
        assert r.status_code == 200, r.text
        return {x["shard_id"]: x for x in r.json()["items"]}


def _host_nodes(rig: ClusterRig) -> dict[str, str]:
    """Where Ray runs each shard host of the runtime: {shard_id: node id}."""
    real = actor_nodes(rig.gw.namespace)
    out = {}
    for sid in _shards(rig):
        names = [n for n in real if n == host_name(sid, 0) or n.startswith(host_name(sid, 0) + "@")]
        assert len(names) <= 1, names  # one host per shard at a time
        if names:
            out[sid] = real[names[0]]
    return out


def _assert_exactly_once(rig: ClusterRig, sid: str, loads: list[Load]) -> None:
    """Every acknowledged order of ``loads`` is accepted exactly once in the log; seqs gap-free."""
    events = db_events(rig.dsn, sid)
    assert_gap_free(events)
    accepted = [e.payload.order.client_order_id for e in events if e.type == "ORDER_ACCEPTED"]
    assert len(accepted) == len(set(accepted))
    acked = {coid for ld in loads for coid in ld.acked}
    assert acked <= set(accepted), sorted(acked - set(accepted))[:5]


@pytest.fixture(scope="module")
def tokens(td_cluster: ClusterRig) -> dict[str, str]:  # noqa: F811
    gw = td_cluster.gw
    return {"trader": gw.party("MNT1", ["trader"], kyc_status="VERIFIED")}


def test_actors_sit_on_their_node_types(td_cluster: ClusterRig, tokens: dict[str, str]) -> None:  # noqa: F811
    rig = td_cluster
    head = rig.cluster.head.node_id
    matching = {n.node_id for n in rig.cluster.matching}
    regions = [unique_region() for _ in range(3)]
    with rig.gw.client(tokens["trader"]) as c:
        for k, region in enumerate(regions):
            assert c.post("/v1/orders/availabilities", json=availability(f"p{k}", region)).status_code == 201
    real = actor_nodes(rig.gw.namespace)
    assert real["persistence"] == real["shard-directory"] == real["settlement"] == head
    hosts = _host_nodes(rig)
    assert set(hosts) == {f"{r}.cotton" for r in regions}
    assert set(hosts.values()) <= matching and len(set(hosts.values())) == 2  # SPREAD over both
    assert ray.get(rig.runtime.directory.placement.remote()) == hosts
    assert {s: r["node_id"] for s, r in _shards(rig).items()} == hosts
    with rig.gw.client(rig.gw.admin) as a:
        nodes = {n["node_id"]: n for n in a.get("/v1/admin/nodes").json()["items"]}
    assert nodes[head]["type"] == "head" and {nodes[m]["type"] for m in matching} == {"matching"}
    assert sorted(s for m in matching for s in nodes[m]["shards"]) == sorted(hosts)


def test_live_move_under_load_refuses_nothing(
    td_cluster: ClusterRig,  # noqa: F811
    tokens: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.operator_cli import main

    rig = td_cluster
    region = unique_region()
    sid = f"{region}.cotton"
    load = Load(rig, tokens["trader"], region, "mv").start()
    load.wait_acks(40)
    src = _host_nodes(rig)[sid]
    (dst,) = {n.node_id for n in rig.cluster.matching} - {src}
    common = ["--gateway", rig.gw.base, "--api-key-file", str(rig.gw.key_file), "--json"]
    assert main([*common, "move", sid, "--to", dst]) == 0
    import json

    moved = json.loads(capsys.readouterr().out)
    n_at_move = len(load.acked)
    load.wait_acks(n_at_move + 30)
    load.stop()
    assert moved["node_id"] == dst and moved["from_node"] == src and not moved["draining"]
    assert moved["handover_seq"] > 0 and moved["pause_ms"] < 1000
    assert load.retried == [] and load.bad == []  # requests waited during the handover
    assert _host_nodes(rig)[sid] == dst
    assert ray.get(rig.runtime.directory.placement.remote())[sid] == dst
    _assert_exactly_once(rig, sid, [load])
    # errors: an unknown node, the node it runs on, an unknown shard
    with rig.gw.client(rig.gw.admin) as a:
        r = a.post(f"/v1/admin/shards/{sid}/move", json={"node_id": "ab" * 28})
        assert r.status_code == 409 and "not an alive matching node" in r.json()["detail"]
        r = a.post(f"/v1/admin/shards/{sid}/move", json={"node_id": dst})
        assert r.status_code == 409 and "already runs on node" in r.json()["detail"]
        r = a.post("/v1/admin/shards/ZZ-QQ.cotton/move", json={"node_id": dst})
        assert r.status_code == 404
        r = a.post(f"/v1/admin/shards/{sid}/move", json={"node_id": "n1"})
        assert r.status_code == 422


def test_node_loss_fails_over_without_losing_orders(
    td_cluster: ClusterRig,  # noqa: F811
    tokens: dict[str, str],
) -> None:
    rig = td_cluster
    regions = [unique_region() for _ in range(3)]
    loads = [Load(rig, tokens["trader"], r, f"nl{k}-", pace_s=0.01).start() for k, r in enumerate(regions)]
    for ld in loads:
        ld.wait_acks(20)
    hosts = _host_nodes(rig)
    victim_id = hosts[f"{regions[0]}.cotton"]
    (victim,) = [n for n in rig.cluster.matching if n.node_id == victim_id]
    (survivor,) = [n.node_id for n in rig.cluster.matching if n.node_id != victim_id]
    lost = sorted(s for s, n in hosts.items() if n == victim_id)
    before = {ld.tag: len(ld.acked) for ld in loads}
    t_kill = rig.cluster.kill_node(victim)
    for ld in loads:
        ld.wait_acks(before[ld.tag] + 20, timeout=90)
    for ld in loads:
        ld.stop()
    for ld in loads:
        assert ld.bad == [], ld.bad[:3]  # never a 500: 503 with Retry-After, or a wait
        after = [t for t in ld.acked.values() if t > t_kill]
        assert after, ld.tag
        assert {p for _t, _s, p in ld.retried} <= {
            "urn:tradedesk:problem:unavailable",
            "urn:tradedesk:problem:outcome-unknown",
        }
    for r, ld in zip(regions, loads, strict=True):
        _assert_exactly_once(rig, f"{r}.cotton", [ld])
    # every shard now runs on the survivor, and the directory (and its table) says so
    deadline = time.monotonic() + 30
    while True:
        hosts = _host_nodes(rig)
        rows = db_rows(rig.dsn, "SELECT shard_id, node_id FROM shards")
        table = {r["shard_id"]: r["node_id"] for r in rows}
        if set(hosts.values()) == {survivor} and table == hosts:
            break
        assert time.monotonic() < deadline, (hosts, table)
        time.sleep(0.5)
    assert ray.get(rig.runtime.directory.placement.remote()) == hosts
    assert lost and all(hosts[s] == survivor for s in lost)


def test_rebalance_after_a_node_joins_moves_load_not_count(
    td_cluster: ClusterRig,  # noqa: F811
    tokens: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.operator_cli import main

    rig = td_cluster
    (old,) = [n.node_id for n in rig.cluster.matching]
    busy = [unique_region() for _ in range(2)]
    loads = [Load(rig, tokens["trader"], r, f"rb{k}-").start() for k, r in enumerate(busy)]
    for ld in loads:
        ld.wait_acks(10)
    joined = rig.cluster.add_matching().node_id
    hosts = _host_nodes(rig)
    assert set(hosts.values()) == {old} and len(hosts) >= 5  # idle shards of the earlier tests too
    common = ["--gateway", rig.gw.base, "--api-key-file", str(rig.gw.key_file)]
    assert main([*common, "nodes"]) == 0
    out = capsys.readouterr().out
    assert f"{joined}  matching  alive  0 shards" in out and f"{old}  matching  alive" in out
    assert main([*common, "rebalance", "--dry-run", "--window", "1"]) == 0
    out = capsys.readouterr().out
    assert f"-> {joined} (planned)" in out and _host_nodes(rig) == hosts  # a plan, nothing moved
    with rig.gw.client(rig.gw.admin) as a:
        r = a.post("/v1/admin/shards/rebalance", json={"window_s": 2.0})
    assert r.status_code == 200, r.text
    out = r.json()
    for ld in loads:
        ld.stop()
    busy_ids = {f"{b}.cotton" for b in busy}
    assert all(out["rates"][s] > 0 for s in busy_ids)
    (move,) = out["moves"]  # one busy shard halves the gap; idle shards stay
    assert move["shard_id"] in busy_ids and move["to_node"] == joined and "pause_ms" in move
    hosts = _host_nodes(rig)
    assert {hosts[s] for s in busy_ids} == {old, joined}
    assert [s for s, n in hosts.items() if n == joined] == [move["shard_id"]]
    for b, ld in zip(busy, loads, strict=True):
        assert ld.bad == [] and ld.retried == []
        _assert_exactly_once(rig, f"{b}.cotton", [ld])


def test_gcs_restart_keeps_shards_serving(td_cluster: ClusterRig, tokens: dict[str, str]) -> None:  # noqa: F811
    """GCS fault tolerance (Redis): while the head's GCS is down, running shards keep taking orders;
    once it is back (tables reloaded from Redis) new shards open again."""
    rig = td_cluster
    region = unique_region()
    load = Load(rig, tokens["trader"], region, "gcs-", pace_s=0.01).start()
    load.wait_acks(10)
    rig.cluster.kill_gcs()
    t_down = time.monotonic()
    try:
        n = len(load.acked)
        load.wait_acks(n + 20, timeout=30)  # served with the GCS down
        served_down = [t for t in load.acked.values() if t > t_down]
    finally:
        rig.cluster.start_gcs()
    t_up = time.monotonic()
    assert len(served_down) >= 20 and max(served_down) < t_up
    new_region = unique_region()
    with rig.gw.client(tokens["trader"]) as c:
        r = c.post("/v1/orders/availabilities", json=availability("gcs-new", new_region))
    assert r.status_code == 201, r.text  # a new shard actor: the GCS answers again
    load.stop()
    assert load.bad == [] and load.retried == []
    _assert_exactly_once(rig, f"{region}.cotton", [load])
    assert f"{new_region}.cotton" in _host_nodes(rig)


def test_hosted_shard_moves_live_and_fails_over(
    td_cluster: ClusterRig,  # noqa: F811
    tokens: dict[str, str],
) -> None:
    """A shard inside a shared host (region mode): a live move to the other matching node under load
    refuses nothing; then that node dies and the shard opens again in its restarted host on the
    survivor; every acknowledged order is in the log exactly once."""
    from actors.shard_hosting import group_host_name

    rig = td_cluster
    sid = f"{HOSTED_REGION}.cotton"
    load = Load(rig, tokens["trader"], HOSTED_REGION, "hs-", pace_s=0.005).start()
    load.wait_acks(30)
    row = _shards(rig)[sid]
    assert row["hosting"] == "shared" and row["host"] == f"region:{HOSTED_REGION}"
    dst = rig.cluster.add_matching()  # a fresh matching node to move to (then to lose)
    assert row["node_id"] != dst.node_id
    with rig.gw.client(rig.gw.admin) as a:
        r = a.post(f"/v1/admin/shards/{sid}/move", json={"node_id": dst.node_id}, timeout=120)
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["node_id"] == dst.node_id and moved["pause_ms"] < 1000 and moved["hosting"] == "shared"
    n = len(load.acked)
    load.wait_acks(n + 20)
    assert load.retried == [] and load.bad == []  # the handover was a wait, not an error
    real = actor_nodes(rig.gw.namespace)
    assert real[group_host_name(f"region:{HOSTED_REGION}", dst.node_id)] == dst.node_id

    t_kill = rig.cluster.kill_node(dst)
    n = len(load.acked)
    load.wait_acks(n + 20, timeout=90)
    load.stop()
    assert load.bad == [] and [t for t in load.acked.values() if t > t_kill]
    assert {p for _t, _s, p in load.retried} <= {
        "urn:tradedesk:problem:unavailable",
        "urn:tradedesk:problem:outcome-unknown",
    }
    _assert_exactly_once(rig, sid, [load])
    row = _shards(rig)[sid]
    assert row["status"] == "UP" and row["node_id"] != dst.node_id and row["start_kind"] == "restart"
