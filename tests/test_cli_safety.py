"""What the CLI promises an operator: their files are never destroyed, exit codes mean
what they say (0 success, 1 a hit and nothing else, 2 usage, 3 one ``error:`` line), and
bad input costs only its own row."""

import csv
import datetime as dt
import json
import random
import re

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import sltd
from sltd.cli import cli
from sltd.model import CONTROL_CHARACTERS

HEADER = "document_number,document_type,issuing_country,status,place_of_loss\n"
LISTED = "X1234567,P,FRA,stolen,Paris CDG\n"
CLEAN = HEADER + LISTED + "Y7654321,I,DEU,lost,\n"
# a time to come that is still within the records' review period (10 years from their load)
FUTURE = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
TEN_MB = 10_000_000


@pytest.fixture
def db(tmp_path, monkeypatch):
    for name in ("SLTD_DB", "SLTD_NCB", "SLTD_OFFICER", "SLTD_WAIT"):
        monkeypatch.delenv(name, raising=False)
    return str(tmp_path / "sltd.duckdb")


@pytest.fixture
def run(db):
    def invoke(*args):
        return CliRunner().invoke(cli, ["--db", db, *map(str, args)], catch_exceptions=False)

    return invoke


@pytest.fixture
def listed(run, tmp_path):
    """An index holding X1234567 P FRA (stolen, lost in Paris CDG)."""
    res = run("load", write(tmp_path, "listed.csv", HEADER + LISTED))
    assert res.exit_code == 0, res.output


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def json_lines(*rows):
    return "".join(json.dumps(dict(zip(HEADER.strip().split(","), r, strict=True))) + "\n"
                   for r in rows)


def load_or_screen(run, command, src, *options):
    """``sltd load SRC`` or ``sltd screen SRC --out SRC-hits.csv``."""
    if command == "load":
        return run("load", src, *options)
    return run("screen", src, "--out", src.with_name(f"{src.stem}-hits.csv"), *options)


def default_rejects(command, src):
    """Where load_or_screen writes rejected rows when not told: SOURCE or OUT.rejects.csv."""
    named = src.name if command == "load" else f"{src.stem}-hits.csv"
    return src.with_name(f"{named}.rejects.csv")


