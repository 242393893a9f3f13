"""Reading tabular input (CSV, Parquet, JSON Lines, Arrow) into Arrow, with a column mapping.

Loading records and screening manifests both start here. CSV and JSON Lines are read by
DuckDB with every column as text, so that type problems are reported by sltd's validation
(field, value, reason) rather than failing the whole file; structurally malformed CSV lines
(wrong number of fields, bad quoting) are skipped by DuckDB and returned as problems with
their line number.

Example:
    >>> import pyarrow as pa
    >>> src = read_source(pa.table({"passport_no": ["X1"]}), mapping={"number": "passport_no"},
    ...                   required=("number",))
    >>> src.table.column_names
    ['number', '__row']
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sltd.errors import SourceError

FORMATS = ("csv", "parquet", "jsonl", "arrow")

Source: TypeAlias = str | os.PathLike[str] | pa.Table | pa.RecordBatch


@dataclasses.dataclass(frozen=True)
class Problem:
    """A row or line of the source that could not be used.

    Attributes:
        row: 1-based data row (CSV: the physical line number, header is line 1).
        field: the field at fault, or ``"(line)"`` for a malformed line.
        value: the offending value as read (text).
        reason: what is wrong.
    """

    row: int
    field: str
    value: str | None
    reason: str


@dataclasses.dataclass(frozen=True)
class SourceTable:
    """An input read into Arrow: the wanted columns renamed to sltd's names, all text,
    plus ``__row`` (1-based position of the data row in the source), and the lines the
    reader had to skip."""

    table: pa.Table
    problems: tuple[Problem, ...] = ()
    name: str = "<table>"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Format from the file name: .csv/.tsv, .parquet/.pq, .jsonl/.ndjson/.json, .arrow."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".csv", ".tsv", ".txt"):
            return "csv"
        if suffix in (".parquet", ".pq"):
            return "parquet"
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
        if suffix in (".arrow", ".feather", ".ipc"):
            return "arrow"
    raise SourceError(
        f"cannot tell the format of {os.fspath(path)!r} from its name; give format= one of "
        f"{', '.join(FORMATS)}", source=path)


def read_source(
    source: Source,
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    keep: tuple[str, ...] = (),
    con: duckdb.DuckDBPyConnection | None = None,
) -> SourceTable:
    """Read a source into Arrow with sltd's column names.

    Args:
        source: a path (CSV, Parquet, JSON Lines, Arrow IPC) or an Arrow table.
        format: one of :data:`FORMATS`; by default taken from the file name.
        mapping: sltd column name -> source column name, for sources that use other names.
        required: sltd columns that must be present (an absent one raises SourceError).
        optional: sltd columns taken when present.
        keep: further source columns carried through unchanged (by their source names).
        con: DuckDB connection to read CSV/JSON with (a private one by default).

    Returns:
        A :class:`SourceTable`; every sltd column is a string column.

    Raises:
        SourceError: unreadable file, unknown format, or a required column missing.
    """
    mapping = dict(mapping or {})
    name = "<arrow table>"
    problems: list[Problem] = []
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        table = source
    else:
        path = Path(os.fspath(source))
        name = str(path)
        if not path.is_file():
            raise SourceError(f"no such file: {name}", source=name)
        fmt = format or detect_format(path)
        if fmt not in FORMATS:
            raise SourceError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}",
                              source=name)
        table, problems = read_file(path, fmt, con)
    wanted = {col: mapping.get(col, col) for col in (*required, *optional)}
    missing = [f"{col} (looked for column {src!r})" for col, src in wanted.items()
               if col in required and src not in table.column_names]
    if missing:
        raise SourceError(
            f"{name}: missing column(s) {', '.join(missing)}; present: "
            f"{', '.join(table.column_names) or 'none'}; map other names with "
            "mapping / --map FIELD=COLUMN", source=name)
    absent_keep = [c for c in keep if c not in table.column_names]
    if absent_keep:
        raise SourceError(f"{name}: no column(s) {', '.join(absent_keep)} to carry through",
                          source=name)
    arrays, names = [], []
    for col, src in wanted.items():
        if src in table.column_names:
            arrays.append(_as_text(table.column(src)))
            names.append(col)
    for col in keep:
        if col not in names:
            arrays.append(table.column(col))
            names.append(col)
    rows = table.column("__line") if "__line" in table.column_names else pa.array(
        np.arange(1, table.num_rows + 1, dtype=np.int64))
    arrays.append(rows)
    names.append("__row")
    return SourceTable(pa.Table.from_arrays(arrays, names=names), tuple(problems), name)


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(pa.string())


def read_file(path: Path, fmt: str, con: duckdb.DuckDBPyConnection | None = None
              ) -> tuple[pa.Table, list[Problem]]:
    """Read a whole file of a known format into Arrow, as it is (every column kept), with
    the lines the reader had to skip."""
    try:
        if fmt == "parquet":
            return pq.read_table(path), []
        if fmt == "arrow":
            import pyarrow.feather as feather
            return feather.read_table(path), []
        own = con is None
        con = con or duckdb.connect()
        try:
            if fmt == "csv":
                return _read_csv(con, path)
            rel = con.sql(
                "SELECT * FROM read_json(?, format='newline_delimited', ignore_errors=true)",
                params=[str(path)])
            return rel.to_arrow_table(), []
        finally:
            if own:
                con.close()
    except SourceError:
        raise
    except (duckdb.Error, pa.ArrowException, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SourceError(f"{path}: cannot read as {fmt}: {first}", source=str(path)) from None


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[pa.Table, list[Problem]]:
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: empty file (no header row)", source=str(path))
    # Every column as text; malformed lines are skipped by DuckDB and kept in its rejects
    # tables, from which we report them. The physical line of each good row is not exposed
    # by read_csv, so rows are numbered by position (header excluded).
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    rel = con.sql(
        "SELECT * FROM read_csv(?, all_varchar=true, header=true, store_rejects=true, "
        "parallel=false)", params=[str(path)])
    table = rel.to_arrow_table()
    # DuckDB reports one error per missing column; an operator wants one per line.
    bad = con.sql("""
        SELECT line, any_value(csv_line), string_agg(DISTINCT split_part(error_message,
               chr(10), 1), '; ') FROM reject_errors GROUP BY line ORDER BY line""").fetchall()
    problems = [Problem(int(line), "(line)", csv_line, msg) for line, csv_line, msg in bad]
    if bad:
        # number good rows by their physical line: data rows start at line 2, skipping bad ones
        bad_lines = sorted({int(b[0]) for b in bad})
        lines = np.arange(2, table.num_rows + len(bad_lines) + 2, dtype=np.int64)
        lines = lines[~np.isin(lines, bad_lines)][: table.num_rows]
    else:
        lines = np.arange(2, table.num_rows + 2, dtype=np.int64)
    table = table.append_column("__line", pa.array(lines))
    return table, problems


def arrow_from_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """A small Arrow table from dicts (all values as text), for single-record updates."""
    cols = sorted({k for r in rows for k in r})
    return pa.table({c: pa.array([None if r.get(c) is None else str(r.get(c)) for r in rows],
                                 pa.string()) for c in cols})
