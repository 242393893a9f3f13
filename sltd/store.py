"""The DuckDB store of record: schema, bulk validation, transactional upsert, withdrawal.

All SQL of the record store lives here, parameterized. Tables:

- ``meta``: schema version and per-index settings (hit-id secret, validation window).
- ``records``: the active records, one row per key (number, type, country), with the
  folded key and its 64-bit hash (:mod:`sltd.keyset`), and an ART index on the folded key:
  DuckDB serves an index only for an equality or IN filter on one column, so lookups go
  through that one column.
- Times are stored as UTC ``TIMESTAMP`` (naive in the database, aware UTC in Python; see
  :func:`to_db` and :func:`from_db`).
- ``hit_cases``, ``outbox``, ``audit`` and ``audit_batches``: the hit workflow
  (:mod:`sltd.workflow`), the alert outbox (:mod:`sltd.alerts`) and the audit trail with
  its chain of batch hashes (:mod:`sltd.audit`); their SQL lives in those modules.
- ``record_history``: every superseded version of a record (updated or withdrawn), with
  when and why. A withdrawn record is kept there and no longer hit.

Bulk validation takes a batch at a time and collects every problem of every row: document
numbers in Arrow, every other field once per distinct value in DuckDB SQL (a million rows
hold a few hundred distinct codes or dates); the messages are then produced by the same
Python validators that check a single record, so a reject reads the same whichever way
the record came in. A load stages its valid batches (:func:`open_staging`, :func:`stage`)
and applies them at once (:func:`duplicates`, :func:`upsert`), all in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd import codes
from sltd.errors import IndexStateError, ValidationError, reason_of
from sltd.keyhash import FOLD_TABLE, key_hashes
from sltd.model import (
    CONTROL_CHARACTERS,
    EXPIRY_REASON,
    NO_VERSION,
    OWNER_REASON,
    PLACE_LIMIT,
    ListVersion,
    _text,
    parse_date,
)
from sltd.normalize import canonical_number, canonical_numbers
from sltd.sources import Problem, SourceTable

#: 2: the folded-key hash is fmix64-mixed (:mod:`sltd.keyset`); version 1 files (a linear
#: hash) are migrated on a writable open (:func:`migrate`).
#: 3: the audit trail is hashed per batch (``audit_batches``); entries written before keep
#: their per-entry chain (``prev_hash``, NULL in batched entries).
#: 4: each record version keeps the list versions it was in force in: ``listed_in`` (the
#: version that made it) on records and history, ``ended_in`` (the version that updated or
#: withdrew it) on history; rows older than list versions get theirs from the times.
#: 5: a hit case keeps the list version in force when it was revealed.
#: 6: each record has a review date (``review_date``); older ones get their creation day
#: plus the default review period.
SCHEMA_VERSION = 6
#: Years from a record's entry (or update) to its review date, unless the index sets
#: another period (``sltd init --review-years``) or the record gives its own date.
REVIEW_YEARS = 10

#: Columns of a record, in loader (default source) names.
MANDATORY = ("document_number", "document_type", "issuing_country", "status")
OPTIONAL = ("owner_ncb", "place_of_loss", "date_of_loss", "date_of_issue", "date_of_expiry",
            "review_date")
_DATES = ("date_of_loss", "date_of_issue", "date_of_expiry")

_RECORD_COLUMNS = """
    record_id BIGINT NOT NULL,
    number VARCHAR NOT NULL,
    doc_type VARCHAR NOT NULL,
    country VARCHAR NOT NULL,
    fold VARCHAR NOT NULL,
    fold_hash BIGINT NOT NULL,
    status VARCHAR NOT NULL,
    owner_ncb VARCHAR,
    place_of_loss VARCHAR,
    date_of_loss DATE,
    date_of_issue DATE,
    date_of_expiry DATE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
"""
_DATA = ("status", "owner_ncb", "place_of_loss", *_DATES)
_VALID_COLS = ("number", "doc_type", "country", "fold", "fold_hash", *_DATA)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS records ({_RECORD_COLUMNS}, listed_in BIGINT NOT NULL,
    review_date DATE NOT NULL);
CREATE TABLE IF NOT EXISTS record_history ({_RECORD_COLUMNS},
    change VARCHAR NOT NULL, changed_at TIMESTAMP NOT NULL, reason VARCHAR,
    listed_in BIGINT NOT NULL, ended_in BIGINT NOT NULL, review_date DATE);
CREATE TABLE IF NOT EXISTS hit_cases (
    case_id VARCHAR PRIMARY KEY,
    hit_id VARCHAR NOT NULL,
    record_id BIGINT NOT NULL,
    number VARCHAR NOT NULL,
    doc_type VARCHAR NOT NULL,
    country VARCHAR NOT NULL,
    owner VARCHAR NOT NULL,
    searching_ncb VARCHAR NOT NULL,
    officer VARCHAR NOT NULL,
    revealed_at TIMESTAMP NOT NULL,
    deadline TIMESTAMP NOT NULL,
    state VARCHAR NOT NULL,
    escalated_at TIMESTAMP,
    decided_at TIMESTAMP,
    decided_by VARCHAR,
    reason VARCHAR,
    list_version BIGINT
);
CREATE TABLE IF NOT EXISTS outbox (
    alert_id VARCHAR PRIMARY KEY,
    case_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    recipient VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    delivered_to VARCHAR,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error VARCHAR
);
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT NOT NULL,
    logged_at TIMESTAMP NOT NULL,
    actor VARCHAR,
    ncb VARCHAR,
    action VARCHAR NOT NULL,
    subject VARCHAR,
    result VARCHAR,
    prev_hash VARCHAR,
    hash VARCHAR,
    digest UBIGINT
);
CREATE TABLE IF NOT EXISTS list_versions (
    version BIGINT NOT NULL,
    committed_at TIMESTAMP NOT NULL,
    change VARCHAR NOT NULL,
    officer VARCHAR,
    records BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id VARCHAR NOT NULL,
    token_sha256 VARCHAR NOT NULL,
    ncb VARCHAR NOT NULL,
    officer VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    countries VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS audit_batches (
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
);
"""


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    """First row of a query, or None. Fetches the whole result: DuckDB 2 refuses further
    work on a connection whose last result was only partly fetched."""
    rows = con.execute(sql, params).fetchall() if params is not None else \
        con.execute(sql).fetchall()
    return rows[0] if rows else None