def rejects_of(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def records(run):
    res = run("stats", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["records"]


def error_line(res):
    """The one stderr line of a failed command, checked to be exactly that."""
    assert res.exit_code == 3, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in res.output
    return lines[0]


def hit_ids(res):
    assert res.exit_code == 1, res.output
    return [h["hit_id"] for h in json.loads(res.stdout)["hits"]]


# --- operator files are never destroyed ---------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "roundabout"])
def test_load_refuses_a_rejects_file_that_is_the_source(run, tmp_path, spelling):
    src = write(tmp_path, "src.csv", CLEAN + "BAD#,P,FRA,lost,\n")
    before = src.read_bytes()
    (tmp_path / "sub").mkdir()
    same = src if spelling == "same" else tmp_path / "sub" / ".." / "src.csv"
    error = error_line(run("load", src, "--rejects", same))
    assert "refusing" in error
    assert str(same) in error
    assert src.read_bytes() == before
    assert records(run) == 0


@pytest.mark.parametrize("option", ["--out", "--rejects"])
def test_screen_refuses_to_write_over_the_manifest(run, listed, tmp_path, option):
    manifest = write(tmp_path, "m.csv", HEADER + LISTED + "#,P,FRA,lost,\n")
    before = manifest.read_bytes()
    args = {"--out": tmp_path / "o.csv", option: manifest}
    error = error_line(run("screen", manifest, *(x for kv in args.items() for x in kv)))
    assert "refusing" in error
    assert str(manifest) in error
    assert manifest.read_bytes() == before
    assert not (tmp_path / "o.csv").exists()


def test_screen_refuses_a_rejects_file_that_is_the_result_file(run, listed, tmp_path):
    manifest = write(tmp_path, "m.csv", HEADER + LISTED)
    out = write(tmp_path, "o.csv", "an operator's file\n")
    error = error_line(run("screen", manifest, "--out", out, "--rejects", out))
    assert "refusing" in error
    assert out.read_text() == "an operator's file\n"


@pytest.mark.parametrize("option", ["--out", "--rejects"])
def test_screen_refuses_to_write_over_the_index(run, listed, db, tmp_path, option):
    manifest = write(tmp_path, "m.csv", HEADER + LISTED + "#,P,FRA,lost,\n")
    args = {"--out": tmp_path / "o.csv", option: db}
    error = error_line(run("screen", manifest, *(x for kv in args.items() for x in kv)))
    assert "refusing" in error
    assert records(run) == 1


def test_synth_refuses_to_write_a_manifest_over_its_records_file(run, tmp_path):
    src = write(tmp_path, "records.csv", CLEAN)
    error = error_line(run("synth", src, "--manifest", 10, "--from", src))
    assert "refusing" in error
    assert src.read_text() == CLEAN


@pytest.mark.parametrize(("name", "command"), [
    ("records.parquet", "load"),
    ("records.csv", "load"),
    ("records.parquet", "init"),
    ("records.csv", "check"),
])
def test_a_db_that_is_not_an_index_is_refused_and_left_byte_identical(tmp_path, name,
                                                                       command):
    data = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.table({"document_number": ["X1234567"]}), data)
    else:
        data.write_text(CLEAN)
    before = data.read_bytes()
    args = {"load": ["load", write(tmp_path, "x.csv", CLEAN)], "init": ["init"],
            "check": ["check", "X1234567"]}[command]
    res = CliRunner().invoke(cli, ["--db", str(data), *map(str, args)],
                             catch_exceptions=False)
    error = error_line(res)
    assert "not an sltd index" in error
    assert "nothing was written" in error
    assert data.read_bytes() == before


@pytest.mark.parametrize("command", ["load", "screen"])
def test_the_default_rejects_file_is_written_only_when_rows_are_rejected(run, listed,
                                                                         tmp_path, command):
    clean = write(tmp_path, "clean.csv", CLEAN)
    bad = write(tmp_path, "bad.csv", CLEAN + "BAD#,P,FRA,lost,\n")
    for src in (clean, bad):
        assert load_or_screen(run, command, src).exit_code in (0, 1)
    assert not default_rejects(command, clean).exists()
    assert [(r["row"], r["field"]) for r in rejects_of(default_rejects(command, bad))] == [
        ("3", "document_number")]


@pytest.mark.parametrize("command", ["load", "screen"])
def test_an_asked_for_rejects_file_is_written_even_when_empty(run, listed, tmp_path, command):
    src = write(tmp_path, "clean.csv", CLEAN)
    rejects = tmp_path / "r.csv"
    assert load_or_screen(run, command, src, "--rejects", rejects).exit_code in (0, 1)
    assert rejects.read_text() == "row,field,value,reason\n"
    assert not default_rejects(command, src).exists()


# --- exit codes mean what they say ------------------------------------------------------


@pytest.mark.parametrize(("command", "done", "listed_after"), [
    ("load", "bad.csv: loaded (1 inserted, 0 updated, 1 rejected), but cannot write", 2),
    ("screen", "screened 3 rows (1 with hits, written to", 1),
])
def test_an_unwritable_default_rejects_file_is_an_error_that_says_what_was_done(
        run, listed, tmp_path, command, done, listed_after):
    src = write(tmp_path, "bad.csv", CLEAN + "BAD#,P,FRA,lost,\n")
    default_rejects(command, src).mkdir()
    error = error_line(load_or_screen(run, command, src))
    assert done in error
    assert "--rejects PATH" in error
    assert records(run) == listed_after


def test_an_unwritable_rejects_file_is_one_error_line_and_loads_nothing(run, tmp_path):
    src = write(tmp_path, "src.csv", CLEAN + "BAD#,P,FRA,lost,\n")
    error = error_line(run("load", src, "--rejects", "/no/such/dir/r.csv"))
    assert "/no/such/dir/r.csv" in error
    assert records(run) == 0


@pytest.mark.parametrize(("command", "name"), [
    *((c, f"garbage.{ext}") for c in ("load", "screen") for ext in ("parquet", "arrow", "csv")),
    ("load", "garbage.jsonl"),  # every line a problem: no row to load
])
def test_an_unreadable_input_file_is_one_error_line(run, listed, tmp_path, name, command):
    src = tmp_path / name
    src.write_bytes(random.Random(0).randbytes(4096))
    error = error_line(load_or_screen(run, command, src))
    assert str(src) in error
    assert not (tmp_path / "garbage-hits.csv").exists()
    assert records(run) == 1


DISK_FULL = (OSError, 28, "No space left on device")


# Exceptions are made in the test, not in the table: a raised instance keeps its
# traceback, and with it the frames and the index, alive until the session ends.
@pytest.mark.parametrize(("args", "target", "exc", "message"), [
    pytest.param(["load", "{src}"], "sltd.store.upsert", DISK_FULL,
                 "OSError: [Errno 28] No space left on device", id="load-disk-full"),
    pytest.param(["check", "X1234567"], "sltd.search.Search.check", (RuntimeError, "boom"),
                 "RuntimeError: boom", id="check-bug"),
    pytest.param(["screen", "{src}", "--out", "{tmp}/o.csv"], "sltd.screen._write", DISK_FULL,
                 "No space left on device", id="screen-disk-full"),
    pytest.param(["reveal", "hx", "--ncb", "DEU", "--officer", "K"], "sltd.workflow.reveal",
                 (MemoryError,), "MemoryError", id="reveal-out-of-memory"),
    pytest.param(["check", "X1234567"], "sltd.search.Search.check", (KeyboardInterrupt,),
                 "interrupted", id="check-ctrl-c"),
    pytest.param(["check", "X1234567"], "sltd.search.Search.check",
                 (click.ClickException, "refused"), "refused", id="check-click-exception"),
])
def test_an_unexpected_failure_is_exit_3_never_exit_1(run, listed, tmp_path, monkeypatch,
                                                      args, target, exc, message):
    src = write(tmp_path, "src.csv", CLEAN)

    def fail(*a, **k):
        raise exc[0](*exc[1:])

    monkeypatch.setattr(target, fail)
    error = error_line(run(*(a.format(src=src, tmp=tmp_path) for a in args)))
    assert message in error


def test_an_error_message_never_carries_control_characters_to_the_terminal(run, tmp_path):
    src = write(tmp_path, "src.csv", "doc\x1b[2J\x07no,status\nX1234567,lost\n")
    error = error_line(run("load", src))
    assert "missing column" in error
    assert "doc\\x1b[2J\\x07no" in error
    assert not re.search(CONTROL_CHARACTERS, error)


# --- bad input costs its own row -------------------------------------------------------


@pytest.mark.parametrize(("field", "row"), [
    ("place_of_loss", f"Z1111111,P,FRA,lost,{'x' * TEN_MB}\n"),
    ("document_number", f"{'9' * TEN_MB},P,FRA,lost,\n"),
])
def test_an_oversize_field_rejects_its_row_only_and_the_output_stays_short(run, tmp_path,
                                                                           field, row):
    src = write(tmp_path, "big.csv", HEADER + LISTED + row + "Y7654321,I,DEU,lost,\n")
    res = run("load", src)
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout) < 2000
    assert "3 rows read, 2 inserted" in res.stdout
    assert f"row 2: {field}=" in res.stdout
    rejects = tmp_path / "big.csv.rejects.csv"
    assert rejects.stat().st_size < 5000
    assert [(r["row"], r["field"]) for r in rejects_of(rejects)] == [("2", field)]
    assert records(run) == 2


