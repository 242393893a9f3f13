"""Bulk screening: the same answers as one check per row, from any input format."""

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from sltd import ManualClock, Record, SourceError, open_index
from sltd.cli import cli
from sltd.synth import synth_manifest, synth_records, write_table

T0 = dt.datetime(2026, 11, 23, 8, tzinfo=dt.UTC)
RECORDS = synth_records(3000, seed=21)


@pytest.fixture(scope="module")
def index():
    ix = open_index(":memory:", create=True, clock=ManualClock(T0))
    ix.load(RECORDS)
    yield ix
    ix.close()


def manifest(n=1500, listed=0.05, seed=3):
    m = synth_manifest(RECORDS, n, listed=listed, seed=seed)
    # a few listed documents read with one error, for near-miss screening
    nums = m.column("document_number").to_pylist()
    for i in range(0, 40, 4):
        nums[i] = RECORDS.column("document_number")[i].as_py()[:-1] + "Q"
    types = m.column("document_type").to_pylist()
    countries = m.column("issuing_country").to_pylist()
    for i in range(0, 40, 4):
        types[i] = RECORDS.column("document_type")[i].as_py()
        countries[i] = RECORDS.column("issuing_country")[i].as_py()
    return pa.table({"passenger_id": m.column("passenger_id"), "document_number": nums,
                     "document_type": types, "issuing_country": countries})


def oracle(ix, table, exact_only, leads=False):
    """One library check per row: the slow, obviously correct reference."""
    out = set()
    for i, r in enumerate(table.to_pylist(), 1):
        for h in ix.check(r["document_number"], r["document_type"], r["issuing_country"],
                          exact_only=exact_only, leads=leads):
            out.add((i, h.number, str(h.doc_type), h.country, h.match.value))
    return out


def result_set(hits):
    return {(r["row"], r["record_number"], r["record_type"], r["record_country"], r["match"])
            for r in hits.to_pylist()}


@pytest.mark.parametrize(("exact_only", "leads"), [(True, False), (False, False),
                                                   (False, True)])
def test_screening_finds_exactly_what_single_checks_find(index, exact_only, leads):
    m = manifest()
    hits, report = index.screen(m, keep=["passenger_id"], exact_only=exact_only,
                                leads=leads)
    expected = oracle(index, m, exact_only, leads)
    assert result_set(hits) == expected
    assert report.rows_read == m.num_rows
    assert report.rejected == 0
    # leads are in the result when asked for, never in the hit totals
    counted = {e for e in expected if e[4] != "lead"}
    assert sum(report.hits.values()) == len(counted)
    assert report.leads == len(expected) - len(counted)
    assert report.rows_with_hits == len({e[0] for e in counted})
    if leads:  # the manifest's listed documents typed with one substitution
        assert report.leads >= 10
        lead_rows = hits.filter(pa.compute.equal(hits["match"], "lead"))
        assert set(lead_rows["error"].to_pylist()) <= {
            "substitution", "insertion", "deletion", "transposition"}
        order = [(r["row"], r["match"] == "lead") for r in hits.to_pylist()]
        assert order == sorted(order)  # by row; within a row, leads after hits
    pax = dict(zip(range(1, m.num_rows + 1), m.column("passenger_id").to_pylist(), strict=True))
    assert all(pax[r["row"]] == r["passenger_id"] for r in hits.to_pylist())


def test_every_input_format_gives_the_same_result(index, tmp_path):
    m = manifest(800)
    results = []
    for name in ("m.csv", "m.parquet", "m.jsonl", "m.arrow", None):
        src = m
        if name:
            write_table(m, tmp_path / name)
            src = tmp_path / name
        hits, _ = index.screen(src, keep=["passenger_id"], exact_only=False,
                               batch_rows=300)
        results.append(result_set(hits))
    assert results[0]
    assert all(r == results[0] for r in results[1:])


def test_unreadable_rows_go_to_rejects_and_the_run_goes_on(index, tmp_path):
    path = tmp_path / "bad.csv"
    listed = RECORDS.slice(0, 1).to_pylist()[0]
    path.write_text(
        "passenger_id,document_number,document_type,issuing_country\n"
        f"p1,{listed['document_number']},{listed['document_type']},"
        f"{listed['issuing_country']}\n"
        "p2,##,P,FRA\n"
        "p3,X1234567,P,ZZZ\n"
        "p4,X1234567\n"
        "p5,X7654321,driving licence,FRA\n")
    hits, report = index.screen(path, keep=["passenger_id"], rejects=tmp_path / "r.csv")
    assert hits.column("passenger_id").to_pylist()[0] == "p1"
    with open(tmp_path / "r.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["row"], r["field"]) for r in rows] == [
        ("2", "document_number"), ("3", "issuing_country"), ("4", "(line)"),
        ("5", "document_type")]
    assert rows[0]["value"] == "##"
    assert "'#'" in rows[0]["reason"]
    assert (report.rejected, report.rows_read) == (4, 5)


