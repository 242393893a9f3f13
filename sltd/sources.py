"""Reading tabular input (CSV, Parquet, JSON Lines, Arrow) into Arrow, with a column mapping.

Loading records and screening manifests both start here, through one reader per format.
CSV and JSON Lines are read with every column as text, so that type problems are reported
by sltd's validation (field, value, reason) rather than failing the whole file; a
malformed CSV line (wrong number of fields) or JSON Lines line (not valid JSON), and a
value or line that is not UTF-8, is skipped and returned as a problem of its own row, and
the rest is read.

Example:
    >>> import pyarrow as pa
    >>> src = read_source(pa.table({"passport_no": ["X1"]}), mapping={"number": "passport_no"},
    ...                   required=("number",))
    >>> src.table.column_names
    ['number', '__row']
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sltd.errors import SourceError

FORMATS = ("csv", "parquet", "jsonl", "arrow")

Source: TypeAlias = str | os.PathLike[str] | pa.Table | pa.RecordBatch


@dataclasses.dataclass(frozen=True)
class Problem:
    """A row or line of the source that could not be used.

    Attributes:
        row: 1-based data row, the same for every format and for loads and screening: a
            CSV's header is not counted (its first data line is row 1); a JSON Lines row
            is its line number; a malformed row keeps its number and later rows are not
            renumbered.
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
) -> SourceTable:
    """Read a source into Arrow with sltd's column names.

    Args:
        source: a path (CSV, Parquet, JSON Lines, Arrow IPC) or an Arrow table.
        format: one of :data:`FORMATS`; by default taken from the file name.
        mapping: sltd column name -> source column name, for sources that use other names.
        required: sltd columns that must be present (an absent one raises SourceError).
        optional: sltd columns taken when present.
        keep: further source columns carried through unchanged (by their source names).

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
        path, fmt = _resolve(source, format)
        name = str(path)
        table, problems = read_file(path, fmt)
    wanted = _wanted(mapping, required, optional)
    present = [c for c in table.column_names if c != "__line"]
    _check_columns(name, present, wanted, required, problems, table.num_rows)
    absent_keep = [c for c in keep if c not in table.column_names]
    if absent_keep:
        raise SourceError(f"{name}: no column(s) {', '.join(absent_keep)} to carry through",
                          source=name)
    arrays, names = [], []
    for col, src in wanted.items():
        if src in table.column_names:
            arrays.append(_as_text(table.column(src)).cast(pa.string()))
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


def _resolve(source: str | os.PathLike[str], format: str | None) -> tuple[Path, str]:
    """A source path that exists, and its format."""
    path = Path(os.fspath(source))
    if not path.is_file():
        raise SourceError(f"no such file: {path}", source=str(path))
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise SourceError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}",
                          source=str(path))
    return path, fmt


def _wanted(mapping: Mapping[str, str] | None, required: tuple[str, ...],
            optional: tuple[str, ...]) -> dict[str, str]:
    """sltd column -> the source column it is read from."""
    mapping = mapping or {}
    return {col: mapping.get(col, col) for col in (*required, *optional)}


def _check_columns(name: str, present: Sequence[str], wanted: Mapping[str, str],
                   required: tuple[str, ...], problems: Sequence[Problem], rows: int) -> None:
    """Raise SourceError if a required column is missing from ``present``."""
    missing = [f"{col} (looked for column {src!r})" for col, src in wanted.items()
               if col in required and src not in present]
    if missing and problems and not rows:
        raise SourceError(f"{name}: no row could be read ({len(problems)} rejected; row "
                          f"{problems[0].row}: {problems[0].reason})", source=name)
    if missing:
        raise SourceError(
            f"{name}: missing column(s) {', '.join(missing)}; present: "
            f"{', '.join(present) or 'none'}; map other names with "
            "mapping / --map FIELD=COLUMN", source=name)


@dataclasses.dataclass(frozen=True)
class SourceStream:
    """A source opened to be read in batches of bounded size (see :func:`open_source`).

    Attributes:
        name: the file name, or ``"<arrow table>"``.
        rows: how many data rows it has, when its format says so up front (Parquet and
            Arrow files, tables); None for CSV and JSON Lines.
    """

    name: str
    rows: int | None
    _read: Callable[[], Iterator[SourceTable]] = dataclasses.field(repr=False)

    def batches(self) -> Iterator[SourceTable]:
        """The source in batches: each a :class:`SourceTable` of at most the batch size
        (sltd column names, text; a column may be dictionary-encoded text), with the
        rows its reader had to skip. A JSON Lines file missing a required column raises
        SourceError once it has been read to the end (its columns are known only then).
        """
        return self._read()


def open_source(
    source: Source,
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    batch_rows: int = 1 << 20,
    dictionary: tuple[str, ...] = (),
) -> SourceStream:
    """Open a source to be read in batches of at most ``batch_rows`` rows, so that memory
    does not grow with the file: the streaming twin of :func:`read_source`, with the same
    columns, row numbers and problems.

    Args:
        source: a path (CSV, Parquet, JSON Lines, Arrow IPC) or an Arrow table.
        format: one of :data:`FORMATS`; by default taken from the file name.
        mapping: sltd column name -> source column name.
        required: sltd columns that must be present (an absent one raises SourceError).
        optional: sltd columns taken when present.
        batch_rows: rows per batch.
        dictionary: sltd columns to read dictionary-encoded where the format stores them
            so (Parquet): their distinct values are then at hand without a pass.

    Returns:
        A :class:`SourceStream`; nothing but the header or footer is read yet.

    Raises:
        SourceError: no such file, unknown format, a required column missing.

    Example:
        >>> stream = open_source(pa.table({"n": ["X1", "X2", "X3"]}), mapping={"number": "n"},
        ...                      required=("number",), batch_rows=2)
        >>> [b.table.column("__row").to_pylist() for b in stream.batches()]
        [[1, 2], [3]]
    """
    wanted = _wanted(mapping, required, optional)
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        name, fmt, rows = "<arrow table>", None, source.num_rows
        present = [c for c in source.column_names if c != "__line"]
    else:
        path, fmt = _resolve(source, format)
        name = str(path)
        if fmt == "jsonl":
            return SourceStream(name, None, lambda: _jsonl_stream(path, wanted, required,
                                                                  batch_rows))
        present, rows = _columns(path, fmt)
    _check_columns(name, present, wanted, required, (), 1 if rows is None else rows)
    taken = [c for c in dict.fromkeys(wanted.values()) if c in present]
    batches = functools.partial(iter_batches, source, format=fmt, columns=taken,
                                batch_rows=batch_rows,
                                dictionary=[wanted[c] for c in dictionary if c in wanted])
    return SourceStream(name, rows, lambda: _sltd_batches(batches(), wanted, present))


def _columns(path: Path, fmt: str) -> tuple[list[str], int | None]:
    """The columns of a file, and its rows if its format says so up front (footer,
    schema); nothing else is read."""
    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(path)
            return pf.schema_arrow.names, pf.metadata.num_rows
        if fmt == "arrow":
            table = _read_arrow(path)  # memory-mapped: nothing is read yet
            return table.column_names, table.num_rows
    except (pa.ArrowException, OSError) as e:
        raise _unreadable(path, fmt, e) from None
    return csv_header(path), None


def _unreadable(path: Path, fmt: str, e: BaseException) -> SourceError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return SourceError(f"{path}: cannot read as {fmt}: {first}", source=str(path))


def _sltd_batches(batches: Batches, wanted: Mapping[str, str], present: Sequence[str]
                  ) -> Iterator[SourceTable]:
    """Batches of source columns as SourceTables of sltd columns (text) and ``__row``."""
    names = [col for col, src in wanted.items() if src in present]
    for batch, problems, rows in batches:
        arrays = [_as_text(batch.column(batch.schema.get_field_index(wanted[col])))
                  for col in names]
        yield SourceTable(pa.Table.from_arrays([*arrays, pa.array(rows, pa.int64())],
                                               names=[*names, "__row"]), tuple(problems))


def _jsonl_stream(path: Path, wanted: Mapping[str, str], required: tuple[str, ...],
                  batch_rows: int) -> Iterator[SourceTable]:
    """JSON Lines in batches. Its columns are the keys its objects have, known only at
    the end: a batch without a column gets nulls in it (its rows are then rejected if
    the column is required), and a required column no object had raises SourceError."""
    seen: dict[str, None] = {}
    rows, problems = 0, []
    try:
        for table, bad in _jsonl_batches(path, batch_rows):
            seen.update(dict.fromkeys(c for c in table.column_names if c != "__line"))
            rows += table.num_rows
            problems += bad[:1]
            arrays = [table.column(src) if src in table.column_names else
                      pa.nulls(table.num_rows, pa.string()) for src in wanted.values()]
            yield SourceTable(pa.Table.from_arrays(
                [*arrays, table.column("__line")], names=[*wanted, "__row"]), tuple(bad))
    except OSError as e:
        raise _unreadable(path, "jsonl", e) from None
    _check_columns(str(path), list(seen), wanted, required, problems, rows)


def _as_text(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A column as text; a dictionary-encoded one stays encoded (only its distinct values
    are cast), and so is one of another type, such as dates: casting a million dates to
    text took longer than validating them."""
    if pa.types.is_string(col.type):
        return col
    if not pa.types.is_dictionary(col.type):
        if pa.types.is_large_string(col.type) or pa.types.is_binary(col.type) or \
                pa.types.is_large_binary(col.type) or pa.types.is_null(col.type):
            return col.cast(pa.string())
        col = pc.dictionary_encode(col)
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([_as_text(c) for c in col.chunks],
                                pa.dictionary(col.type.index_type, pa.string()))
    return pa.DictionaryArray.from_arrays(col.indices, col.dictionary.cast(pa.string()))


