"""End to end: ``tradedesk serve`` as a real process on a fresh database (the machine's PostgreSQL and
Redis), a slice of the real cotton data through ``tradedesk replay`` as another process, a clean
SIGTERM shutdown, then checks in PostgreSQL:

- every allocation within both orders' quantity, at a price between the sell and buy limits (the
  resting order's price), and inside the requirement's hard filters (quality ranges, distance,
  no self-trade, same commodity and shard);
- per-shard event logs gap-free (seq 1..n);
- projections (orders, allocations) equal to the state rebuilt by applying the events in order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, create_database, drop_database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
COTTON = ROOT / "data" / "agmarknet" / "trinetra_cotton_2025-11_2026-01.csv"
ROWS = int(os.environ.get("TRADEDESK_E2E_ROWS", "250"))
BOTH_REPORT = ROOT / "tests" / "unit" / "data" / "maharashtra_cotton_both_price_and_arrival.csv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tradedesk() -> list[str]:
    exe = Path(sys.executable).with_name("tradedesk")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gateway.cli"]


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tradedesk serve exited early with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError("tradedesk serve did not become ready")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run serve + replay + shutdown; yield (dsn, replay summary, serve terminal output, exit code,
    single-commodity replay summary, serve data dir)."""
    try:
        name, dsn = create_database()
    except Exception as exc:  # no PostgreSQL on this machine
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    if not _redis_reachable(REDIS_URL):
        drop_database(name)
        pytest.skip("Redis not reachable")
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    key_file = tmp / "admin.key"
    env = {
        **os.environ,
        "TRADEDESK_DATABASE_URL": dsn,
        "TRADEDESK_REDIS_URL": REDIS_URL,
        "TRADEDESK_DATA_DIR": str(tmp),
        "TRADEDESK_PORT": str(port),
        "TRADEDESK_HOST": "127.0.0.1",
        "TRADEDESK_RAY_NAMESPACE": f"tde2e{port}",
        # matching and logs are under test here (test_serve_ml.py covers the ML tier): no first-start
        # training, and a registry of its own rather than one on the shared PostgreSQL server
        "TRADEDESK_RISK_ML_BOOTSTRAP": "false",
        "TRADEDESK_MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
    }
    env.pop("TRADEDESK_RAY_ADDRESS", None)
    log_path = tmp / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [*_tradedesk(), "serve", "--num-cpus", "2", "--admin-key-file", str(key_file)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(base, serve)
            assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
            token = key_file.read_text().strip()
            rep = subprocess.run(
                [*_tradedesk(), "replay", str(COTTON), "--gateway", base, "--api-key-file", str(key_file),
                 "--limit", str(ROWS), "--json"],
                env=env, cwd=ROOT, capture_output=True, timeout=600,
            )  # fmt: skip
            assert rep.returncode == 0, rep.stderr.decode()[-3000:]
            summary = json.loads(rep.stdout.decode().strip().splitlines()[-1])
            (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
            # a state's single-commodity portal report (no Commodity column), named on the command line
            rep = subprocess.run(
                [*_tradedesk(), "replay", str(BOTH_REPORT), "--commodity", "cotton", "--gateway", base,
                 "--api-key-file", str(key_file), "--json"],
                env=env, cwd=ROOT, capture_output=True, timeout=300,
            )  # fmt: skip
            assert rep.returncode == 0, rep.stderr.decode()[-3000:]
            single = json.loads(rep.stdout.decode().strip().splitlines()[-1])
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGTERM)
            try:
                code = serve.wait(timeout=180)
            except subprocess.TimeoutExpired:
                serve.kill()
                code = serve.wait()
    text = log_path.read_text(errors="replace")
    assert token not in text, "the admin key must never be logged"
    try:
        yield dsn, summary, text, code, single, tmp
    finally:
        drop_database(name)


def _fetch(dsn: str, sql: str) -> list[dict[str, Any]]:
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql)
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def test_replay_summary_and_clean_shutdown(replayed: Any) -> None:
    dsn, summary, log, code, single, _ = replayed
    assert code == 0, log[-3000:]
    assert "stopped cleanly" in log and "drained" in log, log[-3000:]
    assert summary["rows"] == ROWS and summary["unlocated_rows"] == 0
    assert summary["orders"] == 2 * ROWS
    assert summary["accepted"] + sum(summary["rejects"].values()) == summary["orders"]
    assert summary["allocations"] > 0
    allocs = _fetch(dsn, "SELECT count(*) AS n FROM allocations")[0]["n"]
    # every acknowledged allocation is in PostgreSQL
    assert allocs == summary["allocations"] + single["allocations"]


def test_single_commodity_report_replayed_with_commodity(replayed: Any) -> None:
    single = replayed[4]
    assert single["files"][0]["layout"] == "portal-report" and single["files"][0]["rows"] == 5
    assert single["rows"] == 5 and single["unlocated_rows"] == 0
    assert single["orders"] == 10
    assert single["accepted"] + sum(single["rejects"].values()) == 10
    assert [(g["commodity"], g["state"]) for g in single["groups"]] == [("cotton", "Maharashtra")]


def test_terminal_is_quiet_and_logs_are_in_the_data_dir(replayed: Any) -> None:
    log, data_dir = replayed[2], replayed[5]
    lines = [ln for ln in log.splitlines() if ln.strip()]
    # only warnings and errors reach the terminal besides the ``tradedesk:`` lines: no access log, no
    # INFO records, no pgserver/initdb or Ray start-up output
    marks = (" INFO ", "HTTP/1.1", "initdb", "core_worker", "Token authentication", "Started Serve")
    assert [ln for ln in lines if any(m in ln for m in marks)] == []
    assert any("API docs" in ln and "/docs" in ln for ln in lines)
    assert any(f"logs        {data_dir / 'logs'}" in ln for ln in lines)
    access = (data_dir / "logs" / "access.log").read_text()
    assert '"POST /v1/orders/batch HTTP/1.1" 200' in access
    assert "Uvicorn running on" in (data_dir / "logs" / "server.log").read_text()