def to_db(t: dt.datetime) -> dt.datetime:
    """An aware datetime as the naive UTC value the database stores."""
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def from_db(t: dt.datetime | None) -> dt.datetime | None:
    """A stored naive UTC value as an aware UTC datetime."""
    return None if t is None else t.replace(tzinfo=dt.UTC)


def create_schema(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> None:
    """Create an empty index in ``con`` (idempotent; inside the caller's transaction)."""
    con.execute(SCHEMA)
    for key, value in (("schema_version", str(SCHEMA_VERSION)),
                       ("hit_secret", secrets.token_hex(32)),
                       ("created_at", now.isoformat())):
        con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING", [key, value])


def is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """True if the database holds no table at all (a new file): the only kind ``sltd init``
    may turn into an index. Another application's DuckDB database is left alone."""
    row = one(con, "SELECT count(*) FROM duckdb_tables() WHERE NOT temporary")
    return not (row and row[0])


def schema_version(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """The schema version of the index in ``con``.

    Raises:
        IndexStateError: not an sltd index, or made by a newer sltd.
    """
    try:
        row = one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
    except duckdb.CatalogException:
        row = None
    if row is None:
        raise IndexStateError(f"{path} is not an sltd index; create one with `sltd init`",
                              path=path)
    if int(row[0]) > SCHEMA_VERSION:
        raise IndexStateError(f"{path} has schema version {row[0]}, made by a newer sltd; "
                              f"this one reads up to {SCHEMA_VERSION}: upgrade sltd", path=path)
    return int(row[0])


def check_schema(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Raise IndexStateError unless ``con`` holds an index of this schema version (an older
    one must be migrated by a writable open first: it is never read as if it were new)."""
    version = schema_version(con, path)
    if version < SCHEMA_VERSION:
        raise IndexStateError(
            f"{path} has schema version {version}, made by an older sltd: run `sltd migrate` "
            f"(or open it once for writing) to bring it to version {SCHEMA_VERSION}",
            path=path)


def get_meta(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = one(con, "SELECT value FROM meta WHERE key = ?", [key])
    return None if row is None else str(row[0])


def set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])


# --- validation -------------------------------------------------------------------------

#: The single-value validator of each field: it words the reason of every bulk reject.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "document_number": canonical_number,
    "document_type": codes.doc_type_code,
    "issuing_country": codes.country_code,
    "status": codes.status_code,
    "place_of_loss": functools.partial(_text, field="place_of_loss"),
    **{d: functools.partial(parse_date, field=d) for d in (*_DATES, "review_date")},
}


def _reason(field: str, value: Any) -> str:
    if field == "owner_ncb":
        return OWNER_REASON
    if field == "date_of_expiry" and _is_valid_date(value):
        return EXPIRY_REASON  # a valid date that is before the issue date
    return reason_of(_CHECKS[field], value)


def _code_sql(alias: str, key: str) -> str:
    return f"""SELECT a.code AS value, a.code IS NULL AS bad FROM _distinct d
        LEFT JOIN _alias_{alias} a ON a.alias = {key.format(col='d.v')} ORDER BY d.i"""


def _date_sql() -> str:
    # Strict ISO shape (YYYY-MM-DD, 10 characters, dashes at 5 and 8) before the cast, so
    # the bulk path accepts exactly what model.parse_date accepts; cheaper than a regex.
    v = "trim(v)"
    value = (f"CASE WHEN length({v}) = 10 AND substr({v}, 5, 1) = '-' AND substr({v}, 8, 1) "
             f"= '-' AND regexp_full_match({v}, '[0-9-]+') THEN try_cast({v} AS DATE) END")
    return f"""SELECT value, value IS NULL AND nullif({v}, '') IS NOT NULL AS bad
        FROM (SELECT i, v, {value} AS value FROM _distinct) ORDER BY i"""


#: Each field's check, run once per distinct value of a batch (``_distinct(i, v)``): the
#: value to store (NULL if none) and whether the value is refused. SQL twins of the
#: single-value validators of :data:`_CHECKS`.
_FIELD_SQL = {
    "document_type": _code_sql("document_type", codes.SQL_ALIAS_KEY),
    "issuing_country": _code_sql("issuing_country", codes.SQL_COUNTRY_KEY),
    "status": _code_sql("status", codes.SQL_ALIAS_KEY),
    # a blank owner is no owner; any other value must be a country code (or GS)
    "owner_ncb": f"""SELECT CASE WHEN nullif(trim(d.v), '') IS NOT NULL THEN a.code END AS value,
        nullif(trim(d.v), '') IS NOT NULL AND a.code IS NULL AS bad FROM _distinct d
        LEFT JOIN _alias_owner a ON a.alias = {codes.SQL_COUNTRY_KEY.format(col='d.v')}
        ORDER BY d.i""",
    # White space as Python's str.split() sees it (RE2's \\s is ASCII only): runs of it
    # become one space, so the bulk path stores what Record stores.
    "place_of_loss": f"""SELECT value, coalesce(length(value), 0) > {PLACE_LIMIT}
        OR coalesce(regexp_matches(v, '{CONTROL_CHARACTERS}'), false) AS bad
        FROM (SELECT i, v, nullif(trim(regexp_replace(v, '[\\s\\p{{Z}}]+', ' ', 'g')), '')
              AS value FROM _distinct) ORDER BY i""",
    **{d: _date_sql() for d in (*_DATES, "review_date")},
}
_TYPES = {"place_of_loss": pa.string(), **{d: pa.date32() for d in (*_DATES, "review_date")}}


def _check_distinct(con: duckdb.DuckDBPyConnection, field: str,
                    column: pa.ChunkedArray | pa.Array
                    ) -> tuple[pa.Array, pa.Array]:
    """``field``'s stored value and whether it is refused, for each row of ``column``,
    checked once per distinct value (a batch of a million rows has a few hundred of them
    in a code or date field). A null is no value: refused only in a mandatory field."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks == 1 or not \
            pa.types.is_dictionary(column.type) else column.cast(pa.string()).combine_chunks()
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    if len(encoded.dictionary) == 0:  # no value at all (an upsert's unset fields)
        return (pa.nulls(len(encoded), _TYPES.get(field, pa.string())),
                pa.array(np.full(len(encoded), field in MANDATORY)))
    distinct = encoded.dictionary.cast(pa.string())
    con.register("_distinct", pa.table({"i": np.arange(len(distinct)), "v": distinct}))
    try:
        checked = con.sql(_FIELD_SQL[field]).to_arrow_table()
    finally:
        con.unregister("_distinct")
    value = checked.column("value").combine_chunks().cast(_TYPES.get(field, pa.string()))
    bad = checked.column("bad").combine_chunks().to_numpy(zero_copy_only=False)
    indices = encoded.indices
    # Values stay dictionary-encoded (taking a million strings cost more than all the
    # checks); DuckDB decodes them as it stores them.
    refused = np.append(bad, field in MANDATORY)[indices.fill_null(len(bad)).to_numpy()]
    return pa.DictionaryArray.from_arrays(indices, value), pa.array(refused)


def _fold(canonical: pa.Array) -> pa.Array:
    """:func:`sltd.normalize.fold_number` of a column of canonical numbers: one byte
    translation of the data buffer (folding maps ASCII letters and digits one to one)."""
    validity, offsets, data = canonical.buffers()
    assert data is not None
    folded = pa.py_buffer(data.to_pybytes().translate(FOLD_TABLE))
    return pa.Array.from_buffers(pa.string(), len(canonical), [validity, offsets, folded],
                                 canonical.null_count, canonical.offset)


@contextlib.contextmanager
def checker(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A session of ``con``'s database of its own, for :func:`validate`: validation reads
    nothing of the index, and a view registered inside a load's transaction would keep
    its data alive until the COMMIT (a new in-memory database cost 18 ms a load)."""
    session = con.cursor()
    try:
        yield session
    finally:
        session.close()


@dataclasses.dataclass(frozen=True)
class Validated:
    """Valid rows (in store column order, then ``review_date`` if given and ``__row``) and
    the problems of the others."""

    valid: pa.Table
    problems: list[Problem]


def validate(con: duckdb.DuckDBPyConnection, source: SourceTable) -> Validated:
    """Validate every row of ``source`` (sltd column names, text; a batch of a load).

    A row with any problem is left out whole, and each of its problems is reported, with
    the reason its field's single-value validator gives. Numbers take an Arrow fast path
    (:func:`sltd.normalize.canonical_numbers`); every other field is checked once per
    distinct value in DuckDB, then mapped back to its rows. Keys that occur more than once
    are left to :func:`duplicates`, which sees the whole load.
    """
    table = source.table
    n = table.num_rows
    rows = table.column("__row").combine_chunks().cast(pa.int64())
    given = {f: table.column(f) for f in (*MANDATORY, *OPTIONAL) if f in table.column_names}
    raw_number = given["document_number"].combine_chunks().cast(pa.string())
    number = canonical_numbers(raw_number)
    values: dict[str, pa.Array] = {}
    bad: dict[str, pa.Array] = {"document_number": pc.is_null(number)}
    for name, aliases in _alias_tables().items():
        con.register(f"_alias_{name}", aliases)  # zero-copy views, microseconds each
    for field in (*MANDATORY[1:], *OPTIONAL):
        if field in given:
            values[field], bad[field] = _check_distinct(con, field, given[field])
        else:
            values[field] = pa.nulls(n, _TYPES.get(field, pa.string()))
    if "date_of_expiry" in given:  # a valid expiry before a valid issue date is refused
        early = pc.less(values["date_of_expiry"].cast(pa.date32()),
                        values["date_of_issue"].cast(pa.date32())).fill_null(False)
        bad["date_of_expiry"] = pc.or_(bad["date_of_expiry"], early)
    refused = functools.reduce(pc.or_, bad.values())
    problems = [p for field, mask in bad.items()
                for p in _problems(field, mask, rows, given[field])]
    problems.sort(key=lambda p: (p.row, p.field))
    ok = pc.invert(refused)
    number = number.filter(ok)
    fold = _fold(number)
    valid = pa.table({
        "number": number, "doc_type": values["document_type"].filter(ok),
        "country": values["issuing_country"].filter(ok), "fold": fold,
        "fold_hash": pa.array(key_hashes(fold)),
        **{c: values[c].filter(ok) for c in _DATA},
        "review_date": values["review_date"].filter(ok), "__row": rows.filter(ok)})
    return Validated(valid, problems)


def _problems(field: str, mask: pa.Array, rows: pa.Array, given: pa.ChunkedArray
              ) -> list[Problem]:
    """One problem per masked row (few, as a rule), the value as the source gave it."""
    if not pc.any(mask).as_py():
        return []
    idx = pa.array(np.flatnonzero(mask.to_numpy(zero_copy_only=False)))
    reasons: dict[Any, str] = {}  # a value refused in many rows is worded once
    out = []
    for row, value in zip(rows.take(idx).to_pylist(), given.take(idx).to_pylist(),
                          strict=True):
        if value not in reasons:
            reasons[value] = _reason(field, value)
        out.append(Problem(row, field, value, reasons[value]))
    return out


@functools.cache
def _alias_tables() -> dict[str, pa.Table]:
    """The code alias tables as Arrow (registered as views by each load: a one-record
    upsert used to pay 170 ms re-inserting these 315 rows with ``executemany``)."""
    tables = {field: pa.table({"alias": [a for a, _ in rows], "code": [c for _, c in rows]})
              for field, rows in codes.alias_rows().items()}
    tables["owner"] = tables["issuing_country"]
    return tables


def _is_valid_date(value: str | None) -> bool:
    try:
        return parse_date(value, "date_of_expiry") is not None
    except ValidationError:
        return False


# --- writes -------------------------------------------------------------------------------

#: DuckDB's memory limit while a first load (into an index without records) reads and
#: writes its batches; its default is 80% of RAM, which it fills as a cache: 10M records
#: peaked at 2.4 GiB without it. Aggregates spill past it to the temporary directory. Not
#: for later loads, whose joins with the records are sized by DuckDB's own limit.
FIRST_LOAD_MEMORY_LIMIT = 512 << 20
#: ... plus this much per row of the source when its size is known up front (Parquet,
#: Arrow): a first load of 130M records ran out of memory at 512 MB.
FIRST_LOAD_BYTES_PER_ROW = 32
#: ... up to this much.
FIRST_LOAD_MEMORY_CAP = 6 << 30


def first_load_memory(rows: int | None) -> int:
    """DuckDB's memory limit for a first load of ``rows`` (None: unknown) records."""
    return min(FIRST_LOAD_MEMORY_CAP,
               FIRST_LOAD_MEMORY_LIMIT + FIRST_LOAD_BYTES_PER_ROW * (rows or 0))


def drop_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the ART indexes that index files made before the key file carry.

    Records are found by folded key in the key file and by record id through DuckDB's
    zone maps (ids grow with insertion: a lookup by id took 7.0 ms without the index
    against 7.7 ms with it, at 10M records). Maintaining the indexes made every load
    slower (a first 10M-record load committed in 32 s with them, 0.4 s without), and at
    130M records they would not fit in memory. ``con`` must not be in a transaction."""
    con.execute("DROP INDEX IF EXISTS records_fold")
    con.execute("DROP INDEX IF EXISTS records_id")


def no_records(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the index holds no active record (a first load: see :func:`bulk_session`)."""
    empty = one(con, "SELECT NOT EXISTS (SELECT 1 FROM records)")
    return bool(empty and empty[0])


@contextlib.contextmanager
def bulk_session(con: duckdb.DuckDBPyConnection, *, first: bool,
                 rows: int | None = None) -> Iterator[None]:
    """Settings for a load's transaction, set and restored around it on the writer ``con``
    (outside a transaction): rows are not kept in insertion order (records have none; an
    ordered insert of 10M rows kept every row group in memory until COMMIT and then wrote
    it twice: 20 s, against 8 s), and a ``first`` load (into an index with no records)
    keeps DuckDB to :func:`first_load_memory` of its ``rows`` (a setting of the whole
    database)."""
    order, limit = one(con, "SELECT current_setting('preserve_insertion_order'), "
                            "current_setting('memory_limit')")
    con.execute("SET SESSION preserve_insertion_order = false")
    if first:
        con.execute(f"SET memory_limit = '{first_load_memory(rows) >> 20}MB'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{limit}'")
        con.execute(f"SET SESSION preserve_insertion_order = {bool(order)}")


@dataclasses.dataclass(frozen=True)
class Staging:
    """Where a load's valid rows wait, batch by batch, until :func:`upsert` applies them
    at once (see :func:`open_staging`).

    Attributes:
        direct: the index had no records, so every row goes straight into ``records``
            (nothing to compare with; duplicates are taken out afterwards): the data is
            written once, and DuckDB writes it to the file as it comes.
        base: the id of the record of data row 1 (a record's id is ``base`` plus its data
            row minus one: no SQL cost, never reused, gaps harmless).
        now: when the load happens (``created_at``, ``updated_at``).
        version: the list version the load makes if it changes the list (``listed_in``
            of the records it writes; :func:`new_version` records it).
        review: the review date of the records it adds or changes without one.
    """

    direct: bool
    base: int
    now: dt.datetime
    version: int
    review: dt.date

    @property
    def table(self) -> str:
        return "records" if self.direct else "_staged"

    @property
    def row(self) -> str:
        """SQL: the data row of a staged row."""
        return f"(record_id - {self.base - 1})" if self.direct else "__row"


def open_staging(con: duckdb.DuckDBPyConnection, now: dt.datetime,
                 version: int | None = None) -> Staging:
    """Start staging a load in the caller's transaction. Into an empty index rows go
    straight into ``records``; otherwise into a temporary table (DuckDB spills it to disk
    past its memory limit) for :func:`upsert` to compare with the records. ``version``:
    the list version the load makes (default: the next one)."""
    empty = one(con, "SELECT NOT EXISTS (SELECT 1 FROM records)")
    staging = Staging(direct=bool(empty and empty[0]),
                      base=int(get_meta(con, "next_record_id") or 1), now=now,
                      version=next_version(con) if version is None else version,
                      review=review_default(con, now))
    if not staging.direct:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _staged (
            number VARCHAR, doc_type VARCHAR, country VARCHAR, fold VARCHAR,
            fold_hash BIGINT, status VARCHAR, owner_ncb VARCHAR, place_of_loss VARCHAR,
            {', '.join(f'{d} DATE' for d in _DATES)}, review_date DATE, __row BIGINT)""")
    return staging


def stage(con: duckdb.DuckDBPyConnection, staging: Staging, valid: pa.Table) -> None:
    """Append a batch's valid rows (from :func:`validate`).

    The batch goes in as a relation, not a registered view: a view dropped inside a
    transaction keeps its Arrow table alive until the COMMIT (75 MB per million rows).
    """
    if not valid.num_rows:
        return
    if staging.direct:
        rows = valid.column("__row")
        now = pa.array(np.full(valid.num_rows, np.datetime64(to_db(staging.now), "us")))
        valid = pa.table({"record_id": pc.add(rows, staging.base - 1),
                          **{c: valid.column(c) for c in _VALID_COLS},
                          "created_at": now, "updated_at": now,
                          "listed_in": pa.repeat(staging.version, valid.num_rows),
                          "review_date": pc.fill_null(
                              valid.column("review_date").cast(pa.date32()),
                              pa.scalar(staging.review, pa.date32()))})
    con.from_arrow(valid).insert_into(staging.table)


def duplicates(con: duckdb.DuckDBPyConnection, staging: Staging) -> list[Problem]:
    """Keys (number, type, country) staged more than once, in any batches: the last row
    wins, the others are taken out and reported, so no row disappears silently."""
    table, row = staging.table, staging.row
    # One aggregate of one integer finds the few candidates (10M rows: 1.5 s, against 3.6
    # s grouping by the three strings); only they are grouped by key, so a hash collision
    # costs nothing but a look.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _dups AS
        WITH s AS (SELECT {row} AS __row, number, doc_type, country FROM {table}
                   WHERE hash(number, doc_type, country) IN (
                       SELECT hash(number, doc_type, country) FROM {table}
                       GROUP BY ALL HAVING count(*) > 1))
        SELECT s.__row, s.number, k.keep FROM s
        JOIN (SELECT number, doc_type, country, max(__row) AS keep FROM s
              GROUP BY ALL HAVING count(*) > 1) k USING (number, doc_type, country)
        WHERE s.__row <> k.keep""")
    dups = con.execute("SELECT * FROM _dups ORDER BY 1").fetchall()
    if dups:
        con.execute(f"DELETE FROM {table} WHERE {row} IN (SELECT __row FROM _dups)")
    con.execute("DROP TABLE _dups")
    return [Problem(r, "document_number", value,
                    f"same number, type and country as row {keep}, which was kept")
            for r, value, keep in dups]


@dataclasses.dataclass(frozen=True)
class LoadCounts:
    """What a load did to the records: rows read, valid records by effect, rows rejected."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rows_read: int = 0
    rejected: int = 0
    withdrawn: int = 0

    def summary(self) -> str:
        return (f"{self.rows_read} rows read, {self.inserted} inserted, {self.updated} "
                f"updated, {self.unchanged} unchanged, {self.rejected} rejected"
                + (f", {self.withdrawn} withdrawn" if self.withdrawn else ""))


def upsert(con: duckdb.DuckDBPyConnection, staging: Staging) -> LoadCounts:
    """Apply the staged rows (after :func:`duplicates`): insert new keys, replace changed
    records (old version to history), skip unchanged ones.

    Runs inside the caller's transaction, set-based: one join of the staged keys with the
    records, whatever the number of batches. New records get ids above every earlier one
    (an updated record keeps its id, number, type and country), which is how the key
    structures find them after the COMMIT (:meth:`sltd.keyset.Keys.add`).
    """
    last = one(con, f"SELECT max({staging.row}), count(*) FROM {staging.table}")
    set_meta(con, "next_record_id", str(staging.base + int(last[0] or 0)))
    if staging.direct:  # already in: every staged row is a new record
        return LoadCounts(inserted=int(last[1]))
    now = {"now": to_db(staging.now), "version": staging.version, "review": staging.review}
    # The one join with the records. On fold_hash too: DuckDB pushes a filter of the
    # staged hashes into the scan of records, so a small delta reads little of them. A
    # review date given that differs is a change; none given keeps the record's.
    changed_if = " OR ".join([*(f"s.{c} IS DISTINCT FROM r.{c}" for c in _DATA),
                              "(s.review_date IS NOT NULL AND s.review_date <> r.review_date)"])
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _present AS
        SELECT s.__row, r.record_id, r.created_at, {changed_if} AS changed
        FROM _staged s JOIN records r ON r.fold_hash = s.fold_hash
            AND r.number = s.number AND r.doc_type = s.doc_type AND r.country = s.country""")
    n_present, n_changed = one(con, "SELECT count(*), count(*) FILTER (changed) "
                                    "FROM _present")
    insert = f"""INSERT INTO records SELECT $base + __row, {', '.join(_VALID_COLS)}, $now, $now,
        $version, coalesce(review_date, $review) FROM _staged ANTI JOIN _present USING (__row)"""
    params = {**now, "base": staging.base - 1}
    n_new = int(one(con, insert, params)[0])
    if n_changed:
        con.execute("""INSERT INTO record_history BY NAME
            SELECT r.*, 'updated' AS change, $now AS changed_at, NULL AS reason,
                   $version AS ended_in FROM records r
            WHERE r.record_id IN (SELECT record_id FROM _present WHERE changed)""",
                    {"now": now["now"], "version": now["version"]})
        con.execute("""DELETE FROM records
            WHERE record_id IN (SELECT record_id FROM _present WHERE changed)""")
        con.execute(f"""INSERT INTO records
            SELECT p.record_id, {', '.join('s.' + c for c in _VALID_COLS)}, p.created_at, $now,
                   $version, coalesce(s.review_date, $review)  -- an update renews it
            FROM _present p JOIN _staged s USING (__row) WHERE p.changed""", now)
    con.execute("DROP TABLE _present")
    con.execute("DROP TABLE _staged")
    return LoadCounts(inserted=n_new, updated=int(n_changed),
                      unchanged=int(n_present - n_changed))


def migrate(con: duckdb.DuckDBPyConnection, path: str,
            progress: Callable[[str], None] | None = None) -> int | None:
    """Bring the index in ``con`` up to date; returns the version it had if it was older.

    Creates tables added since it was made (every statement of the schema is idempotent),
    drops the ART indexes of older files (:func:`drop_indexes`), then runs each step from
    its version to today's, all in one transaction with the new version number: a crash
    leaves it wholly old (migrated again next time) or wholly new. The steps:

    - 1 to 2: every stored ``fold_hash`` is recomputed with today's key hash;
    - 2 to 3: ``audit.prev_hash`` may be NULL (batched entries have no per-entry link);
      the entries already there keep theirs, and verify as they are;
    - 3 to 4: record versions get their list versions (:func:`_version_spans`);
    - 4 to 5: hit cases keep the list version of their reveal (unknown for older ones);
    - 5 to 6: records get a review date (their entry plus :data:`REVIEW_YEARS`).

    ``con`` must not be inside a transaction.
    """
    version = schema_version(con, path)
    con.execute(SCHEMA)
    drop_indexes(con)
    if version == SCHEMA_VERSION:
        return None
    say = progress or (lambda _: None)
    con.execute("BEGIN")
    try:
        for step in _MIGRATIONS[version - 1:]:
            step(con, say)
        set_meta(con, "schema_version", str(SCHEMA_VERSION))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    say(f"schema version {version} -> {SCHEMA_VERSION}")
    return version


def _rehash_keys(con: duckdb.DuckDBPyConnection, say: Callable[[str], None]) -> None:
    say("reading the folded keys")
    folds = con.sql("SELECT DISTINCT fold FROM records UNION "
                    "SELECT DISTINCT fold FROM record_history").to_arrow_table()
    say(f"rehashing {folds.num_rows:,} folded keys")
    con.register("_rehash", pa.table({"fold": folds.column("fold"),
                                      "fold_hash": key_hashes(folds.column("fold"))}))
    for table in ("records", "record_history"):
        say(f"updating {table}")
        con.execute(f"UPDATE {table} SET fold_hash = m.fold_hash FROM _rehash m "
                    f"WHERE {table}.fold = m.fold")
    con.unregister("_rehash")


def _batch_the_audit(con: duckdb.DuckDBPyConnection, say: Callable[[str], None]) -> None:
    say("letting the audit trail be hashed per batch")
    for column in ("prev_hash", "hash"):
        con.execute(f"ALTER TABLE audit ALTER COLUMN {column} DROP NOT NULL")
    con.execute("ALTER TABLE audit ADD COLUMN digest UBIGINT")


def _version_spans(con: duckdb.DuckDBPyConnection, say: Callable[[str], None]) -> None:
    """Give each record version the list versions it was in force in. A change's rows
    carry its time, and so does its list version (both were taken at the same moment), so
    a row's version is the one committed at its time, else the last one before; rows
    older than list versions get 0 (before the first). A file with records and no list
    versions gets version 1: its list as it stands."""
    say("giving each record version its list versions")
    con.execute("ALTER TABLE records ADD COLUMN listed_in BIGINT DEFAULT 0")
    con.execute("ALTER TABLE record_history ADD COLUMN listed_in BIGINT DEFAULT 0")
    con.execute("ALTER TABLE record_history ADD COLUMN ended_in BIGINT DEFAULT 0")
    if one(con, "SELECT count(*) FROM list_versions")[0]:
        # a change committed at the row's time is its own (the first of equal times:
        # clocks can repeat a reading), else the last one before it
        for table, column, at in (("records", "listed_in", "updated_at"),
                                  ("record_history", "listed_in", "updated_at"),
                                  ("record_history", "ended_in", "changed_at")):
            con.execute(f"""UPDATE {table} SET {column} = coalesce(
                (SELECT min(version) FROM list_versions v
                 WHERE v.committed_at = {table}.{at}),
                (SELECT max(version) FROM list_versions v
                 WHERE v.committed_at <= {table}.{at}), 0)""")
    elif not no_records(con):
        # a file from before list versions: its list as it stands is version 1 (a list
        # must have a version to be published, replayed or followed)
        con.execute("""INSERT INTO list_versions SELECT 1, max(updated_at), 'migrate',
            NULL, count(*) FROM records""")
        con.execute("UPDATE records SET listed_in = 1")
    # (NOT NULL cannot be added in the transaction that filled them: every writer gives
    # them a value.)
    for table, column in (("records", "listed_in"), ("record_history", "listed_in"),
                          ("record_history", "ended_in")):
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")


def _case_versions(con: duckdb.DuckDBPyConnection, say: Callable[[str], None]) -> None:
    say("letting hit cases keep their list version")
    con.execute("ALTER TABLE hit_cases ADD COLUMN list_version BIGINT")  # NULL: unknown


def _review_dates(con: duckdb.DuckDBPyConnection, say: Callable[[str], None]) -> None:
    say("giving each record a review date (its entry plus the review period)")
    for table in ("records", "record_history"):
        con.execute(f"ALTER TABLE {table} ADD COLUMN review_date DATE")
        con.execute(f"UPDATE {table} SET review_date = "
                    f"CAST(created_at + INTERVAL {REVIEW_YEARS} YEAR AS DATE)")


#: The step from each schema version to the next (the first: from 1 to 2).
_MIGRATIONS = (_rehash_keys, _batch_the_audit, _version_spans, _case_versions,
               _review_dates)


def withdraw(con: duckdb.DuckDBPyConnection, record_id: int, key: tuple[str, str, str],
             now: dt.datetime, reason: str | None, version: int) -> bool:
    """Move the active record ``record_id`` (found by its key in the key file), whose key
    must be ``key``, to history as withdrawn by list version ``version``
    (:func:`next_version`); whether there was such a record.

    Runs inside the caller's transaction.
    """
    where = "record_id = ? AND number = ? AND doc_type = ? AND country = ?"
    params = [record_id, *key]
    con.execute(f"""INSERT INTO record_history BY NAME
        SELECT *, 'withdrawn' AS change, ?::TIMESTAMP AS changed_at, ? AS reason,
               ?::BIGINT AS ended_in FROM records WHERE {where}""",
                [to_db(now), reason, version, *params])
    return one(con, f"DELETE FROM records WHERE {where} RETURNING record_id", params) \
        is not None


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` plus ``years`` (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def review_years(con: duckdb.DuckDBPyConnection) -> int:
    """The index's review period in years (:data:`REVIEW_YEARS` unless set)."""
    return int(get_meta(con, "review_years") or REVIEW_YEARS)


def review_default(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> dt.date:
    """The review date of a record added or updated at ``now`` without one."""
    return add_years(now.astimezone(dt.UTC).date(), review_years(con))


def reviews_until(con: duckdb.DuckDBPyConnection, day: dt.date) -> pa.Table:
    """(record_id, review_date) of the active records reviewed on or before ``day``."""
    return con.sql("SELECT record_id, review_date FROM records WHERE review_date <= $day",
                   params={"day": day}).to_arrow_table()


def reviews_until_at(con: duckdb.DuckDBPyConnection, day: dt.date, version: int) -> pa.Table:
    """:func:`reviews_until` among the record versions in force at list version
    ``version``."""
    return con.sql("""SELECT record_id, review_date FROM records
        WHERE listed_in <= $v AND review_date <= $day
        UNION ALL SELECT record_id, review_date FROM record_history
        WHERE listed_in <= $v AND ended_in > $v AND review_date <= $day""",
                   params={"day": day, "v": version}).to_arrow_table()


def expire(con: duckdb.DuckDBPyConnection, day: dt.date, now: dt.datetime,
           version: int) -> pa.Table:
    """Move every active record whose review date is on or before ``day`` to history
    (change ``expired``) as list version ``version``; their :data:`KEY_COLUMNS`.

    Runs inside the caller's transaction.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _gone AS SELECT record_id FROM records "
                "WHERE review_date <= $day", {"day": day})
    return _move_gone(con, now, "review date reached", version, "expired")


def withdraw_keys(con: duckdb.DuckDBPyConnection, keys: pa.Table, now: dt.datetime,
                  version: int, reason: str = "withdrawn at the source") -> pa.Table:
    """Withdraw, set-based, the active records of ``keys`` (number, doc_type, country;
    absent ones are skipped) by list version ``version``: moved to history as
    :func:`withdraw` does one. Returns their :data:`KEY_COLUMNS`.

    Runs inside the caller's transaction.
    """
    con.register("_withdraw", keys.select(["number", "doc_type", "country"]))
    try:
        con.execute("""CREATE OR REPLACE TEMP TABLE _gone AS SELECT r.record_id
            FROM records r JOIN _withdraw w USING (number, doc_type, country)""")
    finally:
        con.unregister("_withdraw")
    return _move_gone(con, now, reason, version, "withdrawn")


def _move_gone(con: duckdb.DuckDBPyConnection, now: dt.datetime, reason: str, version: int,
               change: str) -> pa.Table:
    """Move the records of the temp table ``_gone`` to history; their key columns."""
    gone = con.sql(f"SELECT {KEY_COLUMNS} FROM records "
                   "WHERE record_id IN (SELECT record_id FROM _gone)").to_arrow_table()
    params = {"now": to_db(now), "reason": reason, "version": version, "change": change}
    con.execute("""INSERT INTO record_history BY NAME
        SELECT r.*, $change AS change, $now AS changed_at, $reason AS reason,
               $version AS ended_in
        FROM records r WHERE record_id IN (SELECT record_id FROM _gone)""", params)
    con.execute("DELETE FROM records WHERE record_id IN (SELECT record_id FROM _gone)")
    con.execute("DROP TABLE _gone")
    return gone


# --- reads --------------------------------------------------------------------------------

#: What the in-memory key sets and first-level table hold of each record.
KEY_COLUMNS = "record_id, number, doc_type, country, fold_hash"


def key_columns(con: duckdb.DuckDBPyConnection, after_id: int = 0) -> pa.Table:
    """:data:`KEY_COLUMNS` of the active records with ids above ``after_id`` (those
    added since a key table was built: ids only grow, and zone maps skip the rest)."""
    return con.sql(f"SELECT {KEY_COLUMNS} FROM records WHERE record_id > $after",
                   params={"after": after_id}).to_arrow_table()


def empty_key_columns() -> pa.Table:
    """A table of :data:`KEY_COLUMNS` with no rows, typed as :func:`key_columns`'."""
    return pa.table({"record_id": pa.array([], pa.int64()), "number": pa.array([], pa.string()),
                     "doc_type": pa.array([], pa.string()),
                     "country": pa.array([], pa.string()),
                     "fold_hash": pa.array([], pa.int64())})


def key_rows(con: duckdb.DuckDBPyConnection, *, ordered: bool, batch_rows: int
             ) -> pa.RecordBatchReader:
    """:data:`KEY_COLUMNS` of all active records as a stream of batches, in fold-hash
    order if ``ordered`` (DuckDB sorts out of core: memory stays bounded; see
    :func:`memory_limit`)."""
    order = " ORDER BY fold_hash" if ordered else ""
    return con.sql(f"SELECT {KEY_COLUMNS} FROM records{order}").to_arrow_reader(batch_rows)


#: DuckDB's memory limit while it sorts the records for a key file: past it the sort
#: spills to the temporary directory. Its default, 80% of RAM, took a 130M-record build
#: to 9.4 GiB.
KEY_BUILD_MEMORY = 2 << 30


@contextlib.contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, limit: int) -> Iterator[None]:
    """DuckDB's memory limit (a setting of the whole database) set to ``limit`` bytes for
    a while, then restored."""
    old = one(con, "SELECT current_setting('memory_limit')")[0]
    con.execute(f"SET memory_limit = '{limit >> 20}MB'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{old}'")


def key_digest(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(count, xor of fold hashes, sum of record ids) of the active records, both mod
    2**64: what a key file must reproduce to be trusted (10M records: ~15 ms)."""
    row = one(con, "SELECT count(*), coalesce(bit_xor(fold_hash), 0), "
                   "coalesce(sum(record_id), 0) FROM records")
    m64 = (1 << 64) - 1
    return int(row[0]), int(row[1]) & m64, int(row[2]) & m64


def key_summary(con: duckdb.DuckDBPyConnection
                ) -> tuple[int, int, tuple[int, int, int], tuple[str, ...]]:
    """(count, highest record id ever assigned, :func:`key_digest`, countries) of the
    active records."""
    digest = key_digest(con)
    top = one(con, "SELECT coalesce(max(record_id), 0) FROM records")
    names = tuple(r[0] for r in con.execute(
        "SELECT DISTINCT country FROM records ORDER BY country").fetchall())
    return digest[0], int(top[0]), digest, names


def withdrawn_keys(con: duckdb.DuckDBPyConnection, up_to_id: int) -> pa.Table:
    """(record_id, fold_hash, number, doc_type, country) of the records withdrawn whose
    ids are at most ``up_to_id`` (the withdrawals a key table built then may still hold).
    """
    return con.sql("""SELECT record_id, fold_hash, number, doc_type, country
        FROM record_history WHERE change = 'withdrawn' AND record_id <= $top""",
                   params={"top": up_to_id}).to_arrow_table()


def key_columns_at(con: duckdb.DuckDBPyConnection, version: int) -> pa.Table:
    """:data:`KEY_COLUMNS` of the record versions in force at list version ``version``:
    made by it or before, and not ended by then."""
    return con.sql(f"""SELECT {KEY_COLUMNS} FROM records WHERE listed_in <= $v
        UNION ALL SELECT {KEY_COLUMNS} FROM record_history
        WHERE listed_in <= $v AND ended_in > $v""", params={"v": version}).to_arrow_table()


def expiry_dates_at(con: duckdb.DuckDBPyConnection, record_ids: Sequence[int],
                    version: int) -> dict[int, dt.date | None]:
    """:func:`expiry_dates` as the records stood at list version ``version``."""
    rows = con.execute("""SELECT record_id, date_of_expiry FROM (
            SELECT record_id, date_of_expiry FROM records WHERE listed_in <= $v
            UNION ALL SELECT record_id, date_of_expiry FROM record_history
            WHERE listed_in <= $v AND ended_in > $v)
        WHERE record_id IN (SELECT unnest($ids))""",
                       {"ids": [int(i) for i in record_ids], "v": version}).fetchall()
    return {int(i): d for i, d in rows}


def version_at(con: duckdb.DuckDBPyConnection, at: dt.datetime) -> ListVersion:
    """The list version in force at ``at``: the last committed at or before it
    (:data:`sltd.model.NO_VERSION` before the first)."""
    row = one(con, "SELECT version, committed_at FROM list_versions WHERE committed_at <= ? "
                   "ORDER BY version DESC LIMIT 1", [to_db(at)])
    return NO_VERSION if row is None else ListVersion(int(row[0]),
                                                      row[1].replace(tzinfo=dt.UTC))


def version_of(con: duckdb.DuckDBPyConnection, version: int) -> ListVersion | None:
    """List version ``version`` with its time (None: not committed; 0: the empty list)."""
    if version == 0:
        return NO_VERSION
    row = one(con, "SELECT version, committed_at FROM list_versions WHERE version = ?",
              [version])
    return None if row is None else ListVersion(int(row[0]), row[1].replace(tzinfo=dt.UTC))


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB identifier: double-quoted, inner quotes doubled.

    Example:
        >>> quote_ident('a"b')
        '"a""b"'
    """
    return '"' + str(name).replace('"', '""') + '"'


def empty_pairs_fields() -> dict[str, pa.Array]:
    """The record columns :func:`candidate_pairs` adds, empty."""
    return {"record_id": pa.array([], pa.int64()), "record_number": pa.array([], pa.string()),
            "record_type": pa.array([], pa.string()),
            "record_country": pa.array([], pa.string())}


def candidate_pairs(con: duckdb.DuckDBPyConnection, candidates: pa.Table,
                    carried: Sequence[str], since: dt.datetime | int | None) -> pa.Table:
    """Screening's join: each candidate (``row, number, type, country, fold, fold_hash``
    and the ``carried`` columns) with every active record of the same folded key (changed
    since ``since``, a time or a list version, when given), with ``record_id,
    record_number, record_type, record_country``.

    Joined on the integer ``fold_hash``: DuckDB pushes a Bloom filter of the few
    candidates' hashes into the scan of records (10M records: 0.05 s, against 0.24 s on
    the fold string). Hashes can collide, so the folds are compared too, in the projection
    (in the join or WHERE clause it cost 0.35 s).
    """
    params: dict[str, Any]
    if since is None:
        where, params = "", {}
    elif isinstance(since, int):  # made by a later version than ``since``
        where, params = "WHERE r.listed_in > $since", {"since": since}
    else:
        where, params = "WHERE r.updated_at >= $since", {"since": to_db(since)}
    extra = "".join(f"c.{quote_ident(k)}, " for k in carried)
    con.register("_cand", candidates)
    try:
        pairs = con.sql(f"""
            SELECT DISTINCT c.row, c.number, c.type, c.country, {extra}
                   r.record_id, r.number AS record_number, r.doc_type AS record_type,
                   r.country AS record_country, c.fold = r.fold AS same_fold
            FROM _cand c JOIN records r ON r.fold_hash = c.fold_hash {where}
            """, params=params).to_arrow_table()
    finally:
        con.unregister("_cand")
    return pairs.filter(pairs["same_fold"]).drop_columns(["same_fold"])


def expiry_dates(con: duckdb.DuckDBPyConnection, record_ids: Sequence[int]
                 ) -> dict[int, dt.date | None]:
    """The expiry date of each active record of ``record_ids`` (None: not recorded): the
    evidence near-miss candidates are corroborated with."""
    rows = con.execute("SELECT record_id, date_of_expiry FROM records "
                       "WHERE record_id IN (SELECT unnest($ids))",
                       {"ids": [int(i) for i in record_ids]}).fetchall()
    return {int(i): d for i, d in rows}


def next_version(con: duckdb.DuckDBPyConnection) -> int:
    """The number the next committed change of the list takes (read inside the writer's
    transaction: writes are serialized, so no other change can take it meanwhile)."""
    return int(one(con, "SELECT coalesce(max(version), 0) + 1 FROM list_versions")[0])


def new_version(con: duckdb.DuckDBPyConnection, now: dt.datetime, change: str,
                officer: str | None, records: int, version: int | None = None
                ) -> ListVersion:
    """Record the list version made by a change the caller's transaction commits: number
    ``version`` (the :func:`next_version` its rows were written with), at ``now`` or, if a
    change that started later committed first, at that change's time: version times
    never go back."""
    number = next_version(con) if version is None else version
    last = one(con, "SELECT max(committed_at) FROM list_versions")[0]
    at = max(to_db(now), last) if last is not None else to_db(now)
    con.execute("INSERT INTO list_versions VALUES (?, ?, ?, ?, ?)",
                [number, at, change, officer or None, records])
    return ListVersion(number, at.replace(tzinfo=dt.UTC))


def current_version(con: duckdb.DuckDBPyConnection) -> ListVersion:
    """The list version of the last committed change (:data:`sltd.model.NO_VERSION` if
    none)."""
    row = one(con, "SELECT version, committed_at FROM list_versions "
                   "ORDER BY version DESC LIMIT 1")
    return NO_VERSION if row is None else ListVersion(int(row[0]),
                                                      row[1].replace(tzinfo=dt.UTC))


def history(con: duckdb.DuckDBPyConnection, key: tuple[str, str, str]
            ) -> list[tuple[Any, ...]]:
    """Every version of the record ``key`` (number, type, country), oldest first: the
    superseded ones from ``record_history`` (in force from their last change until they
    were updated or withdrawn), then the active one. Each row: ``status, owner_ncb,
    place_of_loss, date_of_loss, in force from, in force until, ended by, reason``."""
    where = "number = $number AND doc_type = $type AND country = $country"
    return con.execute(f"""
        SELECT status, owner_ncb, place_of_loss, date_of_loss, updated_at, changed_at,
               change, reason FROM record_history WHERE {where}
        UNION ALL
        SELECT status, owner_ncb, place_of_loss, date_of_loss, updated_at, NULL, NULL, NULL
        FROM records WHERE {where}
        ORDER BY 5, 6 NULLS LAST""",
        {"number": key[0], "type": key[1], "country": key[2]}).fetchall()


def record_by_id(con: duckdb.DuckDBPyConnection, record_id: int) -> dict[str, Any] | None:
    """All columns of the active record ``record_id``, or None."""
    cur = con.execute("SELECT * FROM records WHERE record_id = ?", [record_id])
    rows = cur.fetchall()
    if not rows:
        return None
    rec = dict(zip([d[0] for d in cur.description], rows[0], strict=True))
    for k in ("created_at", "updated_at"):
        rec[k] = from_db(rec[k])
    return rec


def upcoming_reviews(con: duckdb.DuckDBPyConnection, today: dt.date
                     ) -> dict[str, dict[str, int]]:
    """Per owner NCB (``-``: none), the active records whose review date has come
    (``due``: not hitting, waiting for ``sltd expire``) and those reviewed within 30 and
    365 days."""
    rows = con.execute("""SELECT coalesce(owner_ncb, '-'),
            count(*) FILTER (review_date <= $d),
            count(*) FILTER (review_date > $d AND review_date <= $d + 30),
            count(*) FILTER (review_date > $d AND review_date <= $d + 365)
        FROM records WHERE review_date <= $d + 365 GROUP BY ALL ORDER BY 1""",
                       {"d": today}).fetchall()
    return {owner: {"due": int(a), "within_30_days": int(b), "within_365_days": int(c)}
            for owner, a, b, c in rows}


def stats(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts of active records by status, type and top countries; history counts."""
    total = one(con, "SELECT count(*) FROM records")
    by_status = dict(con.execute(
        "SELECT status, count(*) FROM records GROUP BY ALL ORDER BY 1").fetchall())
    by_type = dict(con.execute(
        "SELECT doc_type, count(*) FROM records GROUP BY ALL ORDER BY 2 DESC").fetchall())
    top = con.execute("SELECT country, count(*) FROM records GROUP BY ALL "
                      "ORDER BY 2 DESC, 1 LIMIT 10").fetchall()
    hist = dict(con.execute(
        "SELECT change, count(*) FROM record_history GROUP BY ALL ORDER BY 1").fetchall())
    last = one(con, "SELECT max(updated_at) FROM records")
    return {
        "records": total[0] if total else 0,
        "by_status": by_status,
        "by_type": by_type,
        "top_countries": dict(top),
        "history": hist,
        "last_change": last[0].replace(tzinfo=dt.UTC).isoformat() if last and last[0] else None,
    }
