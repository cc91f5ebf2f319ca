"""Commands cross the gateway -> shard process boundary pickled (Ray); each command class pickles
its field values as constructor arguments (actors/core/commands.py). Round trips keep every field."""

from __future__ import annotations

import copy
import pickle

import cloudpickle

from actors.core.commands import COMMAND_TYPES, AmendOrder, PlaceOrder, Tick
from bench.shard import make_orders


def test_every_command_class_pickles_by_its_fields() -> None:
    for cls in COMMAND_TYPES.values():
        assert "__reduce__" in vars(cls), cls.__name__


def test_place_orders_round_trip_with_every_field() -> None:
    full = PlaceOrder(
        7, "B-1", "c-9", "BUY", "cotton", "IN-GJ", 17_000, 15_200, 22.3, 70.8,
        quality={"micronaire": 4.1}, quality_ranges={"micronaire": (3.5, 4.9)},
        quality_target={"micronaire": 4.2}, city="Rajkot", district="Rajkot", max_distance_km=250.0,
        visibility="ALLOW_LIST", allow_list=("S-1", "S-2"), min_order_kg=1_700, allow_partial=False,
        valid_until=99,
    )  # fmt: skip
    batch = [full, *make_orders("IN-GJ", "cotton", 50)]
    for back in (pickle.loads(pickle.dumps(batch, 5)), cloudpickle.loads(cloudpickle.dumps(batch))):
        assert back == batch
        assert [type(c) for c in back] == [PlaceOrder] * 51
    assert copy.deepcopy(full) == full and copy.copy(full) == full


def test_commands_with_defaults_round_trip() -> None:
    for cmd in (Tick(5), AmendOrder(1, "S-1", "O-1", price=15_000)):
        assert pickle.loads(pickle.dumps(cmd)) == cmd