def test_screen_since_only_uses_records_changed_since(tmp_path):
    clock = ManualClock(T0)
    with open_index(":memory:", create=True, clock=clock) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "lost")])
        clock.advance(days=1)
        ix.upsert([Record("Y7654321", "P", "FRA", "stolen")])
        m = pa.table({"document_number": ["X1234567", "Y7654321"],
                      "document_type": ["P", "P"], "issuing_country": ["FRA", "FRA"]})
        every, _ = ix.screen(m, exact_only=True)
        recent, _ = ix.screen(m, exact_only=True, since=T0 + dt.timedelta(hours=12))
        after_one, _ = ix.screen(m, exact_only=True, since=1)  # a list version
        after_two, _ = ix.screen(m, exact_only=True, since=2)
    assert every.column("record_number").to_pylist() == ["X1234567", "Y7654321"]
    assert recent.column("record_number").to_pylist() == ["Y7654321"]
    assert after_one.column("record_number").to_pylist() == ["Y7654321"]
    assert after_two.num_rows == 0


def test_mapping_and_missing_columns(index):
    from sltd import SourceError

    m = pa.table({"doc": ["X1"], "pax": ["p"]})
    with pytest.raises(SourceError, match="document_number"):
        index.screen(m)
    hits, rep = index.screen(pa.table({"doc": [RECORDS.column("document_number")[5]]}),
                             mapping={"document_number": "doc"})
    assert hits.num_rows >= 1
    assert rep.rejected == 0


def test_cli_screen_writes_results_and_summary(tmp_path):
    db = str(tmp_path / "s.duckdb")
    run = CliRunner()
    write_table(RECORDS, tmp_path / "r.parquet")
    assert run.invoke(cli, ["--db", db, "load", str(tmp_path / "r.parquet")]).exit_code == 0
    write_table(manifest(500), tmp_path / "m.parquet")
    res = run.invoke(cli, ["--db", db, "screen", str(tmp_path / "m.parquet"), "--out",
                           str(tmp_path / "hits.parquet"), "--keep", "passenger_id",
                           "--json"])
    assert res.exit_code == 1, res.output
    report = json.loads(res.output)
    assert report["rows_read"] == 500
    assert report["hits"]["exact"] >= 1
    import pyarrow.parquet as pq

    out = pq.read_table(tmp_path / "hits.parquet")
    assert out.column_names[:2] == ["row", "passenger_id"]
    assert set(out.column("match").to_pylist()) <= {"exact", "partial", "near"}


def test_screening_an_mrz_column(tmp_path):
    from pathlib import Path

    fixtures = Path(__file__).parent.parent / "fixtures"
    with open_index(":memory:", create=True) as ix:
        ix.load(fixtures / "records.csv")
        mrzs = [(fixtures / "mrz" / f).read_text() for f in (
            "td3_specimen.txt", "td3_ocr_error.txt", "td1_specimen.txt", "mrva_specimen.txt")]
        m = pa.table({"pax": ["a", "b", "c", "d", "e"],
                      "mrz": [*mrzs, "P<UTO not an mrz"]})
        hits, report = ix.screen(m, mrz_column="mrz", keep=["pax"], rejects=tmp_path / "r.csv")
        got = [(r["pax"], r["record_number"], r["match"]) for r in hits.to_pylist()]
        assert got == [("a", "L898902C3", "exact"), ("b", "L898902C3", "near"),
                       ("c", "D23145890", "exact")]
        assert report.rejected == 1
        with open(tmp_path / "r.csv", encoding="utf-8") as f:
            (bad,) = list(csv.DictReader(f))
        assert (bad["row"], bad["field"]) == ("5", "mrz")
        assert "line" in bad["reason"]


def test_a_long_td1_number_is_joined_in_bulk():
    from sltd.mrz import check_digit, mrz_fields

    number = "D23145890AB12"
    l1 = ("I<UTO" + number[:9] + "<" + number[9:] + str(check_digit(number))).ljust(30, "<")
    fields, bad = mrz_fields(pa.array([l1 + "7408122F1204159UTO<<<<<<<<<<<6" + "X" * 30]))
    assert fields["document_number"].to_pylist() == [number]
    assert bad.to_pylist() == [False]
    assert fields["number_check"].to_pylist() == [check_digit(number)]


