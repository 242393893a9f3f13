"""Loading, updating and withdrawing records (sltd.store through the Index)."""

import contextlib
import csv
import datetime as dt

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sltd import (
    IndexStateError,
    Record,
    RecordNotFound,
    SourceError,
    ValidationError,
    open_index,
)
from sltd.synth import synth_mrz, synth_records, write_table

HEADER = ("document_number,document_type,issuing_country,status,owner_ncb,place_of_loss,"
          "date_of_loss,date_of_issue,date_of_expiry\n")


def write(tmp_path, text, name="in.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def rejects_of(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_valid_rows_go_in_and_each_problem_is_reported(index, tmp_path):
    src = write(tmp_path, HEADER +
                "X1234567,P,FRA,stolen,FRA,Paris,2025-01-02,2020-01-01,2030-01-01\n"
                "Y7654321,passport,ZZZ,lost,,,,,\n"
                "bad#no,P,FRA,lost,,,,,\n"
                "Z1111111,P,DEU,misplaced,,,2025-13-01,,\n"
                "A2222222,I,D,lost,,,,2021-01-01,2020-01-01\n")
    rej = tmp_path / "rejects.csv"
    rep = index.load(src, rejects=rej)
    assert (rep.rows_read, rep.inserted, rep.rejected) == (5, 1, 4)
    got = {(r["row"], r["field"], r["value"]) for r in rejects_of(rej)}
    assert got == {
        ("2", "issuing_country", "ZZZ"),
        ("3", "document_number", "bad#no"),
        ("4", "status", "misplaced"),
        ("4", "date_of_loss", "2025-13-01"),
        ("5", "date_of_expiry", "2020-01-01"),
    }
    reasons = {r["field"]: r["reason"] for r in rejects_of(rej)}
    assert "'#'" in reasons["document_number"]
    assert "expiry is before issue" == reasons["date_of_expiry"]
    assert [h.match.value for h in index.check("X1234567", "P", "FRA")] == ["exact"]


def test_reload_is_idempotent_and_a_change_updates_with_history(index, tmp_path):
    src = write(tmp_path, HEADER + "X1234567,P,FRA,lost,,,,,\nY1234567,P,FRA,lost,,,,,\n")
    first = index.load(src)
    again = index.load(src)
    assert (first.inserted, again.inserted, again.unchanged, again.updated) == (2, 0, 2, 0)
    changed = write(tmp_path, HEADER + "X1234567,P,FRA,stolen,,,,,\n", "c.csv")
    rep = index.load(changed)
    assert (rep.inserted, rep.updated) == (0, 1)
    s = index.stats()
    assert s["records"] == 2
    assert s["by_status"] == {"lost": 1, "stolen": 1}
    assert s["history"] == {"updated": 1}


def test_duplicate_keys_in_one_file_keep_the_last_and_report_the_others(index, tmp_path):
    src = write(tmp_path, HEADER + "X1234567,P,FRA,lost,,,,,\nx123-4567,passport,fra,stolen,,,,,\n")
    rep = index.load(src)
    assert (rep.inserted, rep.rejected) == (1, 1)
    assert rep.problems[0].row == 1
    assert "row 2" in rep.problems[0].reason
    assert index.stats()["by_status"] == {"stolen": 1}


def test_malformed_csv_lines_are_rejected_with_their_line(index, tmp_path):
    src = write(tmp_path, HEADER + "X1234567,P,FRA,lost,,,,,\n"
                "Y1234567,P,FRA\n"
                "Z1234567,P,FRA,lost,,,,,\n")
    rep = index.load(src)
    assert rep.inserted == 2
    assert [(p.row, p.field) for p in rep.problems] == [(2, "(line)")]


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty file"),
    ("document_number,status\nX1234567,lost\n", "missing column"),
])
def test_unusable_files_are_refused_whole(index, tmp_path, content, message):
    with pytest.raises(SourceError, match=message):
        index.load(write(tmp_path, content))
    assert len(index) == 0


