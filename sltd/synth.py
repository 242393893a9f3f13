"""Realistic synthetic SLTD records and passenger manifests, generated column-wise.

Shapes follow what issuing states print (``D`` digit, ``L`` letter, ``A`` letter or digit,
``C`` the consonants-and-digits alphabet of German documents); the country mix is skewed
the way SLTD's is (a few large contributors, a long tail); every status occurs; optional
fields are partly filled. Keys are unique. Numbers come one of two ways (``numbering``):

- ``"ranges"``: as issuers number them, from sequential ranges in each issuer's format,
  issue and expiry dates following the serial, 1.6-5.8% of a range listed plus batches of
  consecutive stolen blanks (the model is :mod:`sltd.issuance`). Streams: any size is
  written in bounded memory (:func:`write_synth`), and a manifest's clean documents come
  from the same ranges, with their true dates.
- ``"random"``: each number drawn at random in its shape; dates drawn apart from it;
  blanks carry no issue or expiry date. Made in memory, in one piece.

The library's default is ``"random"`` (tests and benchmarks of other modules rely on its
tables); ``sltd synth`` defaults to ``"ranges"``.

Example:
    >>> t = synth_records(1000, seed=1)
    >>> t.num_rows, sorted(set(t.column("status").to_pylist()))[:2]
    (1000, ['lost', 'revoked'])
    >>> r = synth_records(1000, seed=1, numbering="ranges")
    >>> r.num_rows, r.schema.equals(t.schema)
    (1000, True)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sltd.errors import SourceError

if TYPE_CHECKING:
    from sltd.issuance import IssuancePlan

#: Characters of each shape class.
ALPHABETS = {
    "D": b"0123456789",
    "L": b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "A": b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "C": b"CFGHJKLMNPRTVWXYZ0123456789",
}

#: Share of records per issuing country (skewed: a few big contributors, a long tail).
COUNTRY_WEIGHTS: dict[str, float] = {
    "USA": 9, "GBR": 7, "FRA": 7, "DEU": 6, "ITA": 5, "ESP": 5, "CAN": 4, "AUS": 4,
    "NLD": 3, "BEL": 3, "POL": 3, "CHE": 2, "SWE": 2, "TUR": 2, "RUS": 2, "UKR": 2,
    "CHN": 2, "IND": 2, "BRA": 2, "MEX": 2, "ARG": 1.5, "COL": 1.5, "NGA": 1.5,
    "ZAF": 1.5, "EGY": 1, "MAR": 1, "DZA": 1, "TUN": 1, "KEN": 1, "ETH": 1, "PAK": 1,
    "BGD": 1, "IDN": 1, "PHL": 1, "VNM": 1, "THA": 1, "MYS": 1, "JPN": 1, "KOR": 1,
    "AUT": 1, "PRT": 1, "GRC": 1, "ROU": 1, "BGR": 1, "HUN": 1, "CZE": 1, "IRL": 1,
    "NOR": 1, "DNK": 1, "FIN": 1, "NZL": 0.5, "CHL": 0.5, "PER": 0.5, "SEN": 0.5,
    "GHA": 0.5, "IRN": 0.5, "IRQ": 0.5, "SYR": 0.5, "AFG": 0.5, "LBN": 0.3,
    "UNO": 0.05, "XXA": 0.05, "EUE": 0.02,
}

#: Number shape per (country, type); ``None`` is the country's default for any type.
SHAPES: dict[tuple[str, str | None], str] = {
    ("USA", "P"): "LDDDDDDDD", ("USA", None): "DDDDDDDDD",
    ("GBR", "P"): "DDDDDDDDD", ("GBR", None): "LLDDDDDDD",
    ("FRA", "P"): "DDLLDDDDD", ("FRA", "I"): "AAAAAAAAA", ("FRA", None): "DDLLDDDDD",
    ("DEU", None): "CCCCCCCCC",
    ("ITA", "P"): "LLDDDDDDD", ("ITA", "I"): "CLDDDDDLL", ("ITA", None): "LLDDDDDDD",
    ("ESP", "P"): "LLLDDDDDD", ("ESP", "I"): "LLLDDDDDD", ("ESP", None): "LLLDDDDDD",
    ("CAN", None): "LLDDDDDDD", ("AUS", None): "LLDDDDDDD", ("NLD", None): "LLAAAAAAD",
    ("BEL", None): "LLDDDDDDD", ("POL", None): "LLDDDDDDD", ("CHN", None): "LDDDDDDDD",
    ("IND", None): "LDDDDDDD", ("RUS", None): "DDDDDDDDD", ("BRA", None): "LLDDDDDD",
    ("JPN", None): "LLDDDDDDD", ("UNO", None): "DDDDDDDDD", ("XXA", None): "LDDDDDDDD",
}
_DEFAULT_SHAPE = "LLDDDDDDD"

DOC_TYPE_WEIGHTS: dict[str, float] = {
    "P": 60, "I": 28, "V": 3, "R": 5, "PD": 1, "PS": 1, "T": 1.5, "O": 0.5,
}
STATUS_WEIGHTS: dict[str, float] = {"lost": 55, "stolen": 30, "stolen_blank": 5, "revoked": 10}
PLACES = ("Airport", "Central Station", "City Centre", "Hotel", "Harbour", "Bus Terminal",
          "Residence", "Vehicle", "Unknown")
EPOCH = dt.date(1970, 1, 1)

#: Columns of synthetic records, whatever the numbering: the loader's default names.
RECORD_SCHEMA = pa.schema([
    ("document_number", pa.string()), ("document_type", pa.string()),
    ("issuing_country", pa.string()), ("status", pa.string()), ("owner_ncb", pa.string()),
    ("place_of_loss", pa.string()), ("date_of_loss", pa.date32()),
    ("date_of_issue", pa.date32()), ("date_of_expiry", pa.date32()),
])
Numbering = Literal["ranges", "random"]
NUMBERINGS: tuple[Numbering, ...] = ("ranges", "random")
#: Rows per batch a ranges-numbered list is made and written in (~150 MB of work each).
BATCH_ROWS = 1 << 20
#: Schema metadata key of a ranges-numbered list: what its plan is made from.
PLAN_KEY = b"sltd.synth"
_PLAN_VERSION = 1


def shape_for(country: str, doc_type: str) -> str:
    """The number shape used for a (country, type)."""
    return SHAPES.get((country, doc_type)) or SHAPES.get((country, None)) or _DEFAULT_SHAPE


def random_numbers(rng: np.random.Generator, shape: str, n: int) -> np.ndarray:
    """``n`` numbers of a shape, as a NumPy fixed-width bytes array."""
    cols = [np.frombuffer(ALPHABETS[s], dtype=np.uint8)[
        rng.integers(0, len(ALPHABETS[s]), n)] for s in shape]
    return np.ascontiguousarray(np.stack(cols, axis=1)).view(f"S{len(shape)}").ravel()


def _weights(d: dict[str, float]) -> tuple[list[str], np.ndarray]:
    keys = list(d)
    w = np.array([d[k] for k in keys], dtype=float)
    return keys, w / w.sum()


def synth_records(n: int, *, seed: int = 0, today: dt.date | None = None,
                  numbering: Numbering = "random") -> pa.Table:
    """``n`` synthetic records with the loader's default column names, in memory.

    Args:
        n: how many records (keys are unique).
        seed: random seed; the same seed gives the same table.
        today: the date the list is drawn on: no date of loss is later (default
            2026-01-01, fixed for reproducibility).
        numbering: ``"random"`` or ``"ranges"`` (see the module docstring); a ranges
            table carries what its plan is made from in its schema metadata.

    Example (a ranges-numbered list: neighbours in a range, issued on the same day):
        >>> t = synth_records(10000, seed=2, numbering="ranges").slice(2, 2)
        >>> [(r["document_number"], r["issuing_country"], str(r["date_of_issue"]))
        ...  for r in t.to_pylist()]
        [('7F53514IN', 'ITA', '2024-07-06'), ('7F53514IO', 'ITA', '2024-07-06')]
    """
    if numbering != "random":
        return synth_stream(n, seed=seed, today=today, numbering=numbering).read_all()
    if n < 0:
        raise SourceError(f"record count must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    today = today or dt.date(2026, 1, 1)
    countries, cw = _weights(COUNTRY_WEIGHTS)
    types, tw = _weights(DOC_TYPE_WEIGHTS)
    group_counts = rng.multinomial(n, np.outer(cw, tw).ravel()).reshape(len(cw), len(tw))
    numbers, ctry, typ = [], [], []
    for ci, country in enumerate(countries):
        for ti, doc_type in enumerate(types):
            k = int(group_counts[ci, ti])
            if k == 0:
                continue
            shape = shape_for(country, doc_type)
            got = np.unique(random_numbers(rng, shape, k))
            while len(got) < k:  # collisions in small shapes: draw again
                got = np.unique(np.concatenate([got, random_numbers(rng, shape, k - len(got))]))
            numbers.append(got[rng.permutation(k)])
            ctry.append(np.full(k, ci, dtype=np.int16))
            typ.append(np.full(k, ti, dtype=np.int8))
    if not numbers:
        return _table([], np.array([], dtype=np.int16), np.array([], dtype=np.int8),
                      countries, types, rng, 0, today)
    order = rng.permutation(n)
    all_numbers = np.concatenate(numbers)[order]
    return _table(all_numbers, np.concatenate(ctry)[order], np.concatenate(typ)[order],
                  countries, types, rng, n, today)


def _table(numbers: np.ndarray | list[bytes], ci: np.ndarray, ti: np.ndarray,
           countries: list[str], types: list[str], rng: np.random.Generator, n: int,
           today: dt.date) -> pa.Table:
    statuses, sw = _weights(STATUS_WEIGHTS)
    si = rng.choice(len(statuses), n, p=sw)
    country_arr = pa.DictionaryArray.from_arrays(pa.array(ci, pa.int16()), pa.array(countries))
    country_col = country_arr.cast(pa.string())
    type_col = pa.DictionaryArray.from_arrays(pa.array(ti, pa.int8()), pa.array(types)
                                              ).cast(pa.string())
    status_col = pa.DictionaryArray.from_arrays(pa.array(si, pa.int8()), pa.array(statuses)
                                                ).cast(pa.string())
    is_org = np.isin(np.array(countries)[ci] if n else np.array([], dtype=str),
                     ["UNO", "XXA", "EUE"])
    owner = pc.if_else(pa.array(~is_org & (rng.random(n) < 0.9)), country_col,
                       pa.nulls(n, pa.string()))
    places = pa.array(PLACES)
    place = pc.if_else(pa.array(rng.random(n) < 0.5),
                       places.take(pa.array(rng.integers(0, len(PLACES), n))),
                       pa.nulls(n, pa.string()))
    today_days = (today - EPOCH).days
    loss_days = today_days - rng.integers(0, 3650, n)
    issue_days = loss_days - rng.integers(30, 3000, n)
    expiry_days = issue_days + np.where(rng.random(n) < 0.5, 3652, 1826)
    blank = si == statuses.index("stolen_blank")

    def dates(days: np.ndarray, keep: np.ndarray) -> pa.Array:
        arr = pa.array(days.astype("int32"), pa.int32()).cast(pa.date32())
        return pc.if_else(pa.array(keep), arr, pa.nulls(n, pa.date32()))

    return pa.table({
        "document_number": pa.array(numbers, pa.binary()).cast(pa.string()) if n else
        pa.array([], pa.string()),
        "document_type": type_col,
        "issuing_country": country_col,
        "status": status_col,
        "owner_ncb": owner,
        "place_of_loss": place,
        "date_of_loss": dates(loss_days, rng.random(n) < 0.7),
        "date_of_issue": dates(issue_days, ~blank & (rng.random(n) < 0.8)),
        "date_of_expiry": dates(expiry_days, ~blank & (rng.random(n) < 0.8)),
    })


def synth_stream(n: int, *, seed: int = 0, today: dt.date | None = None,
                 numbering: Numbering = "random", batch_rows: int = BATCH_ROWS
                 ) -> pa.RecordBatchReader:
    """``n`` synthetic records as a stream of batches of ``batch_rows`` (the last may be
    shorter). Ranges numbering makes each batch when it is read, so memory stays bounded
    whatever ``n``; its schema's metadata says what its plan is made from. Random
    numbering makes the whole table first. The rows do not depend on ``batch_rows``.

    Example:
        >>> reader = synth_stream(2500, seed=3, numbering="ranges", batch_rows=1000)
        >>> [b.num_rows for b in reader]
        [1000, 1000, 500]
    """
    if numbering not in NUMBERINGS:
        raise SourceError(f"unknown numbering {numbering!r}; use one of "
                          f"{', '.join(NUMBERINGS)}")
    if batch_rows < 1:
        raise SourceError(f"batch_rows must be >= 1, got {batch_rows}")
    if numbering == "random":
        table = synth_records(n, seed=seed, today=today)
        return pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=batch_rows))
    from sltd.issuance import issuance_plan

    plan = issuance_plan(n, seed=seed, today=today)
    info = {"numbering": numbering, "n": n, "seed": seed, "today": plan.today.isoformat(),
            "version": _PLAN_VERSION}
    schema = RECORD_SCHEMA.with_metadata({PLAN_KEY: json.dumps(info).encode()})
    batches = (plan.records(start, start + batch_rows) for start in range(0, n, batch_rows))
    return pa.RecordBatchReader.from_batches(schema, batches)


def write_synth(path: str | os.PathLike[str], n: int, *, seed: int = 0,
                numbering: Numbering = "random", today: dt.date | None = None,
                format: str | None = None, batch_rows: int = BATCH_ROWS) -> None:
    """Write ``n`` synthetic records (see :func:`synth_stream`) to ``path`` as Parquet,
    CSV, JSON Lines or Arrow (format from the name by default), batch by batch: ranges
    numbering writes any ``n`` in bounded memory (0.5 GiB peak for 10M records here; the
    batches of a 130M-record list take no more). Parquet and Arrow files keep the ranges
    plan, for manifests made from them. The file appears only when complete.

    Example:
        >>> import tempfile, pyarrow.parquet as pq
        >>> out = Path(tempfile.mkdtemp()) / "records.parquet"
        >>> write_synth(out, 5000, seed=7, numbering="ranges")
        >>> pq.read_metadata(out).num_rows
        5000
    """
    write_stream(synth_stream(n, seed=seed, today=today, numbering=numbering,
                              batch_rows=batch_rows), path, format)


def write_stream(reader: pa.RecordBatchReader, path: str | os.PathLike[str],
                 format: str | None = None) -> None:
    """Write a stream of batches as Parquet (a row group per batch), CSV, JSON Lines or
    Arrow, to ``path + ".partial"`` renamed to ``path`` once complete."""
    from sltd.sources import detect_format

    fmt = format or detect_format(path)
    if fmt not in ("parquet", "csv", "jsonl", "arrow"):
        raise SourceError(f"cannot write format {fmt!r}", source=str(path))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{os.fspath(path)}.partial")
    try:
        if fmt == "jsonl":
            import duckdb
            con = duckdb.connect()
            con.register("t", reader)
            con.execute(f"COPY t TO '{_sql_path(partial)}' (FORMAT json)")
            con.close()
        else:
            with _writer(fmt, partial, reader.schema) as writer:
                for batch in _made_ahead(reader):
                    writer.write_batch(batch)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _made_ahead(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches``, each made on another thread while the one before is written (NumPy
    and the writers release the GIL: 10M ranges-numbered records were written in 7.8 s
    instead of 10.3 s on two cores). At most three batches are alive at once."""
    ready: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def offer(item: object) -> bool:
        """Hand ``item`` over unless the consumer has stopped; whether it was."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def make() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            offer(e)
            return
        offer(end)

    maker = threading.Thread(target=make, name="sltd-synth", daemon=True)
    maker.start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield cast(pa.RecordBatch, item)
    finally:
        stop.set()
        maker.join()


class _BatchWriter(Protocol):
    def write_batch(self, batch: pa.RecordBatch) -> None: ...
    def __enter__(self) -> _BatchWriter: ...
    def __exit__(self, *exc: object) -> None: ...


def _writer(fmt: str, path: Path, schema: pa.Schema) -> _BatchWriter:
    if fmt == "parquet":
        return pq.ParquetWriter(path, schema)
    if fmt == "csv":
        import pyarrow.csv as pacsv
        return pacsv.CSVWriter(path, schema)
    return pa.ipc.new_file(path, schema)


def write_table(table: pa.Table, path: str | os.PathLike[str], format: str | None = None
                ) -> None:
    """Write a table as CSV, Parquet, JSON Lines or Arrow (format from the name by
    default)."""
    from sltd.sources import detect_format

    fmt = format or detect_format(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        import pyarrow.csv as pacsv
        pacsv.write_csv(table, path)
    elif fmt == "jsonl":
        import duckdb
        con = duckdb.connect()
        con.register("t", table)
        con.execute(f"COPY t TO '{_sql_path(path)}' (FORMAT json)")
        con.close()
    elif fmt == "arrow":
        import pyarrow.feather as feather
        feather.write_feather(table, path)
    else:
        raise SourceError(f"cannot write format {fmt!r}", source=str(path))


def _sql_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path).replace("'", "''")


_MANIFEST_KEYS = ["document_number", "document_type", "issuing_country"]


def synth_manifest(records: pa.Table | str | os.PathLike[str], n: int, *,
                   listed: float = 0.001, seed: int = 0) -> pa.Table:
    """A passenger manifest of ``n`` travel documents, about ``listed`` of them listed.

    Listed documents are drawn from ``records`` (as a synthetic index holds them); the
    others follow the records' numbering:

    - ranges (a table from :func:`synth_records`, or a Parquet or Arrow file from
      :func:`write_synth`, which carry their plan): clean documents issued from the same
      ranges, valid on the list's date, and not in ``records``. A file is streamed (any
      size). Columns: passenger_id, document_number, document_type, issuing_country,
      date_of_issue, date_of_expiry (every document's true dates; a stolen blank's are its
      batch's), listed.
    - random (any other records: a CSV file, a table without the plan): random numbers of
      the same shapes and country/type mix, so most are unlisted. Columns: passenger_id,
      document_number, document_type, issuing_country.

    Args:
        records: a table, or a records file (CSV, Parquet, JSON Lines, Arrow).
        n: passengers.
        listed: share of them carrying a document drawn from ``records``.
        seed: the same seed and records give the same manifest.

    Example:
        >>> m = synth_manifest(synth_records(5000, seed=1, numbering="ranges"), 2000,
        ...                    listed=0.01, seed=1)
        >>> m.num_rows, sum(m.column("listed").to_pylist())
        (2000, 20)
    """
    plan, total, batches = _records_source(records)
    if plan is not None:
        from sltd.issuance import ranges_manifest
        return ranges_manifest(plan, batches, total, n, listed=listed, seed=seed)
    if not isinstance(records, pa.Table):
        from sltd.sources import read_source
        records = read_source(records, required=("document_number",),
                              optional=("document_type", "issuing_country")).table
    rng = np.random.default_rng(seed)
    k = min(int(round(n * listed)), records.num_rows)
    clean = synth_records(n - k, seed=seed + 1).select(_MANIFEST_KEYS)
    picked = records.take(pa.array(rng.choice(records.num_rows, size=k, replace=False))
                          ).select(_MANIFEST_KEYS)
    table = pa.concat_tables([clean, picked.cast(clean.schema)])
    table = table.take(pa.array(rng.permutation(n)))
    return table.add_column(0, "passenger_id", passenger_ids(n))


def passenger_ids(n: int) -> pa.Array:
    """PAX1 .. PAXn."""
    numbers = pa.array(np.arange(1, n + 1)).cast(pa.string())
    return pc.binary_join_element_wise("PAX", numbers, "")


def _records_source(records: pa.Table | str | os.PathLike[str]
                    ) -> tuple[IssuancePlan | None, int,
                               Callable[[], Iterable[pa.RecordBatch]]]:
    """The ranges plan a records table or file carries (None without one), its row count,
    and a function streaming its number, type and country columns."""
    if isinstance(records, pa.Table):
        table = records
        return (plan_of(table.schema.metadata), table.num_rows,
                lambda: table.select(_MANIFEST_KEYS).to_batches(max_chunksize=BATCH_ROWS))
    from sltd.sources import detect_format, iter_batches

    path = Path(os.fspath(records))
    fmt = detect_format(path)
    if fmt not in ("parquet", "arrow") or not path.is_file():
        return None, 0, list
    try:
        if fmt == "arrow":
            import pyarrow.feather as feather
            return _records_source(feather.read_table(path, memory_map=True))
        plan = plan_of(pq.read_schema(path).metadata)
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{path}: cannot read as {fmt}: {str(e).splitlines()[0]}",
                          source=str(path)) from None
    return plan, rows, lambda: (b for b, _, _ in iter_batches(
        path, format=fmt, columns=_MANIFEST_KEYS, batch_rows=BATCH_ROWS))


def plan_of(metadata: dict[bytes, bytes] | None) -> IssuancePlan | None:
    """The issuance plan of a ranges-numbered list, from its schema metadata (None when
    it has none).

    Raises:
        SourceError: the list was made by another version of the generator.
    """
    raw = (metadata or {}).get(PLAN_KEY)
    if raw is None:
        return None
    info = json.loads(raw)
    if info.get("version") != _PLAN_VERSION:
        raise SourceError(f"these records were made by another version of sltd synth "
                          f"(plan version {info.get('version')}, this is {_PLAN_VERSION}); "
                          "generate them again")
    from sltd.issuance import issuance_plan
    return issuance_plan(int(info["n"]), seed=int(info["seed"]),
                         today=dt.date.fromisoformat(info["today"]))


#: Look-alike pairs an OCR engine or a typist confuses (both directions).
OCR_CONFUSIONS: dict[str, str] = {
    "0": "O", "O": "0", "1": "I", "I": "1", "8": "B", "B": "8", "5": "S", "S": "5",
    "2": "Z", "Z": "2", "6": "G", "G": "6", "D": "0", "Q": "0", "L": "1",
}
#: Kinds of injected error, as the near-miss evaluation reports them.
ERROR_KINDS = ("substitution", "insertion", "deletion", "transposition", "ocr (one)",
               "ocr (all)", "ocr + substitution")


def inject_error(number: str, kind: str, position: int, char: str) -> str | None:
    """``number`` with one error of ``kind`` at ``position`` (taken modulo what applies),
    using ``char`` for substitutions and insertions; None when the kind cannot apply
    (e.g. no confusable character for an OCR error).

    Example:
        >>> inject_error("AB123", "transposition", 2, "X")
        'AB213'
        >>> inject_error("AB123", "ocr (all)", 0, "X")
        'A8IZ3'
    """
    n = len(number)
    i = position % n
    if kind == "substitution":
        ch = char if char != number[i] else ("X" if number[i] != "X" else "Y")
        return number[:i] + ch + number[i + 1:]
    if kind == "insertion":
        return number[:i] + char + number[i:]
    if kind == "deletion":
        return number[:i] + number[i + 1:]
    if kind == "transposition":
        j = min(i, n - 2)
        if number[j] == number[j + 1]:
            return None
        return number[:j] + number[j + 1] + number[j] + number[j + 2:]
    spots = [k for k, c in enumerate(number) if c in OCR_CONFUSIONS]
    if not spots:
        return None
    k = spots[position % len(spots)]
    one = number[:k] + OCR_CONFUSIONS[number[k]] + number[k + 1:]
    if kind == "ocr (one)":
        return one
    if kind == "ocr (all)":
        return "".join(OCR_CONFUSIONS.get(c, c) for c in number)
    if kind == "ocr + substitution":
        other = next((x for x in range(n) if x != k and one[x] not in OCR_CONFUSIONS), None)
        if other is None:
            return None
        return one[:other] + ("X" if one[other] != "X" else "Y") + one[other + 1:]
    raise ValueError(f"unknown error kind {kind!r}; use one of {', '.join(ERROR_KINDS)}")


#: ICAO document code printed for each sltd type in a synthetic MRZ.
MRZ_CODES = {"P": "P<", "PD": "PD", "PS": "PS", "I": "I<", "R": "AR", "V": "V<", "O": "X<"}


def synth_mrz(number: str, doc_type: str, country: str, *, read_as: str | None = None,
              birth: str = "740812", expiry: str = "310415") -> str:
    """A consistent MRZ of a document (TD1 for ID cards and residence permits, MRV-A for
    visas, TD3 otherwise), with a placeholder name, as two or three lines.

    ``read_as`` simulates a misread number: the number field shows ``read_as`` while every
    check digit stays as printed for ``number`` (so the number's digit, and the composite,
    fail unless the misreading is one the 7-3-1 digits cannot see). Numbers of at most 9
    characters.

    Example:
        >>> from sltd.mrz import parse_mrz
        >>> m = parse_mrz(synth_mrz("X1234567", "P", "FRA"))
        >>> m.format, m.number, m.country, m.consistent
        ('TD3', 'X1234567', 'FRA', True)
        >>> parse_mrz(synth_mrz("X1234567", "I", "FRA", read_as="X1284567")).failed_checks
        ('document number', 'composite')
    """
    from sltd.mrz import check_digit

    if doc_type not in MRZ_CODES:
        raise ValueError(f"no MRZ document code for type {doc_type!r}")
    shown = number if read_as is None else read_as
    if max(len(number), len(shown)) > 9:
        raise ValueError(f"synthetic MRZ numbers have at most 9 characters: {shown!r}")
    code, state = MRZ_CODES[doc_type], country.ljust(3, "<")
    field, shown_field = number.ljust(9, "<"), shown.ljust(9, "<")
    cd = str(check_digit(field))
    birth_cd, expiry_cd = str(check_digit(birth)), str(check_digit(expiry))
    if doc_type in ("I", "R"):
        l1 = code + state + field + cd + "<" * 15
        l2 = birth + birth_cd + "F" + expiry + expiry_cd + state + "<" * 11
        l2 += str(check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]))
        l1 = code + state + shown_field + cd + "<" * 15
        return "\n".join([l1, l2, "SPECIMEN<<TEST".ljust(30, "<")])
    l1 = (code + state + "SPECIMEN<<TEST").ljust(44, "<")
    body = field + cd + state + birth + birth_cd + "F" + expiry + expiry_cd
    if doc_type == "V":
        l2 = body.ljust(44, "<")
    else:
        personal = "<" * 14 + "<"
        l2 = body + personal
        l2 += str(check_digit(l2[0:10] + l2[13:20] + l2[21:43]))
    return "\n".join([l1, shown_field + l2[9:]])