def test_mrz_screening_finds_what_single_mrz_checks_find(index):
    """Clean and misread MRZs of listed documents, clean MRZs of unlisted ones: the same
    hits as Index.check_mrz per row, so the number's check digit rules out the same near
    misses in bulk."""
    import random

    from sltd.synth import MRZ_CODES, inject_error, synth_mrz

    rng = random.Random(5)
    rows = [r for r in RECORDS.to_pylist()
            if r["document_type"] in MRZ_CODES and len(r["document_number"]) <= 9]
    mrzs = []
    for r in rows[:300]:
        n, t, c = r["document_number"], r["document_type"], r["issuing_country"]
        kind = rng.choice(["substitution", "transposition", "ocr (one)", "deletion"])
        bad = inject_error(n, kind, rng.randrange(30), rng.choice("ABX0159"))
        mrzs.append(synth_mrz(n, t, c, read_as=bad if bad and len(bad) >= 3 else None))
        # a clean document one substitution away from a listed one
        other = n[:-1] + ("7" if n[-1] != "7" else "3")
        mrzs.append(synth_mrz(other, t, c))
    table = pa.table({"mrz": mrzs})
    hits, _ = index.screen(table, mrz_column="mrz")
    want = set()
    for i, text in enumerate(mrzs, 1):
        for h in index.check_mrz(text).hits:
            want.add((i, h.number, str(h.doc_type), h.country, h.match.value))
    assert result_set(hits) == want
    # Clean documents one substitution from a listed one (even rows): typed, each is a
    # lead; read from a consistent MRZ, nothing (the verified digit confirms the reading).
    from sltd.mrz import parse_mrz

    leads_typed = {i for i in range(2, len(mrzs) + 1, 2) if any(
        h.match.value == "lead" for h in index.check(*_fields(parse_mrz(mrzs[i - 1])),
                                                     leads=True))}
    near_read = {i for (i, *_, m) in want if i % 2 == 0 and m == "near"}
    assert len(leads_typed) > 100
    assert near_read == set()
    # misread ones (odd rows) whose digit fails find their record
    misread = [i for i in range(1, len(mrzs) + 1, 2)
               if "document number" in parse_mrz(mrzs[i - 1]).failed_checks]
    found = {i for (i, number, *_) in want}
    assert misread
    assert set(misread) <= found


def _fields(m):
    return m.number, m.doc_type, m.country


def test_streaming_a_parquet_manifest_holds_a_bounded_number_of_batches(tmp_path):
    """Arrow memory while streaming stays within a few batches, however many row groups
    the file has (pyarrow's pre-buffering used to keep every row group read)."""
    import pyarrow.parquet as pq

    from sltd.screen import iter_batches

    m = synth_manifest(RECORDS, 400_000, seed=4)
    path = tmp_path / "m.parquet"
    pq.write_table(m, path, row_group_size=20_000)
    one_group = m.slice(0, 20_000).nbytes
    del m
    before = pa.total_allocated_bytes()
    growth = 0
    for batch, _, _ in iter_batches(path, format=None, columns=["passenger_id",
                                    "document_number"], batch_rows=20_000):
        growth = max(growth, pa.total_allocated_bytes() - before)
        del batch
    assert growth < 5 * one_group


@pytest.mark.parametrize("option", ["out", "rejects"])
def test_screening_never_writes_over_the_index_file(db_path, tmp_path, option):
    with open_index(db_path, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        before = Path(db_path).read_bytes()
        with pytest.raises(SourceError, match="refusing"):
            ix.screen(pa.table({"document_number": ["X1234567"]}), **{option: db_path})
        assert Path(db_path).read_bytes() == before


@pytest.mark.parametrize("exact_only", [True, False])
def test_the_join_from_memory_equals_the_join_in_duckdb(exact_only):
    """Screening joins candidates with the key table; with ``since`` it joins DuckDB's
    records. With every record changed since then, both give the same hits, including
    records loaded into the delta, withdrawn ones, and keys listed in several countries."""
    with open_index(":memory:", create=True, clock=ManualClock(T0)) as ix:
        ix.load(RECORDS)
        ix.check("X1234567")  # the base is built: what follows goes into the delta
        extra = RECORDS.slice(0, 60).to_pylist()
        ix.upsert([Record(r["document_number"], r["document_type"], "UTO", "stolen")
                   for r in extra])
        for r in RECORDS.slice(100, 30).to_pylist():
            ix.withdraw(r["document_number"], r["document_type"], r["issuing_country"])
        m = pa.concat_tables([manifest(), pa.Table.from_pylist(
            [{"passenger_id": f"x{i}", "document_number": r["document_number"],
              "document_type": r["document_type"], "issuing_country": r["issuing_country"]}
             for i, r in enumerate(RECORDS.slice(90, 60).to_pylist())])])
        memory, _ = ix.screen(m, exact_only=exact_only)
        duck, _ = ix.screen(m, exact_only=exact_only, since=T0 - dt.timedelta(days=1))
    assert result_set(memory) == result_set(duck)
    assert any(r[3] == "UTO" for r in result_set(memory))  # the delta answered
    assert len(memory) == len(duck)
