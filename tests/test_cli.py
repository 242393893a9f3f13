import json

import pytest
from click.testing import CliRunner

from sltd.cli import cli


@pytest.fixture
def run(tmp_path):
    db = str(tmp_path / "cli.duckdb")

    def invoke(*args, **kw):
        return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False, **kw)

    return invoke


@pytest.fixture
def loaded(run, tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("document_number,document_type,issuing_country,status\n"
                   "X1234567,P,FRA,stolen\nBAD#,P,FRA,lost\n")
    res = run("load", str(src), "--json")
    assert res.exit_code == 0, res.stdout
    return json.loads(res.stdout), src


def test_load_json_reports_counts_and_rejects(loaded, tmp_path):
    report, src = loaded
    assert (report["inserted"], report["rejected"]) == (1, 1)
    assert (tmp_path / "r.csv.rejects.csv").read_text().count("\n") == 2


def test_check_hit_and_miss_by_exit_status(run, loaded):
    hit = run("check", "x123 4567", "--type", "passport", "--country", "FRA", "--json")
    assert hit.exit_code == 1
    body = json.loads(hit.stdout)
    assert [(h["number"], h["type"], h["country"], h["match"]) for h in body["hits"]] == [
        ("X1234567", "P", "FRA", "exact")]
    assert set(body["hits"][0]) == {"hit_id", "number", "type", "country", "match"}
    miss = run("check", "Q7654321", "--json")
    assert (miss.exit_code, json.loads(miss.stdout)["hits"]) == (0, [])
    assert json.loads(miss.stdout)["list_version"]["version"] == 1  # the load made it


def test_check_as_of_replays_the_list_as_it_stood(run, loaded):
    assert run("withdraw", "X1234567", "--type", "P", "--country", "FRA").exit_code == 0
    assert run("check", "X1234567", "--type", "P", "--country", "FRA").exit_code == 0
    then = run("check", "X1234567", "--type", "P", "--country", "FRA", "--as-of", "1")
    assert then.exit_code == 1  # listed then
    assert then.stdout.splitlines()[0].startswith("replay: as the list stood at list version 1")
    assert "(replay: no hit id)" in then.stdout
    body = json.loads(run("check", "X1234567", "--as-of", "1", "--json").stdout)
    assert (body["list_version"]["version"], body["hits"][0]["hit_id"]) == (1, "")
    assert run("check", "X1234567", "--as-of", "2000-01-01T00:00Z").exit_code == 0
    bad = run("check", "X1234567", "--as-of", "soon")
    assert bad.exit_code == 2
    assert "--as-of" in bad.output


def test_check_near_miss_json_has_score_and_explanation(run, loaded):
    res = run("check", "X1Z34567", "--country", "FRA", "--json")
    h = json.loads(res.stdout)["hits"][0]
    assert h["match"] == "near"
    assert "read as" in h["explanation"]
    assert h["score"] < 100
    assert run("check", "X1Z34567", "--country", "FRA", "--exact-only").exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["check", "X1234567", "--country", "XYZ"], "issuing_country='XYZ'"),
    (["check", "#"], "document_number='#'"),
    (["load", "/no/such.csv"], "no such file"),
    (["withdraw", "Q1234567", "--type", "P", "--country", "FRA"], "no active record"),
])
def test_errors_are_one_line_on_stderr_without_traceback(run, loaded, args, message):
    res = run(*args)
    assert res.exit_code == 3
    assert message in res.stderr
    assert "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_index_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.duckdb"), "check", "X1234567"])
    assert res.exit_code == 3
    assert "sltd init" in res.stderr


def test_db_from_environment(tmp_path):
    db = tmp_path / "env.duckdb"
    res = CliRunner().invoke(cli, ["init"], env={"SLTD_DB": str(db)})
    assert res.exit_code == 0
    assert db.exists()


def test_bad_mapping_is_a_usage_error(run, tmp_path):
    res = run("load", str(tmp_path / "x.csv"), "--map", "nonsense")
    assert res.exit_code == 2
    assert "FIELD=COLUMN" in res.stderr