def test_missing_file_and_unknown_format(index, tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        index.load(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="cannot tell the format"):
        index.load(write(tmp_path, "x", "data.xlsx"))


def test_column_mapping(index, tmp_path):
    src = write(tmp_path, "doc_no,kind,state,why\nX1234567,P,FRA,lost\n")
    rep = index.load(src, mapping={"document_number": "doc_no", "document_type": "kind",
                                   "issuing_country": "state", "status": "why"})
    assert rep.inserted == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "arrow"])
def test_every_format_loads_the_same_records(tmp_path, fmt):
    table = synth_records(300, seed=3)
    path = tmp_path / f"r.{ {'arrow': 'arrow'}.get(fmt, fmt) }"
    write_table(table, path)
    with open_index(":memory:", create=True) as ix:
        rep = ix.load(path)
        assert (rep.inserted, rep.rejected) == (300, 0)
        assert ix.stats()["by_status"] == dict(sorted(
            {s: table.column("status").to_pylist().count(s)
             for s in set(table.column("status").to_pylist())}.items()))


def test_a_failed_load_leaves_the_index_exactly_as_it_was(db_path, tmp_path, monkeypatch):

    with open_index(db_path, create=True) as ix:
        ix.load(synth_records(50, seed=1))
        before = ix.stats()

        def boom(*a, **k):
            raise RuntimeError("disk full")

        monkeypatch.setattr("sltd.loader.write_rejects", boom)
        with pytest.raises(RuntimeError):
            ix.load(synth_records(80, seed=2), rejects=tmp_path / "r.csv")
        assert ix.stats() == before
    with open_index(db_path) as ix:
        assert ix.stats()["records"] == 50


def test_withdraw_keeps_history_and_stops_hits(index):
    index.upsert([Record("X1234567", "P", "FRA", "stolen")])
    index.withdraw("x123 4567", "passport", "fra", reason="recovered")
    assert index.check("X1234567", "P", "FRA") == []
    assert index.stats()["history"] == {"withdrawn": 1}
    with pytest.raises(RecordNotFound):
        index.withdraw("X1234567", "P", "FRA")