def read_file(path: Path, fmt: str) -> tuple[pa.Table, list[Problem]]:
    """Read a whole file of a known format into Arrow, as it is (every column kept; CSV
    and JSON Lines as text), with the rows the reader had to skip. CSV and JSON Lines
    tables carry ``__line``, the data row of each good row (see :class:`Problem`)."""
    try:
        if fmt == "parquet":
            return pq.read_table(path), []
        if fmt == "arrow":
            return _read_arrow(path), []
        if fmt == "jsonl":
            return _read_jsonl(path)
        if fmt == "csv":
            batches, problems, rows = [], [], []
            columns = csv_header(path)
            for batch, bad, numbers in _csv_batches(path, columns, 1 << 20):
                batches.append(batch)
                problems += bad
                rows.append(numbers)
            table = pa.Table.from_batches(batches, schema=batches[0].schema)
            return table.append_column("__line", pa.array(np.concatenate(rows))), problems
        raise SourceError(f"unknown format {fmt!r}", source=str(path))
    except SourceError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise _unreadable(path, fmt, e) from None


def _read_jsonl(path: Path) -> tuple[pa.Table, list[Problem]]:
    """JSON Lines, whole (see :func:`_jsonl_batches`)."""
    tables, problems = [], []
    for table, bad in _jsonl_batches(path, 1 << 20):
        tables.append(table)
        problems += bad
    return pa.concat_tables(tables, promote_options="default"), problems


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[tuple[pa.Table, list[Problem]]]:
    """JSON Lines, one object per line, every value as text, in tables of at most
    ``batch_rows`` rows (the keys their objects have, and ``__line``). A line that is not
    UTF-8, not valid JSON, or not an object, is a problem of its own row (the line
    number); the others load. Blank lines are skipped (and counted, so rows keep their
    line numbers); a byte order mark is skipped."""
    rows: list[dict[str, str | None]] = []
    lines: list[int] = []
    problems: list[Problem] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(Problem(number, "(line)", _clip(raw.decode(
                    "utf-8", "replace").rstrip("\r\n")), _not_utf8(raw, e, "line")))
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as e:
                problems.append(Problem(number, "(line)", _clip(text.rstrip("\n")),
                                        f"not valid JSON: {e}"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(number, "(line)", _clip(text.rstrip("\n")),
                                        "not a JSON object (one object per line)"))
                continue
            rows.append({k: None if v is None else v if isinstance(v, str) else
                         json.dumps(v) for k, v in obj.items()})
            lines.append(number)
            if len(rows) == batch_rows:
                yield _jsonl_table(rows, lines), problems
                rows, lines, problems = [], [], []
    yield _jsonl_table(rows, lines), problems


def _jsonl_table(rows: list[dict[str, str | None]], lines: list[int]) -> pa.Table:
    names = list(dict.fromkeys(k for r in rows for k in r))
    table = pa.table({n: pa.array([r.get(n) for r in rows], pa.string()) for n in names})
    return table.append_column("__line", pa.array(lines, pa.int64()))


def _read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file, memory-mapped: its pages are read as batches use them (and
    belong to the page cache, not to this process's heap). Feather v1 is read whole."""
    try:
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except pa.ArrowInvalid:
        pass
    try:
        import pyarrow.feather as feather
        return feather.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise _unreadable(path, "arrow", e) from None


def _not_utf8(raw: bytes, e: UnicodeDecodeError, what: str) -> str:
    # the reason names the byte: an operator finds it, and sees the file's encoding
    return (f"not UTF-8 text (byte 0x{raw[e.start]:02X} is byte {e.start + 1} of the "
            f"{what}): save the file as UTF-8")


def _clip(text: str, limit: int = 1000) -> str:
    """A value as a rejects file keeps it: whole up to ``limit`` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def csv_header(path: Path) -> list[str]:
    """Column names from a CSV file's header row (quoted names read as CSV does).

    Raises:
        SourceError: no header row, or one that is not UTF-8 text.
    """
    import csv

    # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte order mark, which the
    # Arrow reader skips too (else the first column's name would not match)
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            header = next(csv.reader(f), None)
    except csv.Error as e:  # e.g. an unclosed quote: the "header" runs past the limit
        raise SourceError(f"{path}: cannot read the header row: {e}",
                          source=str(path)) from None
    if not header:
        raise SourceError(f"{path}: empty file (no header row)", source=str(path))
    for name in header:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise SourceError(f"{path}: the header row is not UTF-8 text ({shown!r}): "
                              "save the file as UTF-8", source=str(path)) from None
    return [h.strip() for h in header]


#: Bytes per CSV block: one row must fit in a block, so a 10 MB value still reads (and is
#: then refused by validation, that row only).
CSV_BLOCK = 1 << 25

Batches = Iterator[tuple[pa.RecordBatch, list[Problem], np.ndarray]]


def iter_batches(source: Source, *, format: str | None, columns: Sequence[str],
                 batch_rows: int, dictionary: Sequence[str] = ()) -> Batches:
    """Stream a source as Arrow batches of its own ``columns``, each with the problems
    met reading it and the 1-based data row of each of its rows (a CSV line that cannot be
    parsed keeps its number: later rows are not renumbered).

    ``dictionary`` columns of a Parquet file are read dictionary-encoded (their distinct
    values are mapped once). JSON Lines and Arrow files are read whole (their readers have
    no streaming mode here).
    """
    done = 0
    for batch, problems, rows in _iter_batches(source, format=format, columns=columns,
                                               batch_rows=batch_rows, dictionary=dictionary):
        if rows is None:
            rows = np.arange(done + 1, done + batch.num_rows + 1, dtype=np.int64)
        if len(rows):
            done = int(rows[-1])
        yield batch, problems, rows


def _iter_batches(source: Source, *, format: str | None, columns: Sequence[str],
                  batch_rows: int, dictionary: Sequence[str]
                  ) -> Iterator[tuple[pa.RecordBatch, list[Problem], np.ndarray | None]]:
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        table = source if isinstance(source, pa.Table) else pa.Table.from_batches([source])
        yield from _table_batches(table, columns, batch_rows)
        return
    path = Path(os.fspath(source))
    fmt = format or detect_format(path)
    try:
        if fmt == "parquet":
            # pre_buffer caches every row group's column chunks for the reader's lifetime:
            # memory grew ~16 bytes per manifest row (0.8 GiB at 50M rows) without it off.
            present = set(pq.read_schema(path).names)  # optional columns may be absent
            pf = pq.ParquetFile(path, read_dictionary=[c for c in dictionary if c in present],
                                pre_buffer=False)
            yield from ((b, [], None) for b in pf.iter_batches(batch_size=batch_rows,
                                                              columns=list(columns)))
        elif fmt == "csv":
            yield from _csv_batches(path, columns, batch_rows)
        else:
            table, problems = read_file(path, fmt)
            yield pa.RecordBatch.from_pylist([], schema=table.select(
                list(columns)).schema), problems, np.zeros(0, np.int64)
            yield from _table_batches(table, columns, batch_rows)
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{path}: cannot read as {fmt}: {str(e).splitlines()[0]}",
                          source=str(path)) from None


def _table_batches(table: pa.Table, columns: Sequence[str], batch_rows: int
                   ) -> Iterator[tuple[pa.RecordBatch, list[Problem], np.ndarray | None]]:
    """Batches of a table; its ``__line`` column, if any, gives each row's data row."""
    lines = table.column("__line").to_numpy() if "__line" in table.column_names else None
    done = 0
    for b in table.select(list(columns)).to_batches(max_chunksize=batch_rows):
        yield b, [], None if lines is None else lines[done: done + b.num_rows]
        done += b.num_rows


def _csv_batches(path: Path, columns: Sequence[str], batch_rows: int
                 ) -> Iterator[tuple[pa.RecordBatch, list[Problem], np.ndarray]]:
    """The one CSV reader (loads and screening): every column as text, malformed lines
    and values that are not UTF-8 reported by data row, and the data row of each good
    row."""
    import pyarrow.csv as pacsv

    bad: list[Problem] = []

    def on_invalid(row: Any) -> str:
        # row.number is the physical line (header = 1): data row = line - 1
        bad.append(Problem(int(row.number or 1) - 1, "(line)", _clip(row.text),
                           f"expected {row.expected_columns} fields, found "
                           f"{row.actual_columns}"))
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, use_threads=False),
        # a quoted value may span lines: without this, one that straddles a block
        # boundary desynchronises the reader and the whole file is refused
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid,
                                         newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(columns),
            # read as bytes: a value that is not UTF-8 then costs its row, not the file
            column_types={c: pa.binary() for c in columns}, strings_can_be_null=True))
    skipped: list[int] = []  # data rows of bad lines so far, in order
    next_row = 1
    for batch in reader:
        problems, bad[:] = list(bad), []
        skipped += [p.row for p in problems]
        # the data-row numbers of this batch's good rows: the next ones not skipped
        span = np.arange(next_row, next_row + batch.num_rows + len(skipped) + 1)
        good = span[~np.isin(span, skipped)][: batch.num_rows]
        next_row = int(good[-1]) + 1 if len(good) else next_row
        batch, good, not_text = _as_utf8(batch, good)
        problems += not_text
        for start in range(0, batch.num_rows, batch_rows):
            yield (batch.slice(start, batch_rows), problems if start == 0 else [],
                   good[start: start + batch_rows])
    schema = pa.schema([(name, pa.string()) for name in reader.schema.names])
    yield pa.RecordBatch.from_pylist([], schema=schema), list(bad), np.zeros(0, np.int64)