def test_withdraw_and_stats(run, loaded):
    assert run("withdraw", "X1234567", "--type", "P", "--country", "FRA").exit_code == 0
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["records"] == 0
    assert stats["history"] == {"withdrawn": 1}
    assert "active records" in run("stats").stdout


def test_synth_then_load(run, tmp_path):
    out = tmp_path / "s.parquet"
    assert run("synth", str(out), "--records", "500").exit_code == 0
    rep = json.loads(run("load", str(out), "--json").stdout)
    assert rep["inserted"] == 500


@pytest.mark.parametrize(("numbering", "manifest_columns"), [
    ("ranges", ["passenger_id", "document_number", "document_type", "issuing_country",
                "date_of_issue", "date_of_expiry", "listed"]),
    ("random", ["passenger_id", "document_number", "document_type", "issuing_country"]),
])
def test_synth_manifest_follows_the_numbering_of_its_records(run, tmp_path, numbering,
                                                             manifest_columns):
    import pyarrow.parquet as pq

    records, manifest = tmp_path / "r.parquet", tmp_path / "m.parquet"
    assert run("synth", str(records), "--records", "2000", "--numbering",
               numbering).exit_code == 0
    res = run("synth", str(manifest), "--manifest", "500", "--listed", "0.02", "--from",
              str(records))
    assert res.stdout == f"wrote a manifest of 500 passengers to {manifest}\n"
    m = pq.read_table(manifest)
    assert m.column_names == manifest_columns
    if numbering == "ranges":
        assert sum(m.column("listed").to_pylist()) == 10
        assert m.column("date_of_expiry").null_count == 0


def test_synth_numbers_from_ranges_unless_told_otherwise(run, tmp_path):
    from sltd.synth import synth_records

    out = tmp_path / "r.csv"
    assert run("synth", str(out), "--records", "300", "--seed", "5").exit_code == 0
    first = out.read_text().splitlines()[1].split(",")[0].strip('"')
    assert first == synth_records(300, seed=5, numbering="ranges")["document_number"][0].as_py()
    assert "ranges" in run("synth", "--help").stdout


