from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, settings

from sltd import ManualClock, open_index

settings.register_profile("ci", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

T0 = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def index(clock):
    ix = open_index(":memory:", create=True, clock=clock)
    yield ix
    ix.close()


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "sltd.duckdb")