def test_index_survives_reopen(db_path):
    with open_index(db_path, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    with open_index(db_path) as ix:
        assert [h.match.value for h in ix.check("X1234567", "P", "FRA")] == ["exact"]


def test_opening_a_missing_index_says_how_to_create_one(tmp_path):
    from sltd import IndexStateError

    with pytest.raises(IndexStateError, match="sltd init"):
        open_index(tmp_path / "none.duckdb")


bad_cell = st.sampled_from(["", "ZZZ", "x", "2025-02-30", "passport?", "#", "  "])


@given(st.lists(st.tuples(bad_cell, bad_cell, bad_cell), min_size=1, max_size=5))
def test_rejected_rows_never_change_the_index(rows):
    with open_index(":memory:", create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        before = ix.stats()
        table = pa.table({
            "document_number": [r[0] for r in rows],
            "document_type": [r[1] for r in rows],
            "issuing_country": [r[2] for r in rows],
            "status": ["lost"] * len(rows),
        })
        rep = ix.load(table)
        assert rep.inserted == 0
        assert rep.rejected == len(rows)
        after = ix.stats()
        assert after["records"] == before["records"]
        assert after["history"] == before["history"]


def test_read_only_index_checks_without_writing(db_path):
    with open_index(db_path, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    with open_index(db_path, read_only=True) as ix:
        assert [h.match.value for h in ix.check("X1234567", "P", "FRA")] == ["exact"]
        assert ix.check("Q7654321") == []


def test_an_index_missing_newer_tables_gets_them_on_open(db_path):
    import duckdb

    with open_index(db_path, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    con = duckdb.connect(db_path)
    con.execute("DROP TABLE audit; DROP TABLE audit_batches")  # the trail came later
    con.close()
    with open_index(db_path) as ix:
        ix.check("X1234567")
        assert ix.verify_audit().ok


def test_bulk_loads_fold_unicode_white_space_as_a_record_does(index):
    places = ["a\u00a0b", "a\u2028b", "x\u3000\u3000y", "  lead  trail ", "t\tab", "n\nl"]
    index.load(pa.table({"document_number": [f"X{i:07d}" for i in range(len(places))],
                         "document_type": ["P"] * len(places),
                         "issuing_country": ["FRA"] * len(places),
                         "status": ["lost"] * len(places), "place_of_loss": places}))
    stored = [r[0] for r in index._db.cursor().execute(
        "SELECT place_of_loss FROM records ORDER BY number").fetchall()]
    assert stored == [Record(f"X{i:07d}", "P", "FRA", "lost", place_of_loss=p).place_of_loss
                      for i, p in enumerate(places)]


def test_another_applications_duckdb_database_is_never_made_an_index(tmp_path):
    path = str(tmp_path / "other.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.close()
    with pytest.raises(IndexStateError, match="not an sltd index"):
        open_index(path, create=True)
    con = duckdb.connect(path, read_only=True)
    assert [t[0] for t in con.execute("SHOW TABLES").fetchall()] == ["invoices"]
    con.close()


def test_history_shows_each_version_of_a_record_with_its_span(index, clock, tmp_path):
    """Reported stolen, then revoked, then recovered: three spans, oldest first, the last
    ended by the withdrawal with its reason; a read is audited."""
    from click.testing import CliRunner

    from sltd.cli import cli

    t0 = clock.now()
    index.upsert([Record("X1234567", "P", "FRA", "stolen")])
    t1 = clock.advance(days=3)
    index.upsert([Record("X1234567", "P", "FRA", "revoked")])
    t2 = clock.advance(days=40)
    index.withdraw("X1234567", "P", "FRA", reason="document recovered")
    versions = index.history("x123 4567", "passport", "FRA", officer="K. Weber")
    assert [(v.status.value, v.in_force_from, v.in_force_until, v.ended_by, v.reason)
            for v in versions] == [("stolen", t0, t1, "updated", None),
                                   ("revoked", t1, t2, "withdrawn", "document recovered")]
    index.upsert([Record("X1234567", "P", "FRA", "stolen_blank")])  # reported again
    assert [(v.status.value, v.in_force_until) for v in index.history(
        "X1234567", "P", "FRA")][-1] == ("stolen_blank", None)
    assert index.history("Q7654321", "P", "FRA") == []
    audited = index._db.cursor().execute(
        "SELECT actor, subject FROM audit WHERE action = 'history'").fetchall()
    assert audited[0] == ("K. Weber", "X1234567 P FRA")
    db = str(tmp_path / "h.duckdb")
    runner = CliRunner()
    with open_index(db, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        ix.withdraw("X1234567", "P", "FRA", reason="recovered")
    out = runner.invoke(cli, ["--db", db, "history", "X1234567", "--type", "P",
                              "--country", "FRA"])
    assert out.exit_code == 0, out.output
    assert "stolen" in out.output
    assert "(withdrawn: recovered)" in out.output
    never = runner.invoke(cli, ["--db", db, "history", "Q7654321", "--type", "P",
                                "--country", "FRA"])
    assert "never listed" in never.output


def test_every_committed_change_makes_the_next_list_version(tmp_path, clock):
    """A load that changes records and a withdrawal each make the next version; a load
    that changes nothing, or a refused change, makes none. A pinned view keeps answering
    from its version while the list moves on; a new process reads the version back."""
    from sltd.model import NO_VERSION

    db = str(tmp_path / "v.duckdb")
    with open_index(db, create=True, clock=clock) as ix:
        assert ix.list_version == NO_VERSION
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        assert (ix.list_version.version, ix.list_version.committed_at) == (1, clock.now())
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])  # unchanged
        with pytest.raises(RecordNotFound):
            ix.withdraw("Q1111111", "P", "FRA")
        assert ix.list_version.version == 1
        clock.advance(minutes=5)
        ix.withdraw("X1234567", "P", "FRA")
        assert (ix.list_version.version, ix.list_version.committed_at) == (2, clock.now())
        pinned = ix.pin()
        ix.upsert([Record("Y7654321", "P", "FRA", "lost")])
        assert pinned.list_version.version == 2
        assert pinned.check("Y7654321", exact_only=True) == []
        assert [h.number for h in ix.check("Y7654321", exact_only=True)] == ["Y7654321"]
        assert ix.list_version.version == 3
        found, report = ix.screen(pa.table({"document_number": ["Y7654321"]}),
                                  exact_only=True)
        assert report.list_version == 3
        assert found.column("list_version").to_pylist() == [3]  # a column of the result
        ix.set_home_ncb("DEU")
        details = ix.reveal(ix.check("Y7654321", exact_only=True)[0].hit_id, officer="A")
        assert details.list_version == ix.case(details.case_id).list_version == 3
        assert details.as_dict()["list_version"] == 3
        assert ix.stats()["list_version"]["version"] == 3
        changes = ix._db.cursor().execute(
            "SELECT version, change, records FROM list_versions ORDER BY 1").fetchall()
        assert changes == [(1, "load", 1), (2, "withdraw", 1), (3, "load", 1)]
    with open_index(db) as ix:  # another process: the version comes with the list
        assert ix.list_version.version == 3
        assert ix.pin().list_version.version == 3


# --- replay: checks answered as the list stood at a past version ----------------------

# Neighbours of one another (look-alikes, one-edit leads) in one issuer, so that loads and
# withdrawals move the near-miss policy's alphabets as well as the hits.
POOL = ["X1234567", "X12345G7", "X12345G8", "X12345G9", "X123456", "X1234568", "XI234567",
        "Y7654321", "L898902C3", "X1234S67"]
STEPS = st.lists(st.one_of(
    st.tuples(st.just("load"), st.lists(st.tuples(
        st.sampled_from(POOL), st.sampled_from(["P", "I"]),
        st.sampled_from(["stolen", "lost", "revoked"]),
        st.sampled_from([None, "2030-01-31", "2031-06-30"])), min_size=1, max_size=4)),
    st.tuples(st.just("withdraw"), st.tuples(st.sampled_from(POOL),
                                             st.sampled_from(["P", "I"])))),
    min_size=1, max_size=8)
QUERIES = [(q, "P", "FRA", e) for q in (*POOL, "X1234577", "X12E4567", "Q0000000")
           for e in (None, "2030-01-31")] + [("X1234567", None, None, None)]


def _answer(hits):
    return [(h.number, str(h.doc_type), h.country, h.match.value, round(h.score, 6),
             h.explanation, h.evidence) for h in hits]


@settings(max_examples=30)
@given(STEPS)
def test_a_replayed_check_answers_as_the_check_made_then(steps):
    """Loads and withdrawals at versions v1..vN, every query checked after each; later,
    each check replayed with as_of (the version, or the time) gets the same answer."""
    from sltd import ManualClock

    clock = ManualClock(dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC))
    made = []  # (version, time, query, answer)
    with open_index(":memory:", create=True, clock=clock) as ix:
        for kind, what in steps:
            clock.advance(minutes=1)
            if kind == "load":
                ix.upsert([Record(n, t, "FRA", s, date_of_expiry=e) for n, t, s, e in what])
            else:
                with contextlib.suppress(RecordNotFound):
                    ix.withdraw(*what, "FRA")
            clock.advance(seconds=30)
            version = ix.list_version.version
            made += [(version, clock.now(), q, _answer(ix.check(
                q[0], q[1], q[2], expiry=q[3], leads=True))) for q in QUERIES]
        clock.advance(minutes=1)
        ix.upsert([Record("X1234567", "P", "FRA", "stolen"),
                   Record("Q0000000", "P", "FRA", "lost")])  # the list moves on
        for version, at in sorted({(v, t) for v, t, _, _ in made}):
            view = ix.replay(version)
            assert view.list_version.version == ix.replay(at).list_version.version == version
            for q, answer in ((q, a) for v, t, q, a in made if (v, t) == (version, at)):
                assert _answer(view.check(q[0], q[1], q[2], expiry=q[3], leads=True)) \
                    == answer, (version, q)
        version, at, q, answer = made[-1]  # and through check(as_of=a time)
        assert _answer(ix.check(q[0], q[1], q[2], expiry=q[3], leads=True, as_of=at)) == answer


def test_a_replay_is_audited_as_one_and_its_hits_cannot_be_revealed(index, clock):
    index.upsert([Record("X1234567", "P", "FRA", "stolen")])
    clock.advance(minutes=5)
    index.withdraw("X1234567", "P", "FRA", reason="recovered")
    hits = index.check("X1234567", "P", "FRA", as_of=1, officer="K. Weber", ncb="DEU")
    assert [(h.match.value, h.hit_id) for h in hits] == [("exact", "")]
    mrz = index.check_mrz(synth_mrz("X1234567", "P", "FRA"), as_of=1)
    assert [h.hit_id for h in mrz.hits] == [""]
    index._s.audit.flush()
    rows = index._db.cursor().execute(
        "SELECT action, actor, ncb, subject, result FROM audit WHERE action = 'replay' "
        "ORDER BY seq").fetchall()
    assert rows[0] == ("replay", "K. Weber", "DEU", "X1234567 P FRA",
                       "as of list version 1: exact 1")
    assert len(rows) == 2
    assert index._db.cursor().execute("SELECT count(*) FROM outbox").fetchall() == [(0,)]
    with pytest.raises(ValidationError, match="as_of"):
        index.check("X1234567", as_of=7)
    with pytest.raises(ValidationError, match="future"):
        index.check("X1234567", as_of=clock.now() + dt.timedelta(hours=1))
    assert index.check("X1234567", as_of=clock.now() - dt.timedelta(minutes=1)) != []
    assert index.check("X1234567", as_of=0) == []  # before the first change


def test_a_withdrawal_leaves_the_near_miss_policy_as_a_list_without_the_record_would(
        tmp_path):
    """The issuer alphabets count active records only: with two numbers carrying G and two
    6 at the 7th character, G/6 is a format trait (a lead); once one is withdrawn it is a
    misreading (a near hit), live as in a replay and as in a list built afresh."""
    db = str(tmp_path / "a.duckdb")
    index = open_index(db, create=True)
    index.upsert([Record(n, "P", "FRA", "stolen") for n in ("X1234567", "X1234560",
                                                            "X12345G8", "X12345G9")])
    def kinds(hits):
        return [(h.number, h.match.value) for h in hits if h.number == "X1234567"]

    assert kinds(index.check("X12345G7", "P", "FRA", leads=True)) == [("X1234567", "lead")]
    index.withdraw("X12345G9", "P", "FRA")
    assert kinds(index.check("X12345G7", "P", "FRA", leads=True)) == [("X1234567", "near")]
    assert kinds(index.check("X12345G7", "P", "FRA", leads=True, as_of=2)) == [
        ("X1234567", "near")]
    assert kinds(index.check("X12345G7", "P", "FRA", leads=True, as_of=1)) == [
        ("X1234567", "lead")]
    index.close()
    with open_index(db) as again:  # the key file's base, less what was withdrawn since
        assert kinds(again.check("X12345G7", "P", "FRA", leads=True)) == [
            ("X1234567", "near")]


# --- review dates ---------------------------------------------------------------------

def _kinds(hits):
    return sorted((h.number, h.country, h.match.value) for h in hits)


def test_a_record_stops_hitting_exactly_at_its_review_date_and_expire_moves_it(tmp_path):
    from sltd import ManualClock

    clock = ManualClock(dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC))
    ix = open_index(str(tmp_path / "r.duckdb"), create=True, clock=clock)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen", review_date="2026-11-25"),
               Record("X1234567", "I", "DEU", "lost")])
    manifest = pa.table({"document_number": ["X1234567", "XI234567"],
                         "document_type": ["P", "P"], "issuing_country": ["FRA", "FRA"]})

    def everything():
        screened, _ = ix.screen(manifest)
        return (_kinds(ix.check("X1234567", "P", "FRA")),
                _kinds(ix.check("XI234567", "P", "FRA")),  # a near miss of it
                sorted(zip(screened.column("row").to_pylist(),
                           screened.column("record_country").to_pylist(), strict=True)),
                [_kinds(h) for h in ix.check_many([("X1234567", "P", "FRA")])])

    before = everything()
    assert before[0] == [("X1234567", "DEU", "partial"), ("X1234567", "FRA", "exact")]
    assert ("X1234567", "FRA", "near") in before[1]
    clock.advance(hours=11, minutes=59, seconds=59, microseconds=999_999)  # 23:59:59.999999
    assert everything() == before
    clock.advance(microseconds=1)  # 2026-11-25 00:00 UTC: the review date has come
    after = everything()
    assert after[0] == [("X1234567", "DEU", "partial")]
    assert ("X1234567", "FRA", "near") not in after[1]
    assert after[2] == [(1, "DEU")]
    assert after[3] == [[("X1234567", "DEU", "partial")]]
    assert ix.stats()["reviews"]["-"]["due"] == 1
    version = ix.list_version.version
    assert ix.expire(officer="night shift") == 1
    assert ix.expire() == 0
    assert ix.list_version.version == version + 1
    assert len(ix) == 1
    assert [(v.ended_by, v.reason) for v in ix.history("X1234567", "P", "FRA")] == [
        ("expired", "review date reached")]
    assert everything() == after
    # replayed as it stood: a second before its review date it hit
    assert _kinds(ix.check("X1234567", "P", "FRA", as_of=clock.now() - dt.timedelta(
        seconds=1))) == before[0]
    assert _kinds(ix.check("X1234567", "P", "FRA", as_of=clock.now())) == after[0]
    ix.close()


