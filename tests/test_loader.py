"""Loads in batches: however a source is cut, a load is one transaction and ends as a load
of the whole source in one batch would (records, history, counts, rejects)."""

import dataclasses
import datetime as dt

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sltd.store
from sltd import LoadProgress, ManualClock, Record, ValidationError, open_index
from sltd.sources import SourceTable
from sltd.synth import synth_records, write_table

T0 = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)
HEADER = "document_number,document_type,issuing_country,status,place_of_loss,date_of_issue\n"
# Rows 2 and 7 have one key (row 7 wins), as have 3 and 9 (9 wins, and is invalid: so 3
# is kept); row 5 is malformed, row 6 has a bad country, row 8 a bad date.
FIRST = HEADER + ("A1111111,P,FRA,lost,,\n"
                  "B2222222,P,FRA,lost,Paris,\n"
                  "C3333333,I,DEU,stolen,,2020-01-01\n"
                  "D4444444,P,ITA,lost,,\n"
                  "E5555555,P\n"
                  "F6666666,P,ZZZ,lost,,\n"
                  "b222-2222,passport,fra,stolen,Lyon,\n"
                  "G7777777,P,ESP,lost,,2020-02-30\n"
                  "C3333333,I,D,stolen,,2020-13-01\n"
                  "H8888888,P,FRA,revoked,,\n")
# Against FIRST: A changes, B (as row 7 left it) and D do not, J is new, twice.
SECOND = HEADER + ("A1111111,P,FRA,stolen,,\n"
                   "B2222222,P,FRA,stolen,Lyon,\n"
                   "J9999999,P,FRA,lost,,\n"
                   "D4444444,P,ITA,lost,,\n"
                   "J9999999,P,FRA,stolen,,\n")


def state(ix):
    """Everything a load writes, but the audit trail's times and hashes."""
    cur = ix._db.cursor()
    return {table: cur.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in ("records", "record_history", "(FROM meta WHERE key <> 'hit_secret')")}


def loads(tmp_path, texts, batch_rows):
    """A new index after loading ``texts`` in turn: the reports and the final state."""
    clock = ManualClock(T0)
    tmp_path.mkdir(exist_ok=True)
    with open_index(tmp_path / f"b{batch_rows}.duckdb", create=True, clock=clock) as ix:
        reports = []
        for i, text in enumerate(texts):
            src = tmp_path / f"load{i}.csv"
            src.write_text(text, encoding="utf-8")
            rep = ix.load(src, batch_rows=batch_rows, rejects=tmp_path / f"rej{i}.csv")
            reports.append((dataclasses.replace(rep, seconds=0.0, source=src.name,
                                                rejects_path=None),
                            (tmp_path / f"rej{i}.csv").read_text(encoding="utf-8")))
            clock.advance(minutes=1)
        return reports, state(ix)


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 4])
def test_a_load_in_batches_ends_as_a_load_in_one_batch(tmp_path, batch_rows):
    whole = loads(tmp_path / "whole", [FIRST, SECOND], 1000)
    assert loads(tmp_path / "cut", [FIRST, SECOND], batch_rows) == whole


def test_duplicates_across_batches_keep_the_last_row_and_report_the_others(tmp_path):
    (first, _), (second, _) = loads(tmp_path, [FIRST, SECOND], 2)[0]
    assert (first.rows_read, first.inserted, first.rejected) == (10, 5, 5)
    assert [(p.row, p.reason) for p in first.problems if "same number" in p.reason] == [
        (2, "same number, type and country as row 7, which was kept")]
    assert (second.inserted, second.updated, second.unchanged, second.rejected) == (1, 1, 2, 1)
    assert [p.row for p in second.problems] == [3]  # J: row 5 was kept


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "arrow", "table"])
def test_every_format_loads_the_same_in_batches(tmp_path, fmt):
    table = synth_records(40, seed=6)
    source = table if fmt == "table" else tmp_path / f"r.{fmt}"
    if fmt != "table":
        write_table(table, source)
    with open_index(":memory:", create=True, clock=ManualClock(T0)) as one, \
            open_index(":memory:", create=True, clock=ManualClock(T0)) as cut:
        a, b = one.load(source), cut.load(source, batch_rows=7)
        assert (a.rows_read, a.inserted, a.rejected) == (b.rows_read, b.inserted, b.rejected)
        assert state(one)["records"] == state(cut)["records"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "arrow"])
def test_a_file_with_only_the_mandatory_columns_loads(tmp_path, fmt):
    """Optional columns may be absent in any format (a Parquet file without owner_ncb
    once failed: its reader was asked to dictionary-encode a column it does not have)."""
    table = synth_records(10, seed=3).select(["document_number", "document_type",
                                             "issuing_country", "status"])
    write_table(table, tmp_path / f"r.{fmt}")
    with open_index(":memory:", create=True) as ix:
        report = ix.load(tmp_path / f"r.{fmt}")
        assert (report.inserted, report.rejected) == (10, 0)


