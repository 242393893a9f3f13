"""`sltd watch` as a real process: killed at any moment, it loses no alert and escalates no
case twice; SIGTERM stops it cleanly."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from sltd import Record, open_index


def start_watch(db, sink, *extra):
    """Start `sltd watch`; its stderr goes to LOG (a file, so no pipe is left open)."""
    log = db.parent / "watch.log"
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "sltd", "--db", str(db), "watch", "--sink", str(sink),
             "--interval", "0.05", *extra], stdout=subprocess.DEVNULL, stderr=err)


def make_cases(db, n):
    with open_index(db, create=True) as ix:
        ix.set_validation_window(0.02)                       # 1.2 s: overdue while we kill
        ix.upsert([Record(f"X{i:07d}", "P", "FRA", "stolen") for i in range(n)])
        for i in range(n):
            hit = ix.check(f"X{i:07d}", "P", "FRA", ncb="DEU")[0]
            ix.reveal(hit.hit_id, officer="A", ncb="DEU")
        return [c.case_id for c in ix.cases()]


def test_killing_watch_at_any_moment_loses_no_alert_and_escalates_once(tmp_path):
    db, sink = tmp_path / "w.duckdb", tmp_path / "alerts.jsonl"
    cases = make_cases(db, 4)
    rng = random.Random(7)
    for _ in range(4):
        proc = start_watch(db, sink)
        time.sleep(rng.uniform(0.6, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(1.3)                                          # every deadline has passed
    final = start_watch(db, sink, "--once")
    assert final.wait(timeout=60) == 0, (tmp_path / "watch.log").read_text()
    with open_index(db) as ix:
        outbox = ix.alerts()
        assert all(a.delivered_at is not None for a in outbox)
        for case_id in cases:
            kinds = [a.kind for a in outbox if a.case_id == case_id]
            assert sorted(kinds) == ["escalation"] * 3 + ["hit"] * 3
            n = ix._db.cursor().execute("SELECT count(*) FROM audit WHERE action = 'escalate' "
                               "AND subject = ?", [case_id]).fetchall()[0][0]
            assert n == 1
        assert ix.verify_audit().ok
    delivered = {json.loads(line)["alert_id"] for line in sink.read_text().splitlines()}
    assert delivered == {a.alert_id for a in outbox}         # at least once, none lost


def test_sigterm_stops_watch_cleanly(tmp_path):
    db = tmp_path / "t.duckdb"
    make_cases(db, 1)
    proc = start_watch(db, tmp_path / "a.jsonl")
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    log = (tmp_path / "watch.log").read_text()
    assert "watch stopped" in log
    assert "Traceback" not in log
    assert os.path.exists(tmp_path / "a.jsonl")


def test_watch_refuses_an_alert_sink_that_is_the_index_file(db_path):
    from sltd import SourceError, open_index
    from sltd import watch as watcher
    from sltd.alerts import Router

    open_index(db_path, create=True).close()
    with pytest.raises(SourceError, match="alert sink"):
        watcher.run(db_path, Router.parse([db_path]), once=True)