def test_an_update_renews_the_review_date_and_a_given_one_is_kept(tmp_path):
    from sltd import ManualClock

    clock = ManualClock(dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC))
    ix = open_index(str(tmp_path / "r.duckdb"), create=True, clock=clock)
    ix.set_review_years(5)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen", review_date="2026-11-25"),
               Record("Y7654321", "P", "FRA", "lost")])
    assert ix.check("X1234567", "P", "FRA") != []  # the lapsing dates are now in memory
    ix.upsert([Record("X1234567", "P", "FRA", "revoked")])  # updated: renewed
    ix.upsert([Record("Y7654321", "P", "FRA", "lost")])  # unchanged: kept
    clock.advance(days=2)
    assert [h.match.value for h in ix.check("X1234567", "P", "FRA")] == ["exact"]
    dates = dict(ix._db.cursor().execute(
        "SELECT number, review_date FROM records").fetchall())
    assert dates == {"X1234567": dt.date(2031, 11, 24), "Y7654321": dt.date(2031, 11, 24)}
    ix.upsert([Record("Y7654321", "P", "FRA", "lost", review_date="2026-11-26")])
    assert ix.check("Y7654321", "P", "FRA") == []  # given, and already come
    with pytest.raises(ValidationError, match="review_years"):
        ix.set_review_years(0)
    ix.close()


def test_a_check_after_a_load_never_reads_review_dates_from_the_database(tmp_path,
                                                                         monkeypatch):
    """The writer reads the review window again after its commit: a check right after a
    large load must not wait on DuckDB (bench/serve.py saw a 5.5 s p99 when it did)."""
    from sltd import store as store_module

    ix = open_index(str(tmp_path / "r.duckdb"), create=True)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    assert ix.check("X1234567", "P", "FRA") != []  # first use: read once
    ix.upsert([Record("Y7654321", "P", "FRA", "lost", review_date="2020-01-01")])
    reads = []
    real = store_module.reviews_until
    monkeypatch.setattr(store_module, "reviews_until",
                        lambda *a: reads.append(a) or real(*a))
    assert ix.check("Y7654321", "P", "FRA") == []  # lapsed, known from memory
    assert ix.check("X1234567", "P", "FRA") != []
    assert reads == []
    ix.close()