def test_allocations_respect_both_orders(replayed: Any) -> None:
    from actors.core.geo import haversine_km

    dsn = replayed[0]
    orders = {o["order_id"]: o for o in _fetch(dsn, "SELECT * FROM orders")}
    allocs = _fetch(dsn, "SELECT * FROM allocations")
    per_order: dict[str, int] = defaultdict(int)
    for a in allocs:
        buy, sell = orders[a["buy_order_id"]], orders[a["sell_order_id"]]
        assert buy["side"] == "BUY" and sell["side"] == "SELL"
        assert buy["shard_id"] == sell["shard_id"] == a["shard_id"]
        assert buy["commodity"] == sell["commodity"]
        assert buy["party_id"] != sell["party_id"] and a["buyer_id"] != a["seller_id"]
        assert a["quantity_kg"] > 0
        assert sell["price"] <= a["price"] <= buy["price"]
        resting = sell if a["taker_order_id"] == buy["order_id"] else buy
        assert a["price"] == resting["price"]
        bdoc, sdoc = buy["doc"], sell["doc"]
        for param, (lo, hi) in (bdoc.get("quality_ranges") or {}).items():
            v = (sdoc.get("quality") or {}).get(param)
            assert v is not None and lo <= v <= hi, (param, v, lo, hi)
        if bdoc.get("max_distance_km"):
            d = haversine_km(bdoc["lat"], bdoc["lon"], sdoc["lat"], sdoc["lon"])
            assert d <= bdoc["max_distance_km"] + 1e-6
        per_order[buy["order_id"]] += a["quantity_kg"]
        per_order[sell["order_id"]] += a["quantity_kg"]
    for oid, kg in per_order.items():
        o = orders[oid]
        assert kg <= o["quantity_kg"]
        assert kg == o["allocated_kg"]
    for o in orders.values():
        total = o["open_kg"] + o["reserved_kg"] + o["allocated_kg"] + o["cancelled_kg"] + o["expired_kg"]
        assert total == o["quantity_kg"], o["order_id"]


def test_event_logs_gap_free_and_projections_match_replayed_state(replayed: Any) -> None:
    from actors.core.engine import ShardEngine
    from actors.core.events import Event
    from actors.core.ids import SETTLEMENT_STREAM
    from actors.core.posttrade.engine import SettlementEngine
    from actors.core.posttrade.state import contract_status
    from persistence.event_store import payload_dict, stored_payload

    dsn = replayed[0]
    events = _fetch(
        dsn,
        "SELECT shard_id, seq, type, ts, body, payload::text AS payload_text, schema_version"
        " FROM events ORDER BY shard_id, seq",
    )
    assert events
    for e in events:  # MessagePack bodies (JSON for rows stored before migration 0010)
        body = e.pop("body")
        e["payload"] = payload_dict(
            stored_payload(None if body is None else bytes(body), e.pop("payload_text"))
        )
    by_shard: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_shard[e["shard_id"]].append(e)
    orders = {o["order_id"]: o for o in _fetch(dsn, "SELECT * FROM orders")}
    allocs = {a["allocation_id"]: a for a in _fetch(dsn, "SELECT * FROM allocations")}
    replayed_allocs: dict[str, dict[str, Any]] = {}
    for shard_id, evs in by_shard.items():
        assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1)), f"gap in {shard_id}"
        if shard_id == SETTLEMENT_STREAM:  # the settlement log: its replay rebuilds every contract
            settlement = SettlementEngine()
            settlement.replay(
                [Event(e["seq"], e["type"], e["ts"], e["payload"], e["schema_version"]) for e in evs]
            )
            contracts = _fetch(dsn, "SELECT contract_id, status FROM contracts")
            assert {c["contract_id"]: c["status"] for c in contracts} == {
                cid: contract_status(c, settlement.state.invoices)
                for cid, c in settlement.state.contracts.items()
            }
            continue
        region, commodity = shard_id.split(".", 1)
        eng = ShardEngine(region, commodity)
        for e in evs:
            eng.apply(Event(e["seq"], e["type"], e["ts"], e["payload"], e["schema_version"]))
            if e["type"] in ("ALLOCATED", "CONFIRMED"):
                replayed_allocs[e["payload"]["allocation_id"]] = e["payload"]
        assert eng.seq == len(evs)
        for oid, o in orders.items():
            if o["shard_id"] != shard_id:
                continue
            state = eng.get_order(oid)
            if state is None:  # closed orders may leave the in-memory book
                assert o["open_kg"] == 0 and o["reserved_kg"] == 0
                continue
            for f in (
                "quantity_kg",
                "open_kg",
                "reserved_kg",
                "allocated_kg",
                "cancelled_kg",
                "expired_kg",
                "price",
            ):
                assert int(state[f]) == int(o[f]), (oid, f, state[f], o[f])
            assert str(state["status"]) == o["status"], oid
    assert set(replayed_allocs) == set(allocs)
    for aid, p in replayed_allocs.items():
        a = allocs[aid]
        assert (a["quantity_kg"], a["price"], a["buy_order_id"], a["sell_order_id"]) == (
            p["quantity_kg"],
            p["price"],
            p["buy_order_id"],
            p["sell_order_id"],
        )
