"""Index files made by an earlier release are migrated, atomically, never misread."""

import datetime as dt
import gzip
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from sltd import IndexStateError, open_index
from sltd.keyhash import key_hash
from sltd.store import SCHEMA_VERSION

V1 = Path(__file__).parent.parent / "fixtures" / "v1" / "index.duckdb.gz"


@pytest.fixture
def v1_file(tmp_path):
    """The index file the first release made (fixtures/v1/make.sh): schema version 1."""
    path = tmp_path / "v1.duckdb"
    with gzip.open(V1) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(path)


def _stored(path, table="records"):
    con = duckdb.connect(path, read_only=True)
    try:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        rows = con.execute(f"SELECT fold, fold_hash FROM {table}").fetchall()
    finally:
        con.close()
    return int(version[0][0]), rows


def test_the_fixture_is_a_version_one_file_whose_hashes_today_would_misread(v1_file):
    version, rows = _stored(v1_file)
    assert version == 1
    assert len(rows) == 7
    assert all(h != key_hash(fold) for fold, h in rows)


def test_a_writable_open_migrates_it_and_every_answer_holds(v1_file):
    steps = []
    with open_index(v1_file, progress=steps.append) as ix:
        assert ix.migrated_from == 1
        assert steps[-1] == f"schema version 1 -> {SCHEMA_VERSION}"
        assert len(ix) == 7
        assert [h.match.value for h in ix.check("X1234567", "P", "FRA")] == ["exact"]
        assert [(h.match.value, h.number) for h in ix.check("X1Z34567", "P", "FRA")] == [
            ("near", "X1234567")]
        # withdrawn by the release: only the FRA passport of that number is left
        assert [(h.match.value, h.country) for h in ix.check(
            "X1234567", "I", "DEU", exact_only=True)] == [("partial", "FRA")]
        hits, _ = ix.screen(pa.table({"document_number": ["L898902C3", "123456789"],
                                      "issuing_country": ["UTO", "GBR"]}), exact_only=True)
        assert hits.column("record_number").to_pylist() == ["L898902C3", "123456789"]
        assert [c.number for c in ix.cases()] == ["X1234567"]  # the release's case is kept
        assert ix.verify_audit().ok  # the release's audit chain still verifies
        # review dates: entry plus the default period, so nothing stops hitting at once
        assert ix._db.cursor().execute(
            "SELECT count(*) FROM records WHERE review_date IS NULL OR "
            "review_date <> CAST(created_at + INTERVAL 10 YEAR AS DATE)").fetchall() == [(0,)]
    for table in ("records", "record_history"):
        version, rows = _stored(v1_file, table)
        assert version == SCHEMA_VERSION
        assert rows
        assert all(h == key_hash(fold) for fold, h in rows)
    with open_index(v1_file) as ix:
        assert ix.migrated_from is None


def test_a_read_only_open_refuses_an_old_file_and_says_what_to_do(v1_file):
    with pytest.raises(IndexStateError, match="sltd migrate"):
        open_index(v1_file, read_only=True)


def test_a_failed_migration_leaves_the_file_wholly_old(v1_file, monkeypatch):
    def boom(*_):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sltd.store.key_hashes", boom)
    with pytest.raises(RuntimeError):
        open_index(v1_file)
    assert _stored(v1_file)[0] == 1
    monkeypatch.undo()
    with open_index(v1_file) as ix:
        assert ix.migrated_from == 1
        assert [h.match.value for h in ix.check("X1234567", "P", "FRA")] == ["exact"]


def test_a_file_from_a_newer_sltd_is_refused(v1_file):
    con = duckdb.connect(v1_file)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(IndexStateError, match="newer sltd"):
        open_index(v1_file)


def test_sltd_migrate_says_what_it_did_and_is_idempotent(v1_file):
    from click.testing import CliRunner

    from sltd.cli import cli

    first = CliRunner().invoke(cli, ["--db", v1_file, "migrate"])
    assert first.exit_code == 0, first.output
    assert f"migrated from schema version 1 to {SCHEMA_VERSION} (7 records)" in first.stdout
    assert "rehashing" in first.stderr
    again = CliRunner().invoke(cli, ["--db", v1_file, "migrate"])
    assert again.exit_code == 0
    assert again.stdout.strip().endswith(f"already at schema version {SCHEMA_VERSION}")


def _trail_after_migration(v1_file):
    """The release's two chained entries, then batches written by today's sltd."""
    with open_index(v1_file) as ix:
        for number in ("Q0000001", "Q0000002", "Q0000003"):
            ix.check(number, "P", "FRA", ncb="DEU", officer="K. Weber")
        ix.set_validation_window(30, officer="K. Weber")  # a batch: 3 checks, 1 setting
        ix.check("Q0000004", "P", "FRA", ncb="DEU", officer="K. Weber")
    con = duckdb.connect(v1_file)
    assert [r[0] for r in con.execute(
        "SELECT prev_hash IS NULL FROM audit ORDER BY seq").fetchall()] == [False] * 2 + [True] * 5
    return con


