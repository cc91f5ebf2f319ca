"""What the event store can take: checks run by the shard before a batch is committed.

PostgreSQL refuses the NUL character in ``text`` and ``jsonb`` (``\\u0000``), text that is not valid
UTF-8 (lone surrogates), ``NaN``/``Infinity`` in ``jsonb`` and integers outside ``bigint``. One such
value used to fail a whole batch's commit and every command in it. The shard therefore checks each
command with :func:`command_problem` before it reaches the engine (a command that fails is rejected
alone with :data:`UNSTORABLE` and a detail naming the field), and checks the batch's rows with
:func:`rows_problem` as a last line before sending them (a failing batch is not sent at all).
The in-memory store applies :func:`rows_problem` too, so both stores refuse the same batches.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any

from persistence.event_store import BatchRows

UNSTORABLE = "UNSTORABLE_VALUE"
"""Rejection reason of a command holding a value the event store cannot store."""

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# a JSON ``\u0000`` escape (preceded by an even number of backslashes), NUL or a lone surrogate
_BAD_JSON = re.compile(r"(?<!\\)(?:\\\\)*\\u0000|[\x00\ud800-\udfff]")
_MAX_DEPTH = 8


def text_problem(s: str) -> str | None:
    """Why the store cannot take text ``s`` (NUL or a lone surrogate), or None."""
    if "\x00" in s:
        return "contains NUL (U+0000)"
    if s.isascii() or _BAD_TEXT.search(s) is None:
        return None
    return "is not valid UTF-8 (lone surrogate)"


def value_problem(value: Any, path: str = "", depth: int = 0) -> str | None:
    """First problem in a command value (str, int, float, dict, list, tuple, dataclass), as
    ``"<path> <why>"``, or None when everything in it can be stored."""
    t = type(value)
    if t is str or isinstance(value, str):
        why = text_problem(value)
        return None if why is None else f"{path or 'value'} {why}"
    if value is None or t is bool:
        return None
    if t is int or isinstance(value, int):
        if BIGINT_MIN <= value <= BIGINT_MAX:
            return None
        return f"{path or 'value'} is outside the 64-bit integer range"
    if t is float:
        return None if math.isfinite(value) else f"{path or 'value'} is not a finite number"
    if depth >= _MAX_DEPTH:
        return f"{path or 'value'} is nested too deep"
    if isinstance(value, Mapping):
        if not value:
            return None
        for k in value:
            if isinstance(k, str) and (why := text_problem(k)) is not None:
                return f"{path or 'value'} key {why}"
        return _items_problem(((str(k), v) for k, v in value.items()), path, depth)
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            return None
        return _items_problem(((str(i), v) for i, v in enumerate(value)), path, depth)
    names = _field_names(t)
    if names:
        return _items_problem(((n, getattr(value, n)) for n in names), path, depth)
    return None


def _field_names(t: type) -> tuple[str, ...]:
    names = _FIELDS.get(t)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(t)) if dataclasses.is_dataclass(t) else ()
        _FIELDS[t] = names
    return names


_FIELDS: dict[type, tuple[str, ...]] = {}


def _items_problem(items: Iterable[tuple[str, Any]], path: str, depth: int) -> str | None:
    for name, v in items:
        why = value_problem(v, f"{path}.{name}" if path else name, depth + 1)
        if why is not None:
            return why
    return None


def command_problem(cmd: Any) -> str | None:
    """Why the store could not take the events of command ``cmd`` (a dataclass), or None.

    Fast path: the command's fields are read at once (``operator.attrgetter``) and the common values
    (ASCII text without NUL, ``bigint`` integers, finite floats, None, bools, empty containers) are
    passed with a comparison each; anything else, and any command with a problem, goes through
    :func:`value_problem`, which names the field. Both give the same answer (tests/unit/test_storable.py).
    """
    t = type(cmd)
    getter = _GETTERS.get(t)
    if getter is None:
        names = _field_names(t)
        if len(names) < 2:  # attrgetter of one name returns the value, not a tuple
            return value_problem(cmd)
        getter = _GETTERS[t] = attrgetter(*names)
    for v in getter(cmd):
        tv = type(v)
        if tv is str:
            if v.isascii() and "\x00" not in v:
                continue
        elif tv is int:
            if BIGINT_MIN <= v <= BIGINT_MAX:
                continue
        elif v is None or tv is bool:
            continue
        elif tv is float:
            if v - v == 0.0:  # finite: inf - inf and nan - nan are nan
                continue
        elif tv is dict:
            if not v or _plain_numbers(v):
                continue
        elif not v and (tv is tuple or tv is list):
            continue
        if value_problem(v) is not None:
            return value_problem(cmd)
    return None


_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _plain_numbers(d: dict[Any, Any]) -> bool:
    """Whether ``d`` maps ASCII text without NUL to finite floats (a quality reading)."""
    for k, x in d.items():
        if type(k) is not str or not k.isascii() or "\x00" in k or type(x) is not float or x - x != 0.0:
            return False
    return True


def rows_problem(rows: BatchRows) -> str | None:
    """First value in a :class:`persistence.event_store.BatchRows` that PostgreSQL would refuse:
    NUL or lone surrogates in text, ``\\u0000`` in JSON text, integers outside ``bigint``. None when
    the whole batch is storable. Cost: C substring checks per string, a regex only on suspect text."""
    for table in ("events",):
        for row in getattr(rows, table):
            for v in row:
                if type(v) is str:
                    if ("\\u0000" in v or "\x00" in v or not v.isascii()) and _BAD_JSON.search(v):
                        return f"{table}: text holds NUL or a lone surrogate"
                elif type(v) is int and not BIGINT_MIN <= v <= BIGINT_MAX:
                    return f"{table}: integer outside the 64-bit range"
    return None
