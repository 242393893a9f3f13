"""The audit trail records every action and detects any tampering."""

import datetime as dt
import threading
import time

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sltd import Record, ValidationError, audit, open_index, store
from sltd.alerts import MemorySink, Router
from sltd.audit import (
    _CHECK,
    GENESIS,
    AuditLog,
    AuditReport,
    batch_hash,
    chained_hash,
    entry_digest,
    verify,
)
from sltd.database import Database


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
    assert rows[0][4] == ("1 rows read, 1 inserted, 0 updated, 0 unchanged, 0 rejected; "
                          "list version 1")
    # a check's result says the list version that answered it
    assert rows[1][1:] == ("A", "DEU", "Q0000001 P FRA", "miss; list version 1")
    assert rows[2][4] == "exact 1; list version 1"
    assert rows[8][1:] == ("C", None, "validation_window_minutes", "(unset) -> 30")
    assert rows[9][3:] == ("home_ncb", "(unset) -> DEU")
    assert rows[10][1:] == ("D", "DEU", "X1234567 P FRA", "recovered; list version 2")
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
    assert log._checks[3::len(_CHECK)] == ["Q0000001", "Q0000002"]  # the numbers, in order
    ix.close()


@pytest.mark.parametrize("copies", [1, 10])  # 4 documents (parameters), 40 (Arrow)
def test_a_batch_check_is_audited_as_its_documents_checked_one_by_one(tmp_path, copies):
    ix = open_index(str(tmp_path / "m.duckdb"), create=True)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen"), Record("X1234567", "I", "DEU", "lost")])
    documents = [("Q0000001", "P", "FRA"), ("X1234567", None, None), ("??", "P", None),
                 ("XI234567", "P", "FRA")] * copies
    seq0 = ix._db.cursor().execute("SELECT max(seq) FROM audit").fetchall()[0][0]
    ix.check("Q0000009", "P", "FRA", ncb="DEU", officer="K. Weber")  # before, in the buffer
    ix.check_many(documents, ncb="DEU", officer="K. Weber")
    for doc in documents:
        try:
            ix.check(*doc, ncb="DEU", officer="K. Weber")
        except ValidationError:
            pass  # refused before it is checked: not audited
    ix._s.audit.flush()
    rows = ix._db.cursor().execute(
        "SELECT actor, ncb, action, subject, result FROM audit WHERE seq > ? ORDER BY seq",
        [seq0]).fetchall()
    assert rows[0][3] == "Q0000009 P FRA"  # written in the order the checks were made
    n = len(documents)
    batch, single = rows[1:n + 1], rows[n + 1:]
    assert [r[3] for r in batch] == [f"{a} {b} {c}" for a, b, c in documents]
    assert {r[:3] for r in batch} == {("K. Weber", "DEU", "check")}
    v = f"; list version {ix.list_version.version}"
    assert [r[4] for r in batch][:4] == [f"miss{v}", f"partial 2{v}", f"refused{v}",
                                         f"near 1{v}"]
    # the single checks audit the same subjects and results (a refused one is not a check)
    assert [r for r in batch if not r[4].startswith("refused")] == single
    assert ix.verify_audit().ok
    ix.close()


def test_a_rolled_back_write_gives_back_the_batches_it_took(tmp_path):
    ix = open_index(str(tmp_path / "r.duckdb"), create=True)
    log: AuditLog = ix._s.audit
    ix.check_many([("Q0000001", "P", "FRA"), ("Q0000002", "P", "FRA")])

    def failing_write():
        with ix._db.write(on_rollback=log.invalidate) as con:
            log.write_pending(con)
            raise RuntimeError("the write fails")

    with pytest.raises(RuntimeError):
        failing_write()
    log.flush()
    subjects = [r[0] for r in ix._db.cursor().execute(
        "SELECT subject FROM audit WHERE action = 'check' ORDER BY seq").fetchall()]
    assert subjects == ["Q0000001 P FRA", "Q0000002 P FRA"]  # written once, after the failure
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


# --- batches: one hash per write, and still the first changed entry is named ------------

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
CHAINED = 4  # entries in the per-entry format sltd wrote before schema version 3
BATCHES = (3, 1, 4, 2, 5)  # then a batch per write, of these sizes
COLUMNS = ("logged_at", "actor", "ncb", "action", "subject", "result")


