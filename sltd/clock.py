"""Injected time. Every timestamp and deadline in sltd comes from a clock object, so tests
can drive an hour-long validation window in microseconds and never sleep. A clock may
also give ``timestamp()``, the same time in seconds since the epoch: checks read that
(``time.time()`` takes 0.06 µs, ``datetime.now`` 0.4 µs, on a path of ~3 µs).

Example:
    >>> import datetime as dt
    >>> c = ManualClock(dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.UTC))
    >>> c.advance(minutes=45).isoformat()
    '2026-01-02T00:15:00+00:00'
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` returning an aware UTC datetime (and, optionally,
    ``timestamp()``: see :func:`timestamp_of`)."""

    def now(self) -> dt.datetime: ...


def timestamp_of(clock: Clock) -> Callable[[], float]:
    """The clock's ``timestamp`` method, or ``now().timestamp()`` for a clock without
    one.

    Example:
        >>> timestamp_of(ManualClock(dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC)))()
        60.0
    """
    fast = getattr(clock, "timestamp", None)
    return fast if callable(fast) else (lambda: clock.now().timestamp())


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    timestamp = staticmethod(time.time)


class ManualClock:
    """A clock that moves only when told to (for tests and simulations)."""

    def __init__(self, start: dt.datetime):
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime (UTC)")
        self._now = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    def advance(self, **delta: float) -> dt.datetime:
        """Move forward by a timedelta given as keywords (``minutes=61``)."""
        self._now += dt.timedelta(**delta)
        return self._now
