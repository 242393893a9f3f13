"""Reading sources: the streaming reader (batches of bounded size) reads what the whole-file
reader reads, with the same row numbers and problems, in every format."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sltd import SourceError
from sltd.sources import open_source, read_source
from sltd.synth import synth_records, write_table

FIELDS = dict(required=("document_number", "status"), optional=("place_of_loss",))


def streamed(source, batch_rows, **options):
    stream = open_source(source, batch_rows=batch_rows, **FIELDS, **options)
    parts = list(stream.batches())
    assert all(p.table.num_rows <= batch_rows for p in parts)
    table = pa.concat_tables([p.table.cast(parts[0].table.schema) for p in parts])
    return stream, table, [q for p in parts for q in p.problems]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "arrow", "table"])
@pytest.mark.parametrize("batch_rows", [1, 4, 1000])
def test_batches_hold_what_the_whole_file_holds(tmp_path, fmt, batch_rows):
    table = synth_records(23, seed=5)
    source = table if fmt == "table" else tmp_path / f"r.{fmt}"
    if fmt != "table":
        write_table(table, source)
    whole = read_source(source, **FIELDS)
    stream, got, problems = streamed(source, batch_rows)
    assert got.cast(pa.schema([(f.name, pa.string()) if f.name != "__row" else f
                               for f in got.schema])) == whole.table
    assert problems == list(whole.problems) == []
    assert stream.rows == (None if fmt in ("csv", "jsonl") else 23)


BAD_CSV = ("document_number,status,place_of_loss\n"
           "X1234567,lost,Paris\n"
           "Y1234567,lost\n"  # malformed: row 2
           "Z1234567,stolen,\"Lyon\nPart-Dieu\"\n"
           "A1234567,lost,Nice\n")
BAD_JSONL = ('{"document_number": "X1234567", "status": "lost"}\n'
             "not json\n"
             "\n"
             '{"document_number": "Z1234567", "status": "stolen", "place_of_loss": 3}\n'
             '["not", "an", "object"]\n'
             '{"document_number": "A1234567", "status": "lost"}\n')


@pytest.mark.parametrize(("name", "text"), [("bad.csv", BAD_CSV), ("bad.jsonl", BAD_JSONL)])
@pytest.mark.parametrize("batch_rows", [1, 2, 100])
def test_bad_lines_keep_their_rows_and_problems_in_any_batches(tmp_path, name, text,
                                                               batch_rows):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    whole = read_source(path, **FIELDS)
    _, got, problems = streamed(path, batch_rows)
    assert got.column("__row").to_pylist() == whole.table.column("__row").to_pylist()
    assert got.column("document_number").to_pylist() == \
        whole.table.column("document_number").to_pylist()
    assert problems == list(whole.problems)
    assert problems  # the fixtures have bad lines


def test_a_parquet_column_can_be_read_dictionary_encoded(tmp_path):
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"document_number": ["X1", "X2"], "status": ["lost", "lost"]}),
                   path)
    _, got, _ = streamed(path, 10, dictionary=("status",))
    assert pa.types.is_dictionary(got.column("status").type)
    assert got.column("status").to_pylist() == ["lost", "lost"]


def test_a_missing_column_is_refused_before_any_batch_is_read(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("document_number\nX1234567\n", encoding="utf-8")
    with pytest.raises(SourceError, match="missing column"):
        open_source(path, **FIELDS)


def test_a_json_lines_file_without_a_required_key_is_refused_once_read(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"document_number": f"X{i:07d}"}) + "\n"
                            for i in range(5)), encoding="utf-8")
    stream = open_source(path, batch_rows=2, **FIELDS)  # its keys are known only at the end
    with pytest.raises(SourceError, match="missing column.*status"):
        list(stream.batches())


def test_a_json_lines_key_first_seen_in_a_late_batch_is_read(tmp_path):
    rows = [{"document_number": "X1234567"}] * 3 + [{"document_number": "Y1234567",
                                                      "status": "lost"}]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _, got, _ = streamed(path, 2)
    assert got.column("status").to_pylist() == [None, None, None, "lost"]