def _chained_rows(n):
    """Entries as the previous release wrote them: each chained to the one before."""
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        at = T0 + dt.timedelta(seconds=seq)
        fields = (f"officer {seq}", "DEU", "check", f"Q{seq:07d} P FRA", "miss")
        h = chained_hash(prev, seq, at, *fields)
        rows.append((seq, at.replace(tzinfo=None), *fields, prev, h))
        prev = h
    return rows


@pytest.fixture(scope="module")
def trail():
    """The rows of a trail of CHAINED old entries, then BATCHES (checks, and in every other
    batch a reveal that closes it), each entry different from every other."""
    db = Database.open(":memory:")
    with db.write() as con:
        store.create_schema(con, T0)
        con.executemany("INSERT INTO audit (seq, logged_at, actor, ncb, action, subject, "
                        "result, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        _chained_rows(CHAINED))
    log = AuditLog(db, buffer_size=10**6)
    seq = CHAINED
    for i, size in enumerate(BATCHES):
        checks = size - 1 if i % 2 else size
        for _ in range(checks):
            seq += 1
            log.record_check((T0 + dt.timedelta(seconds=seq)).timestamp(), f"officer {seq}",
                             "DEU", f"X{seq:07d}", "P" if seq % 3 else None, "FRA", "miss")
        if i % 2:
            seq += 1
            with db.write() as con:
                log.write(con, T0 + dt.timedelta(seconds=seq), "reveal", actor="K. Weber",
                          ncb="DEU", subject=f"h{seq}", result="c1")
        else:
            log.flush()
    cur = db.cursor()
    tables = {t: cur.sql(f"SELECT * FROM {t}").to_arrow_table()
              for t in ("audit", "audit_batches")}
    db.release()
    return tables


def _load(tables):
    con = duckdb.connect()
    con.execute(store.SCHEMA)
    for name, table in tables.items():
        con.register("_rows", table)
        con.execute(f"INSERT INTO {name} SELECT * FROM _rows")
        con.unregister("_rows")
    return con


def _batch_ranges(con):
    return con.execute("SELECT first_seq, last_seq FROM audit_batches ORDER BY 1").fetchall()


def test_the_trail_is_old_entries_then_batches_and_verifies(trail):
    con = _load(trail)
    n = CHAINED + sum(BATCHES)
    assert verify(con) == AuditReport(n)
    first = CHAINED + 1
    ranges = []
    for size in BATCHES:
        ranges.append((first, first + size - 1))
        first += size
    assert _batch_ranges(con) == ranges
    assert con.execute("SELECT count(*) FROM audit WHERE prev_hash IS NULL").fetchall() \
        == [(sum(BATCHES),)]


def _batched(con):
    return con.execute("SELECT seq, logged_at, actor, ncb, action, subject, result, digest "
                       "FROM audit WHERE prev_hash IS NULL ORDER BY seq").fetchall()


def test_digests_and_batch_hashes_are_what_the_reference_functions_say(trail):
    con = _load(trail)
    rows = {r[0]: r for r in _batched(con)}
    assert all(entry_digest(*r[:-1]) == r[-1] for r in rows.values())
    prev = _chained_rows(CHAINED)[-1][-1]  # the first batch links to the last chained entry
    for first, last, prev_hash, h in con.execute(
            "SELECT * FROM audit_batches ORDER BY first_seq").fetchall():
        assert prev_hash == prev
        assert h == batch_hash(prev, [rows[s][:-1] for s in range(first, last + 1)])
        prev = h


text = st.one_of(st.none(), st.text(max_size=12),
                 st.sampled_from(["", "-", "3:abc", "a\x1fb", "\\N", "é", "😀"]))


@given(st.lists(st.tuples(text, text, st.text(min_size=1, max_size=8), text, text),
                min_size=1, max_size=5))
def test_any_text_is_digested_and_hashed_as_the_references_do(entries):
    db = Database.open(":memory:")
    with db.write() as con:
        store.create_schema(con, T0)
    log = AuditLog(db)
    with db.write() as con:
        for i, (actor, ncb, action, subject, result) in enumerate(entries):
            log.record(T0 + dt.timedelta(microseconds=i), action, actor=actor, ncb=ncb,
                       subject=subject, result=result)
        log.write_pending(con)
    rows = _batched(db.cursor())
    sealed = db.cursor().execute("SELECT hash FROM audit_batches").fetchall()
    db.release()
    assert [r[2:7] for r in rows] == entries
    assert [r[-1] for r in rows] == [entry_digest(*r[:-1]) for r in rows]
    assert sealed == [(batch_hash(GENESIS, [r[:-1] for r in rows]),)]


def test_length_prefixes_keep_text_from_moving_between_fields():
    at = T0
    assert entry_digest(1, at, "a", "bc", "check", None, None) \
        != entry_digest(1, at, "ab", "c", "check", None, None)
    assert entry_digest(1, at, "", None, "check", None, None) \
        != entry_digest(1, at, None, "", "check", None, None)


N = CHAINED + sum(BATCHES)
seqs = st.integers(1, N)


def _tamper_content(con, k, column):
    value = ("TIMESTAMP '2020-01-01'" if column == "logged_at" else
             f"coalesce({column}, '') || 'x'")
    con.execute(f"UPDATE audit SET {column} = {value} WHERE seq = ?", [k])


def _swap(con, k, j, columns):
    sets = ", ".join(f"{c} = o.{c}" for c in columns)
    con.execute(f"""UPDATE audit SET {sets} FROM (
        SELECT seq, {', '.join(columns)} FROM audit WHERE seq IN ($k, $j)) o
        WHERE audit.seq IN ($k, $j) AND o.seq = $k + $j - audit.seq""", {"k": k, "j": j})


@given(seqs, st.sampled_from(COLUMNS))
def test_a_changed_entry_is_named_in_either_format(trail, k, column):
    con = _load(trail)
    _tamper_content(con, k, column)
    report = verify(con)
    assert (report.first_broken, report.reason) == (k, "content does not match its hash")


@given(seqs)
def test_a_deleted_entry_is_named_even_the_last(trail, k):
    con = _load(trail)
    con.execute("DELETE FROM audit WHERE seq = ?", [k])
    report = verify(con)
    assert report.first_broken == k
    assert report.reason.startswith(f"entry {k} is missing")


@given(seqs, seqs)
def test_two_entries_swapped_name_the_earlier(trail, k, j):
    con = _load(trail)
    k, j = sorted((k, j))
    _swap(con, k, j, [*COLUMNS, "prev_hash", "hash", "digest"])
    report = verify(con)
    assert report.first_broken == (None if k == j else k)


@given(seqs, seqs)
def test_two_entries_renumbered_into_each_others_place_name_the_earlier(trail, k, j):
    con = _load(trail)
    k, j = sorted((k, j))
    con.execute("UPDATE audit SET seq = $k + $j - seq WHERE seq IN ($k, $j)", {"k": k, "j": j})
    report = verify(con)
    assert report.first_broken == (None if k == j else k)


@given(seqs)
def test_an_entry_deleted_and_the_rest_renumbered_is_named(trail, k):
    con = _load(trail)
    con.execute("DELETE FROM audit WHERE seq = ?", [k])
    con.execute("UPDATE audit SET seq = seq - 1 WHERE seq > ?", [k])
    assert verify(con).first_broken == k


@given(seqs, st.booleans())
def test_an_inserted_entry_is_named(trail, k, renumber):
    con = _load(trail)
    if renumber:  # make room: every later entry moves up one
        con.execute("UPDATE audit SET seq = seq + 1 WHERE seq >= ?", [k])
    con.execute("INSERT INTO audit SELECT ?, logged_at, 'eve', ncb, action, subject, result, "
                "prev_hash, hash, digest FROM audit WHERE seq = ?", [k, k + 1 if renumber else k])
    report = verify(con)
    assert report.first_broken == k
    if not renumber:
        assert report.reason == f"entry {k} is stored more than once"


def test_an_entry_added_after_the_last_batch_is_named(trail):
    con = _load(trail)
    at = T0.replace(tzinfo=None)
    con.execute("INSERT INTO audit VALUES (?, ?, 'eve', NULL, 'check', 'X P FRA', 'miss', "
                "NULL, NULL, ?)", [N + 1, at, entry_digest(N + 1, at, "eve", None, "check",
                                                           "X P FRA", "miss")])
    assert verify(con) == AuditReport(N + 1, N + 1, f"entry {N + 1} is in no batch")


@pytest.mark.parametrize("k", [CHAINED + 2, N])
def test_an_entry_rewritten_with_its_digest_is_found_by_its_batch(trail, k):
    con = _load(trail)
    con.execute("UPDATE audit SET actor = 'eve' WHERE seq = ?", [k])
    row = con.execute("SELECT seq, logged_at, actor, ncb, action, subject, result FROM audit "
                      "WHERE seq = ?", [k]).fetchall()[0]
    con.execute("UPDATE audit SET digest = ? WHERE seq = ?", [entry_digest(*row), k])
    first, last = next(r for r in _batch_ranges(con) if r[0] <= k <= r[1])
    report = verify(con)
    assert report.first_broken == first
    assert report.reason.startswith(f"entries {first}..{last} do not match their batch hash")


def test_an_old_entry_rewritten_with_its_hash_breaks_the_link_after_it(trail):
    con = _load(trail)
    rows = {r[0]: r for r in _chained_rows(CHAINED)}
    seq, at, _, *fields, prev, _ = rows[CHAINED]
    con.execute("UPDATE audit SET actor = 'eve', hash = ? WHERE seq = ?",
                [chained_hash(prev, seq, at, "eve", *fields), seq])
    report = verify(con)
    assert report.first_broken == CHAINED + 1  # the first batch links to the old hash
    assert report.reason.startswith("link of batch")


@pytest.mark.parametrize(("change", "reason"), [
    ("UPDATE audit_batches SET hash = 'f' || hash[2:] WHERE first_seq = {f}",
     "do not match their batch hash"),
    ("UPDATE audit_batches SET prev_hash = 'f' || prev_hash[2:] WHERE first_seq = {f}",
     "to the one before does not match"),
    ("DELETE FROM audit_batches WHERE first_seq = {f}", "are in no batch"),
    ("UPDATE audit_batches SET first_seq = first_seq - 1 WHERE first_seq = {f}",
     "overlaps the one before"),
])
def test_a_changed_batch_is_named_by_its_first_entry(trail, change, reason):
    con = _load(trail)
    f = _batch_ranges(con)[2][0]
    con.execute(change.format(f=f))
    report = verify(con)
    assert report.first_broken in (f, f - 1)
    assert reason in report.reason


# --- the large-batch path computes what the references compute ------------------------

check_text = st.one_of(st.sampled_from(["", "K. Weber", "é", "a\x1fb"]), st.text(max_size=20))


@given(st.lists(st.tuples(check_text, check_text, st.text(min_size=1, max_size=24),
                          st.sampled_from([None, "P", "I"]), st.sampled_from([None, "FRA"]),
                          check_text, st.one_of(st.none(), st.integers(0, 2**62))),
                min_size=1, max_size=40))
def test_checks_are_formatted_alike_in_arrow_and_in_python(checks):
    flat = [v for i, c in enumerate(checks)
            for v in ((T0 + dt.timedelta(microseconds=i)).timestamp(), *c)]
    table = audit._checks_table(flat, 5)
    assert audit._rows(table) == [
        (seq, at.replace(tzinfo=None), *rest) for seq, at, *rest in audit._check_rows(flat, 5)]


@given(st.lists(st.tuples(check_text, check_text, st.text(min_size=1, max_size=24),
                          st.sampled_from([None, "P"]), st.sampled_from([None, "FRA"]),
                          check_text, st.one_of(st.none(), st.integers(0, 2**62))),
                min_size=audit._SMALL + 1, max_size=60),
       st.lists(st.tuples(text, text, st.text(min_size=1, max_size=8), text, text),
                max_size=3))
def test_a_large_batch_stores_the_digests_and_hash_the_references_give(checks, entries):
    db = Database.open(":memory:")
    with db.write() as con:
        store.create_schema(con, T0)
    log = AuditLog(db, buffer_size=10**6)
    for i, check in enumerate(checks):
        log.record_check((T0 + dt.timedelta(microseconds=i)).timestamp(), *check)
    with db.write() as con:
        for actor, ncb, action, subject, result in entries:
            log.record(T0, action, actor=actor, ncb=ncb, subject=subject, result=result)
        log.write_pending(con)
    rows = _batched(db.cursor())
    sealed = db.cursor().execute("SELECT * FROM audit_batches").fetchall()
    report = verify(db.cursor())
    db.release()
    assert len(rows) == len(checks) + len(entries) > audit._SMALL
    assert [r[-1] for r in rows] == [entry_digest(*r[:-1]) for r in rows]
    assert sealed == [(1, len(rows), GENESIS, batch_hash(GENESIS, [r[:-1] for r in rows]))]
    assert report == AuditReport(len(rows))


def test_a_slice_of_a_table_hashes_as_its_rows_do(trail):
    con = _load(trail)
    table = con.sql("SELECT seq, logged_at, actor, ncb, action, subject, result FROM audit "
                    "ORDER BY seq").to_arrow_table()
    table = pa.concat_tables([table] * 3)  # several chunks, more rows than _SMALL
    part = table.slice(7, 40)
    assert part.num_rows > audit._SMALL
    assert audit._table_hash(GENESIS, part) == batch_hash(GENESIS, audit._rows(part))


# --- the writer thread: checks never write, nothing is lost --------------------------------


def _log_on_file(tmp_path, buffer_size):
    db = Database.open(tmp_path / "w.duckdb", create=True)
    with db.write() as con:
        store.create_schema(con, T0)
    return db, AuditLog(db, buffer_size=buffer_size)


def _record(log, n, start=0):
    for i in range(start, start + n):
        log.record_check((T0 + dt.timedelta(microseconds=i)).timestamp(), "A", "DEU",
                         f"X{i:07d}", "P", "FRA", "miss")


def test_a_check_that_fills_the_buffer_never_waits_behind_a_write(tmp_path):
    db, log = _log_on_file(tmp_path, buffer_size=10)
    held, release = threading.Event(), threading.Event()

    def long_write():
        with db.write():
            held.set()
            release.wait(10)

    loader = threading.Thread(target=long_write)
    loader.start()
    held.wait(10)
    start = time.monotonic()
    _record(log, 100)  # fills the buffer ten times over while the write holds the lock
    assert time.monotonic() - start < 1
    release.set()
    loader.join()
    log.flush()  # waits for the writer thread's write, then writes the rest
    assert verify(db.cursor()) == AuditReport(100)
    db.release()


def test_the_writer_thread_writes_full_buffers_and_stops_on_close(tmp_path):
    db, log = _log_on_file(tmp_path, buffer_size=20)
    _record(log, 50)
    writer = log._thread
    assert writer is not None
    deadline = time.monotonic() + 10
    while not _written(db) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _written(db) >= 20  # by the writer thread: no flush was asked for
    assert writer.is_alive()
    db.release()  # closes the log: the thread ends, what is left is written
    assert not writer.is_alive()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert verify(con) == AuditReport(50)
    con.close()


def _written(db):
    return db.cursor().execute("SELECT count(*) FROM audit").fetchall()[0][0]


def test_a_failed_background_write_is_reported_retried_and_loses_no_check(
        tmp_path, monkeypatch, capfd):
    db, log = _log_on_file(tmp_path, buffer_size=20)
    monkeypatch.setattr(audit, "RETRY_SECONDS", 0.01)
    real, failures = audit._table_hash, []

    def failing_once(*args):
        if not failures:
            failures.append(1)
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(audit, "_table_hash", failing_once)
    _record(log, 30)  # the first write fails and rolls back; its checks go back
    deadline = time.monotonic() + 10
    while log._checks and time.monotonic() < deadline:
        _record(log, 1, start=1000 + len(log._checks))  # fills it again: a retry
        time.sleep(0.01)
    log.flush()
    assert "writing the audit buffer failed (OSError: disk full)" in capfd.readouterr().err
    report = verify(db.cursor())
    assert report.ok
    assert report.entries >= 30
    db.release()