# Exceptions are made in the test, not in the table: a raised instance keeps its
# traceback, and with it the frames and the index, alive until the session ends.
@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("empty", [True, False], ids=["first-load", "later-load"])
def test_a_failure_in_a_late_batch_leaves_the_index_as_it_was(tmp_path, monkeypatch, failure,
                                                              empty):
    real_stage = sltd.store.stage
    calls = []

    def stage(con, staging, valid):
        calls.append(valid.num_rows)
        if len(calls) == 4:
            raise failure("in the 4th batch")
        real_stage(con, staging, valid)

    with open_index(tmp_path / "i.duckdb", create=True) as ix:
        if not empty:
            ix.load(synth_records(30, seed=1))
        before = state(ix)
        monkeypatch.setattr(sltd.store, "stage", stage)
        with pytest.raises(failure):
            ix.load(synth_records(50, seed=2), batch_rows=10)
        monkeypatch.undo()
        assert len(calls) == 4
        assert state(ix) == before
        assert ix.verify_audit().ok
        rep = ix.load(synth_records(50, seed=2), batch_rows=10)  # and it loads afterwards
        assert rep.inserted + rep.updated == 50
    with open_index(tmp_path / "i.duckdb") as ix:
        assert len(ix) == (50 if empty else 80)
        cur = ix._db.cursor()
        assert cur.execute("SELECT index_name FROM duckdb_indexes()").fetchall() == []


def test_progress_is_heard_after_each_batch_then_while_applying_and_indexing(tmp_path):
    path = tmp_path / "r.parquet"
    write_table(synth_records(25, seed=3), path)
    heard = []
    with open_index(":memory:", create=True) as ix:
        ix.load(path, batch_rows=10, progress=heard.append)
    assert heard == [LoadProgress("reading", 10, 25), LoadProgress("reading", 20, 25),
                     LoadProgress("reading", 25, 25), LoadProgress("applying", 25, 25),
                     LoadProgress("indexing", 25, 25)]


def test_a_first_load_publishes_its_keys_to_sets_already_built(tmp_path):
    with open_index(":memory:", create=True) as ix:
        assert ix.check("X1234567") == []  # builds the (empty) key sets
        ix.load(pa.table({"document_number": ["X1234567", "X1234567", "Y1234567"],
                          "document_type": ["P", "P", "I"], "issuing_country": ["FRA"] * 3,
                          "status": ["lost", "stolen", "lost"]}), batch_rows=1)
        assert [h.number for h in ix.check("X1234567", "P", "FRA")] == ["X1234567"]
        assert [h.number for h in ix.check("Y1234567", "I", "FRA")] == ["Y1234567"]


# --- the bulk path validates as a single Record does -----------------------------------

FIELDS = ("document_number", "document_type", "issuing_country", "status", "owner_ncb",
          "place_of_loss", "date_of_loss", "date_of_issue", "date_of_expiry", "review_date")
messy = {
    "document_number": st.sampled_from(["X1234567", " x12-345 67 ", "AB1", "X#1234567",
                                        "Ｘ１２３４５６７", "ß1234567", "", None, "9" * 30]),
    "document_type": st.sampled_from(["P", "passport", "I", " i ", "X", "", None]),
    "issuing_country": st.sampled_from(["FRA", "fra", "D<<", "D", "ZZZ", "UNO", "", None]),
    "status": st.sampled_from(["lost", "STOLEN", "stolen blank", "stolen-blank", "gone",
                               None]),
    "owner_ncb": st.sampled_from(["FRA", "GS", "  ", "", "XYZ", None]),
    "place_of_loss": st.sampled_from(["Paris", " a\u00a0 b ", "x\x1by", "", "p" * 201, None]),
    "date_of_loss": st.sampled_from(["2020-01-01", " 2020-01-01 ", "2020-02-30", "01/02/2020",
                                     "", None]),
    "date_of_issue": st.sampled_from(["2015-06-01", "2031-01-01", "", None]),
    "date_of_expiry": st.sampled_from(["2030-06-01", "2016-01-01", "2025-1-1", None]),
    "review_date": st.sampled_from(["2036-01-31", "2036-02-30", "", None]),
}


def record_or_error(row):
    try:
        return Record(row["document_number"], row["document_type"], row["issuing_country"],
                      row["status"], **{f: row[f] for f in FIELDS[4:]})
    except ValidationError as e:
        return e.field


_CHECKER = duckdb.connect()  # one for every example: validation reads no index


@given(st.lists(st.fixed_dictionaries(messy), min_size=1, max_size=8))
def test_bulk_validation_accepts_and_stores_what_a_record_does(rows):
    """The oracle is the single-record path: a row is valid if and only if its Record can
    be made, with the values the Record normalizes to, and a refused row names the field
    the Record refuses first among its problems."""
    table = pa.table({f: pa.array([r[f] for r in rows], pa.string()) for f in FIELDS})
    table = table.append_column("__row", pa.array(range(1, len(rows) + 1), pa.int64()))
    checked = sltd.store.validate(_CHECKER, SourceTable(table))
    valid = {r.pop("__row"): tuple(r.values()) for r in checked.valid.drop_columns(
        ["fold", "fold_hash"]).to_pylist()}
    for i, row in enumerate(rows, start=1):
        rec = record_or_error(row)
        if isinstance(rec, Record):
            assert valid[i] == (rec.number, rec.doc_type.value, rec.country, rec.status.value,
                                rec.owner_ncb, rec.place_of_loss, rec.date_of_loss,
                                rec.date_of_issue, rec.date_of_expiry, rec.review_date)
            assert not [p for p in checked.problems if p.row == i]
        else:
            assert i not in valid
            assert rec in {p.field for p in checked.problems if p.row == i}, row