CONTROL = [("Pa\x00ris", "U+0000"), ("Paris\x1b[31m", "U+001B"), ("Paris\x85", "U+0085")]


@pytest.mark.parametrize(("value", "named"), CONTROL)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_control_character_in_place_of_loss_rejects_the_row_naming_it(run, tmp_path,
                                                                        value, named, fmt):
    rows = [("X1234567", "P", "FRA", "stolen", value), ("Y7654321", "I", "DEU", "lost", "")]
    text = (HEADER + "".join(",".join(r) + "\n" for r in rows)) if fmt == "csv" else \
        json_lines(*rows)
    rejects = tmp_path / "r.csv"
    res = run("load", write(tmp_path, f"src.{fmt}", text), "--rejects", rejects)
    assert res.exit_code == 0, res.stderr
    [problem] = rejects_of(rejects)
    assert (problem["row"], problem["field"]) == ("1", "place_of_loss")
    assert named in problem["reason"]
    assert "control character" in problem["reason"]
    assert records(run) == 1


@pytest.mark.parametrize(("value", "named"), CONTROL)
def test_a_record_refuses_a_control_character_in_place_of_loss(value, named):
    with pytest.raises(sltd.ValidationError, match=re.escape(named)) as e:
        sltd.Record("X1234567", "P", "FRA", "stolen", place_of_loss=value)
    assert e.value.field == "place_of_loss"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_tab_and_newline_in_place_of_loss_fold_to_one_space(run, tmp_path, fmt):
    value = "Paris\t\r\n CDG"
    if fmt == "csv":
        text = HEADER + f'X1234567,P,FRA,stolen,"{value}"\nY7654321,I,DEU,lost,\n'
    else:
        text = json.dumps({"document_number": "X1234567", "document_type": "P",
                           "issuing_country": "FRA", "status": "stolen",
                           "place_of_loss": value}) + "\n"
    assert run("init", "--ncb", "DEU").exit_code == 0
    res = run("load", write(tmp_path, f"src.{fmt}", text), "--json")
    assert json.loads(res.stdout)["rejected"] == 0
    assert sltd.Record("X1234567", "P", "FRA", "stolen", place_of_loss=value
                       ).place_of_loss == "Paris CDG"
    [hit] = hit_ids(run("check", "X1234567", "--json"))
    shown = run("reveal", hit, "--officer", "K. Weber")
    assert "place of loss: Paris CDG\n" in shown.stdout