def _as_utf8(batch: pa.RecordBatch, rows: np.ndarray
             ) -> tuple[pa.RecordBatch, np.ndarray, list[Problem]]:
    """A batch of bytes columns as text (Arrow validates each column at once); a row
    with a value that is not UTF-8 is left out, and each such value reported."""
    arrays, problems = [], []
    bad = np.zeros(batch.num_rows, bool)
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        try:
            arrays.append(col.cast(pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        text: list[str | None] = []  # the rare column with bad bytes: value by value
        for i, raw in enumerate(col.to_pylist()):
            try:
                text.append(None if raw is None else raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                text.append(None)
                bad[i] = True
                problems.append(Problem(int(rows[i]), name, _clip(raw.decode(
                    "utf-8", "replace")), _not_utf8(raw, e, "value")))
        arrays.append(pa.array(text, pa.string()))
    out = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    if not problems:
        return out, rows, []
    return out.filter(pa.array(~bad)), rows[~bad], problems


def write_rejects(path: str | os.PathLike[str], problems: Sequence[Problem], *,
                  inputs: Sequence[Any] = ()) -> None:
    """Write ``problems`` as CSV (row, field, value, reason); a value longer than 1000
    characters is cut (a 10 MB value is refused whole, not copied whole).

    Raises:
        SourceError: ``path`` is one of the ``inputs`` (an operator's own file is never
            overwritten), or cannot be written.
    """
    refuse_overwrite(path, inputs, what="rejects file")
    import csv

    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["row", "field", "value", "reason"])
            for p in problems:
                w.writerow([p.row, p.field, p.value if p.value is None else _clip(str(p.value)),
                            p.reason])
    except OSError as e:
        raise SourceError(f"cannot write the rejects file {os.fspath(path)}: "
                          f"{e.strerror or e}", source=os.fspath(path)) from None


def refuse_overwrite(out: str | os.PathLike[str], inputs: Sequence[Any], *,
                     what: str) -> None:
    """Raise SourceError if ``out`` names the same file as one of ``inputs`` (paths;
    tables and None are ignored): sltd never writes over what it reads.

    Example:
        >>> refuse_overwrite("a.csv", ["./a.csv"], what="rejects file")
        Traceback (most recent call last):
        ...
        sltd.errors.SourceError: refusing to write the rejects file a.csv: it is the input ...
    """
    target = os.path.realpath(os.fspath(out))
    for src in inputs:
        if isinstance(src, (str, os.PathLike)) and os.path.realpath(os.fspath(src)) == target:
            raise SourceError(f"refusing to write the {what} {os.fspath(out)}: it is the "
                              f"input {os.fspath(src)}; name another file",
                              source=os.fspath(out))


def arrow_from_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """A small Arrow table from dicts (all values as text), for single-record updates."""
    cols = sorted({k for r in rows for k in r})
    return pa.table({c: pa.array([None if r.get(c) is None else str(r.get(c)) for r in rows],
                                 pa.string()) for c in cols})
