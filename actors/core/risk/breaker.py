"""Circuit breaker (Nygard, "Release It!") guarding the ML tier of the risk engine.

States: ``CLOSED`` (calls flow), ``OPEN`` (calls are refused and decisions are rules-only) and
``HALF_OPEN`` (after ``cooldown_s`` one trial call is let through). ``failure_threshold`` failures
(errors or timeouts) within ``window_s`` seconds open the circuit; a success while half-open closes
it, a failure re-opens it for another cool-down.

Pure: the clock is injected (``clock() -> seconds``, monotonic), so tests drive time explicitly.
The numeric :attr:`CircuitBreaker.state_value` (0 closed, 1 half-open, 2 open) is what the risk pool
exports as a Prometheus gauge.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Counts failures in a sliding time window and opens after ``failure_threshold`` of them.

    Args:
        failure_threshold: K, failures within the window that open the circuit (default 5).
        window_s: the sliding window, seconds (default 10).
        cooldown_s: time spent open before a half-open trial, seconds (default 5).
        clock: monotonic seconds; ``time.monotonic`` by default.

    Usage: ``if breaker.allow(): try call; breaker.record_success() except: breaker.record_failure()``.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        window_s: float = 10.0,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        """Current state; an open circuit whose cool-down has elapsed reports ``HALF_OPEN``."""
        if self._state == BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = BreakerState.HALF_OPEN
            self._trial_in_flight = False
        return self._state

    @property
    def state_value(self) -> int:
        """0 closed, 1 half-open, 2 open (the Prometheus gauge value)."""
        return STATE_VALUES[self.state]

    def allow(self) -> bool:
        """May a call go through now? Closed: yes. Open: no. Half-open: one trial at a time."""
        state = self.state
        if state == BreakerState.CLOSED:
            return True
        if state == BreakerState.OPEN:
            return False
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        """A guarded call succeeded: a half-open circuit closes and the failure count resets."""
        if self.state != BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._failures.clear()
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A guarded call failed or timed out: half-open re-opens; closed opens at K in the window."""
        now = self._clock()
        state = self.state
        self._trial_in_flight = False
        if state == BreakerState.HALF_OPEN:
            self._open(now)
            return
        if state == BreakerState.OPEN:
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures.clear()
        self.opened_count += 1