@pytest.mark.parametrize(("line", "reason"), [
    ('{"document_number": "X1",', "not valid JSON"),
    ('["Z1111111", "P", "FRA", "lost"]', "not a JSON object"),
    ('"Z1111111"', "not a JSON object"),
])
def test_a_malformed_json_lines_line_is_a_problem_of_its_own_row(run, tmp_path, line, reason):
    good = [json.dumps({"document_number": n, "document_type": "P", "issuing_country": "FRA",
                        "status": "lost"}) for n in ("X1234567", "Y7654321")]
    rejects = tmp_path / "r.csv"
    res = run("load", write(tmp_path, "src.jsonl", "\n".join([good[0], line, good[1]]) + "\n"),
              "--rejects", rejects)
    assert res.exit_code == 0, res.stderr
    [problem] = rejects_of(rejects)
    assert (problem["row"], problem["field"], problem["value"]) == ("2", "(line)", line)
    assert problem["reason"].startswith(reason)
    assert records(run) == 2


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_saved_with_a_byte_order_mark_loads(run, tmp_path, fmt):
    text = CLEAN if fmt == "csv" else json_lines(("X1234567", "P", "FRA", "stolen", ""),
                                                 ("Y7654321", "I", "DEU", "lost", ""))
    src = tmp_path / f"src.{fmt}"
    src.write_bytes(b"\xef\xbb\xbf" + text.encode())
    res = run("load", src, "--json")
    assert res.exit_code == 0, res.stderr
    assert (json.loads(res.stdout)["inserted"], json.loads(res.stdout)["rejected"]) == (2, 0)