def test_the_release_chain_then_batches_verify(v1_file):
    con = _trail_after_migration(v1_file)
    con.close()
    with open_index(v1_file) as ix:
        report = ix.verify_audit()
    assert (report.ok, report.entries) == (True, 7)


@pytest.mark.parametrize(("tamper", "named", "reason"), [
    ("UPDATE audit SET actor = 'eve' WHERE seq = 1", 1, "content does not match its hash"),
    ("UPDATE audit SET result = 'miss' WHERE seq = 2", 2, "content does not match its hash"),
    ("DELETE FROM audit WHERE seq = 2", 2, "entry 2 is missing (next stored is 3)"),
    ("UPDATE audit SET subject = 'Q9 P FRA' WHERE seq = 4", 4, "content does not match its hash"),
    ("UPDATE audit SET seq = 9 - seq WHERE seq IN (4, 5)", 4, "content does not match its hash"),
    ("DELETE FROM audit WHERE seq = 3", 3, "entry 3 is missing (next stored is 4)"),
    ("DELETE FROM audit WHERE seq = 7", 7, "entry 7 is missing (its batch ends at 7)"),
])
def test_tampering_on_either_side_of_the_migration_is_named(v1_file, tamper, named, reason):
    con = _trail_after_migration(v1_file)
    con.execute(tamper)
    con.close()
    with open_index(v1_file) as ix:
        report = ix.verify_audit()
    assert (report.first_broken, report.reason) == (named, reason)


def test_version_three_rows_get_the_list_versions_their_times_say(tmp_path):
    """Schema 3 kept list versions but not which record version each one made: the
    migration finds them from the times (a change's rows and its version share it)."""
    from sltd import Record
    from sltd.clock import ManualClock

    path = str(tmp_path / "v3.duckdb")
    clock = ManualClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with open_index(path, create=True, clock=clock) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen"),
                   Record("Y1234567", "P", "FRA", "lost")])  # version 1
        clock.advance(seconds=60)
        ix.upsert([Record("X1234567", "P", "FRA", "revoked")])  # 2: updates X
        clock.advance(seconds=60)
        ix.withdraw("Y1234567", "P", "FRA", reason="found")  # 3
    con = duckdb.connect(path)
    want = (con.execute("SELECT number, listed_in FROM records").fetchall(),
            con.execute("SELECT number, change, listed_in, ended_in FROM record_history "
                        "ORDER BY ended_in").fetchall())
    assert want == ([("X1234567", 2)], [("X1234567", "updated", 1, 2),
                                        ("Y1234567", "withdrawn", 1, 3)])
    con.execute("ALTER TABLE records DROP COLUMN listed_in")
    for column in ("listed_in", "ended_in"):
        con.execute(f"ALTER TABLE record_history DROP COLUMN {column}")
    con.execute("ALTER TABLE hit_cases DROP COLUMN list_version")  # added by schema 5
    for table in ("records", "record_history"):  # added by schema 6
        con.execute(f"ALTER TABLE {table} DROP COLUMN review_date")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    with open_index(path) as ix:
        assert ix.migrated_from == 3
    con = duckdb.connect(path, read_only=True)
    assert (con.execute("SELECT number, listed_in FROM records").fetchall(),
            con.execute("SELECT number, change, listed_in, ended_in FROM record_history "
                        "ORDER BY ended_in").fetchall()) == want
    con.close()


def test_a_change_committed_at_the_same_instant_as_the_one_before_keeps_its_rows(tmp_path):
    """Two changes at one clock reading share a commit time: the rows of the first stay
    with the first (a row's version is the one committed at its time, the first of
    equal times), so a replay of version 1 finds them."""
    from sltd import Record
    from sltd.clock import ManualClock

    path = str(tmp_path / "v3.duckdb")
    clock = ManualClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with open_index(path, create=True, clock=clock) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])  # version 1
        ix.upsert([Record("Y1234567", "P", "FRA", "lost")])  # version 2, same instant
    con = duckdb.connect(path)
    con.execute("ALTER TABLE records DROP COLUMN listed_in")
    for column in ("listed_in", "ended_in"):
        con.execute(f"ALTER TABLE record_history DROP COLUMN {column}")
    con.execute("ALTER TABLE hit_cases DROP COLUMN list_version")
    for table in ("records", "record_history"):
        con.execute(f"ALTER TABLE {table} DROP COLUMN review_date")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    with open_index(path, clock=clock) as ix:
        assert ix.migrated_from == 3
        assert [h.number for h in ix.check("X1234567", "P", "FRA", as_of=1)] == ["X1234567"]
        assert [h.number for h in ix.check("Y1234567", "P", "FRA", as_of=2)] == ["Y1234567"]
