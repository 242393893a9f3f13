"""Index files made by an earlier release are migrated, atomically, never misread."""

import gzip
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from sltd import IndexStateError, open_index
from sltd.keyhash import key_hash

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
        assert steps[-1] == "schema version 1 -> 2"
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
    for table in ("records", "record_history"):
        version, rows = _stored(v1_file, table)
        assert version == 2
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
    assert "migrated from schema version 1 to 2 (7 records)" in first.stdout
    assert "rehashing" in first.stderr
    again = CliRunner().invoke(cli, ["--db", v1_file, "migrate"])
    assert (again.exit_code, again.stdout.strip().endswith("already at schema version 2")) \
        == (0, True)
