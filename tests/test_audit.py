"""The audit trail records every action and detects any tampering."""

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sltd import Record, open_index
from sltd.alerts import MemorySink, Router


def busy_index(path):
    ix = open_index(path, create=True)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    ix.check("Q0000001", "P", "FRA", ncb="DEU", officer="A")
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU", officer="A")[0]
    case = ix.reveal(hit.hit_id, officer="A", ncb="DEU").case_id
    ix.deliver_alerts(Router({"*": MemorySink()}))
    ix.confirm(case, officer="B")
    return ix


def test_every_change_check_reveal_decision_and_delivery_is_recorded(tmp_path):
    ix = busy_index(str(tmp_path / "a.duckdb"))
    ix.set_validation_window(30, officer="C")
    ix.set_home_ncb("DEU", officer="C")
    ix.withdraw("X1234567", "P", "FRA", reason="recovered", officer="D")
    report = ix.verify_audit()
    rows = ix._db.cursor().execute(
        "SELECT action, actor, ncb, subject, result FROM audit ORDER BY seq").fetchall()
    actions = [r[0] for r in rows]
    assert actions == ["load", "check", "check", "reveal", "deliver", "deliver", "deliver",
                       "confirm", "setting", "setting", "withdraw"]
    assert rows[0][4] == "1 rows read, 1 inserted, 0 updated, 0 unchanged, 0 rejected"
    assert rows[1][1:] == ("A", "DEU", "Q0000001 P FRA", "miss")
    assert rows[2][4] == "exact 1"
    assert rows[8][1:] == ("C", None, "validation_window_minutes", "(unset) -> 30")
    assert rows[9][3:] == ("home_ncb", "(unset) -> DEU")
    assert rows[10][1:] == ("D", "DEU", "X1234567 P FRA", "recovered")
    assert report.ok
    assert report.entries == 11
    ix.close()


@given(st.integers(1, 8), st.sampled_from(["actor", "result", "subject", "logged_at"]))
def test_tampering_with_any_entry_is_detected_at_that_entry(k, column):
    ix = busy_index(":memory:")
    ix.verify_audit()
    value = "TIMESTAMP '2020-01-01'" if column == "logged_at" else "'forged'"
    ix._db.cursor().execute(f"UPDATE audit SET {column} = {value} WHERE seq = ?", [k])
    report = ix.verify_audit()
    assert (report.ok, report.first_broken) == (False, k)


def test_a_deleted_entry_is_named(tmp_path):
    path = str(tmp_path / "d.duckdb")
    busy_index(path).close()
    con = duckdb.connect(path)
    con.execute("DELETE FROM audit WHERE seq = 3")
    con.close()
    with open_index(path) as ix:
        report = ix.verify_audit()
    assert report.first_broken == 3
    assert "missing" in report.reason


def test_a_rolled_back_write_does_not_break_the_chain(monkeypatch):
    from sltd import workflow

    ix = busy_index(":memory:")
    hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]

    def fail(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(workflow, "_queue", fail)
    ix.upsert([Record("Y1234567", "P", "FRA", "stolen")])
    hit = ix.check("Y1234567", "P", "FRA", ncb="DEU")[0]
    import pytest

    with pytest.raises(RuntimeError):
        ix.reveal(hit.hit_id, officer="A", ncb="DEU")
    monkeypatch.undo()
    ix.reveal(hit.hit_id, officer="A", ncb="DEU")
    assert ix.verify_audit().ok


def test_checks_buffered_before_a_failed_write_stay_in_the_trail(tmp_path, monkeypatch):
    from sltd.synth import synth_records

    ix = open_index(str(tmp_path / "a.duckdb"), create=True)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    for _ in range(5):
        ix.check("Q0000001", "P", "FRA", ncb="DEU", officer="A")

    def boom(*_, **__):
        raise OSError("disk full")

    monkeypatch.setattr("sltd.loader.write_rejects", boom)
    with pytest.raises(OSError, match="disk full"):  # rolls the load back, audit entry too
        ix.load(synth_records(20, seed=4), rejects=tmp_path / "r.csv")
    monkeypatch.undo()
    ix.check("Q0000002", "P", "FRA", ncb="DEU", officer="A")
    report = ix.verify_audit()
    actions = [r[0] for r in ix._db.cursor().execute(
        "SELECT action FROM audit ORDER BY seq").fetchall()]
    ix.close()
    assert report.ok
    assert actions == ["load", *["check"] * 6]  # no failed load, and no check lost


def test_a_rolled_back_transaction_that_flushed_twice_gives_back_every_check(tmp_path):
    from sltd.audit import AuditLog

    ix = open_index(str(tmp_path / "b.duckdb"), create=True)
    log: AuditLog = ix._s.audit
    ix.check("Q0000001", "P", "FRA")
    def failing_write():
        with ix._db.write(on_rollback=log.invalidate) as con:
            log.write_pending(con)  # takes the first check
            ix.check("Q0000002", "P", "FRA")
            log.write_pending(con)  # takes the second, same transaction
            raise RuntimeError("the write fails")

    with pytest.raises(RuntimeError):
        failing_write()
    assert [c[3] for c in log._checks] == ["Q0000001", "Q0000002"]
    ix.close()


def test_failed_writes_after_a_committed_one_write_no_check_twice(tmp_path):
    from sltd import RecordNotFound

    ix = open_index(str(tmp_path / "c.duckdb"), create=True)
    ix.check("Q0000001", "P", "FRA")
    ix.upsert([Record("X1234567", "P", "FRA", "stolen")])  # commits the buffered check
    for _ in range(3):
        with pytest.raises(RecordNotFound):
            ix.withdraw("Y7654321", "P", "FRA")  # rolls back
    assert ix.verify_audit().ok
    checks = ix._db.cursor().execute(
        "SELECT count(*) FROM audit WHERE action = 'check'").fetchall()[0][0]
    ix.close()
    assert checks == 1
