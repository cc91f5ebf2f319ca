"""The hosting policy (actors/shard_hosting.py): which shards share a host process, and the names of
their hosts; the ``shard_hosting`` setting that feeds it."""

from __future__ import annotations

import pytest

from actors.settings import Settings
from actors.shard_hosting import HostingPolicy, group_host_name


def test_default_is_one_process_per_shard() -> None:
    p = HostingPolicy()
    assert p.mode("IN-GJ", "cotton") == "process" and p.group("IN-GJ", "cotton") is None


def test_commodity_rule_beats_region_rule_beats_default() -> None:
    p = HostingPolicy({"*": "region", "cotton": "commodity", "IN-MH": "process"})
    assert p.group("IN-MH", "cotton") == "commodity:cotton"  # the commodity's entry wins
    assert p.group("IN-MH", "wheat") is None  # then the region's
    assert p.group("IN-GJ", "wheat") == "region:IN-GJ"  # then "*"
    assert p.group("IN-GJ", "cotton") == p.group("IN-MH", "cotton")  # one host for every region


def test_no_default_rule_means_process() -> None:
    assert HostingPolicy({"cotton": "commodity"}).group("IN-GJ", "wheat") is None


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        HostingPolicy({"*": "thread"})


def test_host_names() -> None:
    assert group_host_name("commodity:cotton") == "shard-host:commodity:cotton"
    node = "ab" * 28
    assert group_host_name("region:IN-MH", node) == "shard-host:region:IN-MH@abababababab"


def test_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_SHARD_HOSTING", '{"*": "commodity", "IN-KL": "process"}')
    s = Settings()
    assert s.shard_hosting == {"*": "commodity", "IN-KL": "process"}
    assert HostingPolicy(s.shard_hosting).group("IN-KL", "pepper") is None
    monkeypatch.setenv("TRADEDESK_SHARD_HOSTING", '{"*": "threads"}')
    with pytest.raises(ValueError, match="shard_hosting"):
        Settings()
    monkeypatch.delenv("TRADEDESK_SHARD_HOSTING")
    assert Settings().shard_hosting == {"*": "process"}
