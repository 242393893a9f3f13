"""Injected time. Every timestamp and deadline in sltd comes from a clock object, so tests
can drive an hour-long validation window in microseconds and never sleep.

Example:
    >>> import datetime as dt
    >>> c = ManualClock(dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.UTC))
    >>> c.advance(minutes=45).isoformat()
    '2026-01-02T00:15:00+00:00'
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` returning an aware UTC datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that moves only when told to (for tests and simulations)."""

    def __init__(self, start: dt.datetime):
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime (UTC)")
        self._now = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> dt.datetime:
        """Move forward by a timedelta given as keywords (``minutes=61``)."""
        self._now += dt.timedelta(**delta)
        return self._now
