"""Reveal, hit cases, the validation deadline, escalation and decisions."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sltd import ManualClock, Record, ValidationError, open_index
from sltd.errors import CaseError, HitIdError
from sltd.model import CaseState

T0 = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)


def listed_index(path=":memory:", clock=None):
    ix = open_index(path, create=True, clock=clock or ManualClock(T0))
    ix.upsert([Record("X1234567", "P", "FRA", "stolen", owner_ncb="FRA",
                      place_of_loss="Paris CDG", date_of_loss="2025-09-30"),
               Record("UN0042771", "P", "UNO", "lost")])
    return ix


def reveal_one(ix, number="X1234567", country="FRA", ncb="DEU"):
    hit = ix.check(number, "P", country, ncb=ncb)[0]
    return ix.reveal(hit.hit_id, officer="K. Weber", ncb=ncb)


def test_reveal_shows_second_level_and_opens_a_case_with_a_one_hour_deadline():
    ix = listed_index()
    d = reveal_one(ix)
    assert (d.status.value, d.owner, d.place_of_loss) == ("stolen", "FRA", "Paris CDG")
    assert d.date_of_loss == dt.date(2025, 9, 30)
    assert (d.revealed_at, d.deadline) == (T0, T0 + dt.timedelta(hours=1))
    case = ix.case(d.case_id)
    assert (case.state, case.searching_ncb, case.officer) == (CaseState.PENDING, "DEU",
                                                              "K. Weber")


def test_every_reveal_alerts_owner_searcher_and_ccc():
    ix = listed_index()
    d = reveal_one(ix)
    alerts = ix.alerts(case_id=d.case_id)
    assert sorted((a.kind, a.recipient) for a in alerts) == [
        ("hit", "CCC"), ("hit", "owner:FRA"), ("hit", "searching:DEU")]
    assert len({a.alert_id for a in alerts}) == 3


def test_an_organisations_record_alerts_the_general_secretariat():
    ix = listed_index()
    d = reveal_one(ix, "UN0042771", "UNO")
    assert d.owner == "GS"
    assert "owner:GS" in {a.recipient for a in ix.alerts(case_id=d.case_id)}


def test_revealing_the_same_hit_again_opens_nothing_new():
    ix = listed_index()
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
    a = ix.reveal(hit.hit_id, officer="A", ncb="DEU")
    b = ix.reveal(hit.hit_id, officer="A", ncb="deu")
    assert a.case_id == b.case_id
    assert len(ix.alerts()) == 3
    assert len(ix.cases()) == 1


@given(st.integers(1, 6))
def test_each_reveal_yields_exactly_three_hit_alerts(n):
    ix = listed_index()
    for i in range(n):
        ix.upsert([Record(f"Y{i:07d}", "P", "FRA", "lost")])
        reveal_one(ix, f"Y{i:07d}")
    hit_alerts = [a for a in ix.alerts() if a.kind == "hit"]
    assert len(hit_alerts) == 3 * n
    assert all(sum(a.case_id == c.case_id for a in hit_alerts) == 3 for c in ix.cases())


def test_the_validation_window_is_configurable_per_index():
    ix = listed_index()
    ix.set_validation_window(240)
    assert reveal_one(ix).deadline == T0 + dt.timedelta(hours=4)
    with pytest.raises(ValidationError):
        ix.set_validation_window(0)


@pytest.mark.parametrize(("make_id", "ncb", "message"), [
    (lambda h: h, "FRA", "not issued to NCB FRA"),        # another NCB
    # forged / mistyped: a character of the MAC changed
    (lambda h: h[:30] + ("b" if h[30] != "b" else "c") + h[31:], "DEU", "not issued"),
    (lambda h: "hello", "DEU", "not issued"),
])
def test_only_the_searching_ncb_can_reveal_a_genuine_hit_id(make_id, ncb, message):
    ix = listed_index()
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
    with pytest.raises(HitIdError, match=message):
        ix.reveal(make_id(hit.hit_id), officer="A", ncb=ncb)
    assert ix.cases() == []
    assert ix.alerts() == []


def test_a_stale_hit_id_cannot_be_revealed():
    clock = ManualClock(T0)
    ix = listed_index(clock=clock)
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
    clock.advance(minutes=31)
    with pytest.raises(HitIdError, match="check the document again"):
        ix.reveal(hit.hit_id, officer="A", ncb="DEU")


def test_a_withdrawn_record_cannot_be_revealed():
    ix = listed_index()
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
    ix.withdraw("X1234567", "P", "FRA", reason="recovered")
    with pytest.raises(HitIdError, match="withdrawn"):
        ix.reveal(hit.hit_id, officer="A", ncb="DEU")


@pytest.mark.parametrize(("ncb", "officer", "field"), [("XYZ", "A", "ncb"),
                                                         ("DEU", "  ", "officer")])
def test_unknown_ncb_or_missing_officer(ncb, officer, field):
    ix = listed_index()
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
    with pytest.raises(ValidationError) as e:
        ix.reveal(hit.hit_id, officer=officer, ncb=ncb)
    assert e.value.field == field


def test_deadline_across_midnight_survives_a_restart_and_escalates_once(tmp_path):
    path = tmp_path / "x.duckdb"
    clock = ManualClock(T0)                       # 23:30 UTC
    with listed_index(path, clock) as ix:
        case_id = reveal_one(ix).case_id
        clock.advance(minutes=59)                 # 00:29: not yet
        assert ix.escalate_overdue() == []
    clock.advance(minutes=2)                      # 00:31 next day, new process
    with open_index(path, clock=clock) as ix:
        escalated = ix.escalate_overdue()
        assert [c.case_id for c in escalated] == [case_id]
        assert escalated[0].state is CaseState.OVERDUE
        assert ix.escalate_overdue() == []
    with open_index(path, clock=clock) as ix:    # and again after another restart
        assert ix.escalate_overdue() == []
        kinds = [a.kind for a in ix.alerts(case_id=case_id)]
        assert kinds.count("escalation") == 3


def test_a_late_answer_is_recorded_with_its_lateness():
    clock = ManualClock(T0)
    ix = listed_index(clock=clock)
    case_id = reveal_one(ix).case_id
    clock.advance(minutes=75)
    ix.escalate_overdue()
    case = ix.confirm(case_id, officer="NCB Paris duty officer")
    assert case.state is CaseState.CONFIRMED
    assert case.late_by(clock.now()) == dt.timedelta(minutes=15)
    assert case.escalated_at == T0 + dt.timedelta(minutes=75)
    closing = [a for a in ix.alerts(case_id=case_id) if a.kind == "closing"]
    assert len(closing) == 3
    assert closing[0].payload["late_by_seconds"] == 900


def test_a_closed_case_takes_no_second_decision():
    ix = listed_index()
    case_id = reveal_one(ix).case_id
    ix.reject(case_id, officer="A", reason="not this document")
    with pytest.raises(CaseError, match="already closed"):
        ix.confirm(case_id, officer="A")
    with pytest.raises(CaseError, match="no hit case"):
        ix.confirm("c000000000000", officer="A")
    with pytest.raises(ValidationError):
        ix.reject(reveal_one(ix, "UN0042771", "UNO").case_id, officer="A", reason="")