@pytest.mark.parametrize(("fmt", "field"), [("csv", "place_of_loss"), ("jsonl", "(line)")])
def test_a_value_that_is_not_utf8_rejects_its_row_naming_the_byte(run, tmp_path, fmt, field):
    rows = [("X1234567", "P", "FRA", "stolen", "Paris"), ("Z1111111", "P", "FRA", "lost", "@"),
            ("Y7654321", "I", "DEU", "lost", "")]
    text = (HEADER + "".join(",".join(r) + "\n" for r in rows)) if fmt == "csv" else \
        json_lines(*rows)
    src = tmp_path / f"src.{fmt}"
    src.write_bytes(text.encode().replace(b"@", b"Z\xfcrich"))  # Latin-1, as some exports
    rejects = tmp_path / "r.csv"
    assert run("load", src, "--rejects", rejects).exit_code == 0
    [problem] = rejects_of(rejects)
    assert (problem["row"], problem["field"]) == ("2", field)
    assert "Z\ufffdrich" in problem["value"]
    assert problem["reason"].startswith("not UTF-8 text (byte 0xFC is byte ")
    assert problem["reason"].endswith("save the file as UTF-8")
    assert records(run) == 2


def test_a_csv_header_that_is_not_utf8_is_refused_saying_so(run, tmp_path):
    src = tmp_path / "src.csv"
    src.write_bytes(b"num\xe9ro,status\nX1234567,lost\n")
    error = error_line(run("load", src))
    assert "the header row is not UTF-8 text ('num\ufffdro')" in error


def test_a_malformed_csv_line_has_the_same_row_and_reason_in_load_and_screen(run, tmp_path):
    src = write(tmp_path, "src.csv", HEADER +
                'X1234567,P,FRA,stolen,"Paris\nCDG"\n'  # one row over two lines
                "Y1234567,P,FRA\n"
                "Z1234567,P,FRA,lost,Lyon,extra\n"
                "A1234567,P,FRA,lost,\n")
    loaded, screened = tmp_path / "load.rejects.csv", tmp_path / "screen.rejects.csv"
    assert run("load", src, "--rejects", loaded).exit_code == 0
    res = run("screen", src, "--out", tmp_path / "o.csv", "--rejects", screened)
    assert res.exit_code == 1, res.stderr
    assert rejects_of(loaded) == rejects_of(screened)
    assert [(r["row"], r["field"], r["reason"]) for r in rejects_of(loaded)] == [
        ("2", "(line)", "expected 5 fields, found 3"),
        ("3", "(line)", "expected 5 fields, found 6"),
    ]
    assert records(run) == 2


def test_a_value_spanning_lines_loads_wherever_the_csv_blocks_fall(run, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr("sltd.sources.CSV_BLOCK", 100)  # rows of ~30 bytes: many blocks
    rows = [f'{n}234567,P,FRA,lost,"{c}\n{c}"\n' for n, c in zip("ABCDEFGHJK", "abcdefghjk",
                                                                 strict=True)]
    res = run("load", write(tmp_path, "src.csv", HEADER + "".join(rows)), "--json")
    assert res.exit_code == 0, res.stderr
    assert (json.loads(res.stdout)["inserted"], json.loads(res.stdout)["rejected"]) == (10, 0)


# --- hit ids and the searching NCB ------------------------------------------------------


def test_reveal_refuses_a_hit_id_issued_in_the_future(run, listed, db):
    with sltd.open_index(db, clock=sltd.ManualClock(FUTURE)) as ix:
        [hit] = ix.check("X1234567", ncb="DEU")
    error = error_line(run("reveal", hit.hit_id, "--ncb", "DEU", "--officer", "K. Weber"))
    assert "future" in error


def test_with_a_home_ncb_check_and_reveal_need_no_ncb(run, listed):
    assert run("init", "--ncb", "DEU").exit_code == 0
    res = run("check", "X1234567", "--json")
    assert res.stderr == ""
    [hit] = hit_ids(res)
    shown = run("reveal", hit, "--officer", "K. Weber")
    assert shown.exit_code == 0, shown.stderr
    assert "X1234567 P FRA is STOLEN" in shown.stdout


def test_without_any_ncb_a_hit_says_how_to_set_one_and_no_ncb_can_reveal_it(run, listed):
    res = run("check", "X1234567", "--json")
    [hit] = hit_ids(res)
    assert "sltd init --ncb" in res.stderr
    error = error_line(run("reveal", hit, "--ncb", "DEU", "--officer", "K. Weber"))
    assert "without a searching NCB" in error