def test_demo_shows_every_kind_of_answer(tmp_path):
    res = CliRunner().invoke(cli, ["demo", "--records", "2000", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.stdout
    for kind in ("HIT exact", "HIT partial", "HIT near", "read as", "transposed",
                 "no hit: not listed"):
        assert kind in res.stdout


def test_check_by_mrz_fixture_reports_inconsistency_and_near_hit(run):
    root = __import__("pathlib").Path(__file__).parent.parent / "fixtures"
    assert run("load", str(root / "records.csv"), "--rejects", "/dev/null").exit_code == 0
    res = run("check", "--mrz", (root / "mrz" / "td3_ocr_error.txt").read_text())
    assert res.exit_code == 1
    assert "INCONSISTENT: check digit fails for document number, composite" in res.stdout
    assert "HIT near    L898902C3" in res.stdout
    assert "'0' read as 'O' at position 6" in res.stdout
    body = json.loads(run("check", "--mrz", (root / "mrz" / "td1_specimen.txt").read_text(),
                          "--json").stdout)
    assert body["mrz"]["format"] == "TD1"
    assert body["hits"][0]["match"] == "exact"


def test_check_needs_exactly_one_of_number_and_mrz(run, loaded):
    assert run("check").exit_code == 2
    assert run("check", "X1234567", "--mrz", "P<").exit_code == 2


def test_workflow_end_to_end_through_the_cli(run, tmp_path, monkeypatch):
    root = __import__("pathlib").Path(__file__).parent.parent / "fixtures"
    monkeypatch.setenv("SLTD_NCB", "DEU")
    monkeypatch.setenv("SLTD_OFFICER", "K. Weber")
    run("load", str(root / "records.csv"), "--rejects", str(tmp_path / "rej.csv"))
    hit = json.loads(run("check", "X1234567", "--type", "P", "--country", "FRA",
                         "--json").stdout)["hits"][0]
    shown = run("reveal", hit["hit_id"])
    assert shown.exit_code == 0
    assert "STOLEN" in shown.stdout
    assert "Paris CDG" in shown.stdout
    case = json.loads(run("hits", "--json").stdout)["cases"][0]
    assert case["state"] == "pending"
    assert case["time_left_seconds"] > 3500
    sink = tmp_path / "alerts.jsonl"
    assert run("watch", "--once", "--sink", str(sink)).exit_code == 0
    assert len(sink.read_text().splitlines()) == 3
    alerts = json.loads(run("alerts", "--json").stdout)["alerts"]
    assert {(a["recipient"], a["kind"], a["state"]) for a in alerts} == {
        ("owner:FRA", "hit", "delivered"), ("searching:DEU", "hit", "delivered"),
        ("CCC", "hit", "delivered")}
    assert run("confirm", case["case_id"]).exit_code == 0
    again = run("confirm", case["case_id"])
    assert again.exit_code == 3
    assert "already closed" in again.stderr
    assert run("reject", "c123", "--reason", "x").exit_code == 3
    assert "intact" in run("audit", "verify").stdout
    assert run("reveal", "hbogus", "--ncb", "DEU").exit_code == 3
    assert run("reveal", hit["hit_id"], "--ncb", "XYZ").exit_code == 3


def test_a_load_shows_progress_on_a_terminal_only(run, tmp_path, monkeypatch):
    import io

    from sltd import LoadProgress
    from sltd.cli import _LoadBar

    out = io.StringIO()
    with _LoadBar(show=True, file=out) as bar:  # a CSV: its size is not known up front
        for p in (LoadProgress("reading", 2, None), LoadProgress("reading", 3, None),
                  LoadProgress("applying", 3, None), LoadProgress("indexing", 3, None)):
            bar(p)
    assert out.getvalue().split("\r")[1:] == [
        "loading: 2 rows read", "loading: 3 rows read", "applying: 3 rows read",
        "indexing: 3 rows read\n"]
    out = io.StringIO()
    with _LoadBar(show=True, file=out) as bar:  # Parquet: a bar (click draws it on a tty)
        for p in (LoadProgress("reading", 2, 3), LoadProgress("reading", 3, 3),
                  LoadProgress("applying", 3, 3), LoadProgress("indexing", 3, 3)):
            bar(p)
        assert (bar.bar.pos, bar.bar.label) == (3, "indexing")
    assert out.getvalue().startswith("loading")
    src = tmp_path / "r.csv"
    src.write_text("document_number,document_type,issuing_country,status\nX1234567,P,FRA,lost\n")
    assert run("load", str(src)).stderr == ""  # not a terminal
    monkeypatch.setattr("sltd.cli._on_terminal", lambda: True)
    assert "indexing: 1 rows read" in run("load", str(src)).stderr
    for quiet in ("--quiet", "--json"):
        assert run("load", str(src), quiet).stderr == ""


def test_a_lead_is_shown_with_leads_and_never_exits_as_a_hit(run, tmp_path):
    records = tmp_path / "r.csv"
    records.write_text("document_number,document_type,issuing_country,status,date_of_expiry\n"
                       "X1234567,P,FRA,stolen,2031-05-02\n")
    assert run("load", str(records)).exit_code == 0
    plain = run("check", "X1234568", "--type", "P", "--country", "FRA")
    assert (plain.exit_code, plain.stdout) == (0, "no hit: not listed\n")
    shown = run("check", "X1234568", "--type", "P", "--country", "FRA", "--leads")
    assert shown.exit_code == 0  # a lead is not a hit
    assert shown.stdout.startswith("no hit: not listed\nLEAD        X1234567")
    assert "substitution" in shown.stdout
    body = json.loads(run("check", "X1234568", "--type", "P", "--country", "FRA", "--leads",
                          "--json").stdout)
    assert body["hits"] == []
    assert [(d["match"], d["error"], d["evidence"]) for d in body["leads"]] == [
        ("lead", "substitution", [])]
    dated = run("check", "X1234568", "--type", "P", "--country", "FRA",
                "--expiry", "2031-05-02")
    assert dated.exit_code == 1  # corroborated by the expiry date: a near hit
    assert "HIT near    X1234567" in dated.stdout
    assert "expiry_matches" in dated.stdout
    bad = run("check", "X1234568", "--expiry", "31/05/2031")
    assert bad.exit_code == 3  # a one-line error naming the field, never "hit"
    assert "date_of_expiry" in bad.output
