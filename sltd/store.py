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

Bulk validation runs in DuckDB SQL over an Arrow table and collects every problem of every
row; the messages are then produced by the same Python validators that check a single
record, so a reject reads the same whichever way the record came in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd import codes
from sltd.errors import IndexStateError, ValidationError, reason_of
from sltd.keyhash import key_hashes
from sltd.model import (
    CONTROL_CHARACTERS,
    EXPIRY_REASON,
    OWNER_REASON,
    PLACE_LIMIT,
    _date,
    _text,
)
from sltd.normalize import (
    MAX_LENGTH,
    MIN_LENGTH,
    SQL_CLEAN,
    SQL_FOLD,
    SQL_VALID,
    canonical_number,
)
from sltd.sources import Problem, SourceTable

#: 2: the folded-key hash is fmix64-mixed (:mod:`sltd.keyset`); version 1 files (a linear
#: hash) are migrated on a writable open (:func:`migrate`).
#: 3: the audit trail is hashed per batch (``audit_batches``); entries written before keep
#: their per-entry chain (``prev_hash``, NULL in batched entries).
SCHEMA_VERSION = 3

#: Columns of a record, in loader (default source) names.
MANDATORY = ("document_number", "document_type", "issuing_country", "status")
OPTIONAL = ("owner_ncb", "place_of_loss", "date_of_loss", "date_of_issue", "date_of_expiry")
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
CREATE TABLE IF NOT EXISTS records ({_RECORD_COLUMNS});
CREATE TABLE IF NOT EXISTS record_history ({_RECORD_COLUMNS},
    change VARCHAR NOT NULL, changed_at TIMESTAMP NOT NULL, reason VARCHAR);
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
    reason VARCHAR
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
CREATE TABLE IF NOT EXISTS audit_batches (
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
);
"""
_INDEX = "CREATE INDEX IF NOT EXISTS records_fold ON records (fold)"
# Reveal finds a record by the id its hit id carries: one indexed column, no scan.
_ID_INDEX = "CREATE INDEX IF NOT EXISTS records_id ON records (record_id)"


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
    con.execute(_INDEX)
    con.execute(_ID_INDEX)
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
    **{d: functools.partial(_date, field=d) for d in _DATES},
}


def _reason(field: str, value: Any) -> str:
    if field == "owner_ncb":
        return OWNER_REASON
    if field == "date_of_expiry" and _is_valid_date(value):
        return EXPIRY_REASON  # a valid date that is before the issue date
    return reason_of(_CHECKS[field], value)


def _validation_sql(columns: Sequence[str]) -> str:
    def col(name: str) -> str:
        return f'"{name}"' if name in columns else "CAST(NULL AS VARCHAR)"

    # Strict ISO shape (YYYY-MM-DD, 10 characters, dashes at 5 and 8) before the cast, so
    # the bulk path accepts exactly what model._date accepts; cheaper than a regex.
    date_exprs = {
        d: f"CASE WHEN length(trim({col(d)})) = 10 AND substr(trim({col(d)}), 5, 1) = '-' "
           f"AND substr(trim({col(d)}), 8, 1) = '-' AND regexp_full_match(trim({col(d)}), "
           f"'[0-9-]+') THEN try_cast(trim({col(d)}) AS DATE) END"
        for d in _DATES
    }
    # White space as Python's str.split() sees it (RE2's \\s is ASCII only): runs of it
    # become one space, so the bulk path stores what Record stores.
    place = (f"nullif(trim(regexp_replace({col('place_of_loss')}, '[\\s\\p{{Z}}]+', ' ', "
             "'g')), '')")
    raw = col("document_number")
    # Fast path: a number that is already plain ASCII alphanumeric needs only upper().
    clean = (f"CASE WHEN regexp_full_match({raw}, '[A-Za-z0-9]{{{MIN_LENGTH},{MAX_LENGTH}}}') "
             f"THEN {raw} ELSE {SQL_CLEAN.format(col=raw)} END")
    return f"""
    CREATE OR REPLACE TEMP TABLE _checked AS
    SELECT *, number IS NOT NULL AND doc_type IS NOT NULL AND country IS NOT NULL
        AND status IS NOT NULL AND owner_ncb IS DISTINCT FROM '?'
        AND coalesce(length(place_of_loss), 0) <= {PLACE_LIMIT} AND NOT place_control
        AND coalesce(date_of_issue <= date_of_expiry, true)
        AND {' AND '.join(f"(raw_{d} IS NULL OR {d} IS NOT NULL)" for d in _DATES)} AS ok
    FROM (SELECT src.__row,
        CASE WHEN {SQL_VALID.format(col='src.__clean')} THEN upper(src.__clean) END AS number,
        t.code AS doc_type, c.code AS country, s.code AS status,
        CASE WHEN nullif(trim({col('owner_ncb')}), '') IS NULL THEN NULL
             ELSE coalesce(o.code, '?') END AS owner_ncb,
        {place} AS place_of_loss,
        coalesce(regexp_matches({col('place_of_loss')}, '{CONTROL_CHARACTERS}'), false)
            AS place_control,
        {', '.join(f'{e} AS {d}' for d, e in date_exprs.items())},
        {', '.join(f"nullif(trim({col(d)}), '') AS raw_{d}" for d in _DATES)}
    FROM (SELECT *, {clean} AS __clean FROM src) src
    LEFT JOIN _alias_document_type t
        ON t.alias = {codes.SQL_ALIAS_KEY.format(col=col('document_type'))}
    LEFT JOIN _alias_issuing_country c
        ON c.alias = {codes.SQL_COUNTRY_KEY.format(col=col('issuing_country'))}
    LEFT JOIN _alias_status s ON s.alias = {codes.SQL_ALIAS_KEY.format(col=col('status'))}
    LEFT JOIN _alias_owner o ON o.alias = {codes.SQL_COUNTRY_KEY.format(col=col('owner_ncb'))}
    )
    """


def _problems_sql(columns: Sequence[str]) -> str:
    """One row per (bad row, field at fault), with the value as the source gave it."""
    given = {c: (f'src."{c}"' if c in columns else "CAST(NULL AS VARCHAR)")
             for c in (*MANDATORY, *OPTIONAL)}
    checks = [
        ("document_number", "number IS NULL"),
        ("document_type", "doc_type IS NULL"),
        ("issuing_country", "country IS NULL"),
        ("status", "status IS NULL"),
        ("owner_ncb", "owner_ncb = '?'"),
        ("place_of_loss", f"length(place_of_loss) > {PLACE_LIMIT} OR place_control"),
        *((d, f"{d} IS NULL AND raw_{d} IS NOT NULL") for d in _DATES),
        ("date_of_expiry", "date_of_expiry < date_of_issue"),
    ]
    union = "\n    UNION ALL ".join(
        f"SELECT __row, '{field}' AS field, given_{field} AS value FROM bad WHERE {cond}"
        for field, cond in checks)
    return f"""
    WITH bad AS (
        SELECT c.*, {', '.join(f'{v} AS given_{k}' for k, v in given.items())}
        FROM _checked c JOIN src USING (__row) WHERE NOT c.ok)
    {union}
    ORDER BY 1, 2
    """


@dataclasses.dataclass(frozen=True)
class Validated:
    """Valid rows (one per key, in store column order) and the problems of the others."""

    valid: pa.Table
    problems: list[Problem]


def validate(con: duckdb.DuckDBPyConnection, source: SourceTable) -> Validated:
    """Validate every row of ``source`` (sltd column names, text) in one SQL pass.

    A row with any problem is left out whole, and each of its problems is reported. When a
    key (number, type, country) occurs more than once, the last row wins and the earlier
    ones are reported as superseded, so no row disappears silently.
    """
    table = source.table
    number = table.column("document_number")
    if not pc.all(pc.string_is_ascii(number.fill_null(""))).as_py():
        table = table.set_column(table.column_names.index("document_number"),
                                 "document_number", pc.utf8_normalize(number, "NFKC"))
        raw_numbers = number  # report the value as it was given
    else:
        raw_numbers = None
    for name, aliases in _alias_tables().items():
        con.register(f"_alias_{name}", aliases)  # zero-copy views, microseconds each
    con.register("src", table)
    try:
        con.execute(_validation_sql(table.column_names))
        bad = con.execute(_problems_sql(table.column_names)).fetchall()
    finally:
        con.unregister("src")
    if raw_numbers is not None and bad:
        by_row = dict(zip(source.table.column("__row").to_pylist(), raw_numbers.to_pylist(),
                          strict=True))
    else:
        by_row = {}
    problems = [
        Problem(row, field, by_row.get(row, value) if field == "document_number" else value,
                _reason(field, value))
        for row, field, value in bad
    ]
    # Several rows with one key: the last wins, the others are reported (never dropped
    # silently). The check is one hash aggregate; the dedupe window runs only when needed.
    dups = con.execute("""
        SELECT c.__row, c.number, k.keep FROM _checked c
        JOIN (SELECT number, doc_type, country, max(__row) AS keep FROM _checked WHERE ok
              GROUP BY ALL HAVING count(*) > 1) k USING (number, doc_type, country)
        WHERE c.ok AND c.__row <> k.keep ORDER BY 1""").fetchall()
    problems += [Problem(row, "document_number", value,
                         f"same number, type and country as row {keep}, which was kept")
                 for row, value, keep in dups]
    dedupe = """QUALIFY row_number() OVER (PARTITION BY number, doc_type, country
                                         ORDER BY __row DESC) = 1""" if dups else ""
    valid = con.sql(f"""
        SELECT number, doc_type, country, {SQL_FOLD.format(col='number')} AS fold,
               {', '.join(_DATA)}
        FROM _checked WHERE ok {dedupe}
    """).to_arrow_table()
    valid = valid.add_column(4, "fold_hash", pa.array(key_hashes(valid.column("fold"))))
    con.execute("DROP TABLE _checked")
    problems.sort(key=lambda p: (p.row, p.field))
    return Validated(valid, problems)


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
        return _date(value, "date_of_expiry") is not None
    except ValidationError:
        return False


# --- writes -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LoadCounts:
    """What a load did to the records: rows read, valid records by effect, rows rejected."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rows_read: int = 0
    rejected: int = 0

    def summary(self) -> str:
        return (f"{self.rows_read} rows read, {self.inserted} inserted, {self.updated} "
                f"updated, {self.unchanged} unchanged, {self.rejected} rejected")


def upsert(con: duckdb.DuckDBPyConnection, valid: pa.Table, now: dt.datetime, *,
           returning: bool = True) -> tuple[LoadCounts, pa.Table | None]:
    """Insert new keys, replace changed records (old version to history), skip unchanged.

    Runs inside the caller's transaction. ``valid`` comes from :func:`validate`. Returns
    the counts and, if ``returning``, the inserted records' :data:`KEY_COLUMNS` (an updated
    record keeps its id, number, type and country). Without it, nothing is materialized
    (a first 10M-record load: 14 s less).
    """
    # Ids are assigned in Arrow (one arange, no SQL cost) to every valid row; only new keys
    # use theirs. Gaps are harmless; reuse is not (hit ids name records by id), so the
    # counter in meta only grows.
    base = int(get_meta(con, "next_record_id") or 1)
    valid = valid.append_column("__id", pa.array(np.arange(base, base + valid.num_rows)))
    set_meta(con, "next_record_id", str(base + valid.num_rows))
    con.register("_valid", valid)
    try:
        empty = one(con, "SELECT NOT EXISTS (SELECT 1 FROM records)")
        bulk = bool(empty and empty[0] and valid.num_rows > 100_000)
        if bulk:
            # First bulk load: insert without the ART index and let the caller build it
            # after COMMIT (10M rows: commit 32 s with the index in the transaction, 4 s
            # to build it afterwards). Lookups stay correct without it, only slower, and
            # ensure_index() rebuilds it on open if a crash fell in between.
            con.execute("DROP INDEX IF EXISTS records_fold")
            con.execute("DROP INDEX IF EXISTS records_id")
        changed_if = " OR ".join(f"v.{c} IS DISTINCT FROM r.{c}" for c in _DATA)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _changed AS
            SELECT r.record_id, r.created_at, {', '.join('v.' + c for c in _VALID_COLS)}
            FROM _valid v JOIN records r USING (number, doc_type, country)
            WHERE {changed_if}""")
        present = one(con, """SELECT count(*) FROM _valid v
            SEMI JOIN records r USING (number, doc_type, country)""")
        n_changed = one(con, "SELECT count(*) FROM _changed")
        cols = ", ".join(_VALID_COLS)
        # Record ids come from a counter in meta rather than a sequence: nextval() is
        # evaluated row by row, the counter is one window function; ids are never reused
        # (hit ids name records by id, so a withdrawn id must not come back).
        insert = f"""INSERT INTO records SELECT __id, {cols}, $now, $now
            FROM _valid ANTI JOIN records USING (number, doc_type, country)"""
        if returning:
            new = con.sql(f"{insert} RETURNING {KEY_COLUMNS}",
                          params={"now": to_db(now)}).to_arrow_table()
            n_new = new.num_rows
        else:
            new = None
            row = one(con, insert, {"now": to_db(now)})
            n_new = int(row[0]) if row else 0
        con.execute("""INSERT INTO record_history
            SELECT r.*, 'updated', $now, NULL FROM records r
            WHERE r.record_id IN (SELECT record_id FROM _changed)""", {"now": to_db(now)})
        con.execute("DELETE FROM records WHERE record_id IN (SELECT record_id FROM _changed)")
        con.execute(f"""INSERT INTO records
            SELECT record_id, {cols}, created_at, $now FROM _changed""", {"now": to_db(now)})
        con.execute("DROP TABLE _changed")
    finally:
        con.unregister("_valid")
    n_present = present[0] if present else 0
    n_upd = n_changed[0] if n_changed else 0
    return LoadCounts(inserted=n_new, updated=n_upd, unchanged=n_present - n_upd), new


def migrate(con: duckdb.DuckDBPyConnection, path: str,
            progress: Callable[[str], None] | None = None) -> int | None:
    """Bring the index in ``con`` up to date; returns the version it had if it was older.

    Creates tables added since it was made (every statement of the schema is idempotent)
    and the ART indexes, then runs each step from its version to today's, all in one
    transaction with the new version number: a crash leaves it wholly old (migrated again
    next time) or wholly new. The steps:

    - 1 to 2: every stored ``fold_hash`` is recomputed with today's key hash;
    - 2 to 3: ``audit.prev_hash`` may be NULL (batched entries have no per-entry link);
      the entries already there keep theirs, and verify as they are.

    ``con`` must not be inside a transaction.
    """
    version = schema_version(con, path)
    con.execute(SCHEMA)
    ensure_index(con)
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


#: The step from each schema version to the next (the first: from 1 to 2).
_MIGRATIONS = (_rehash_keys, _batch_the_audit)


def ensure_index(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ART indexes if missing (after a bulk load, or a crash in between)."""
    con.execute(_INDEX)
    con.execute(_ID_INDEX)


def withdraw(con: duckdb.DuckDBPyConnection, key: tuple[str, str, str], fold: str,
             now: dt.datetime, reason: str | None) -> int | None:
    """Move the active record ``key`` to history as withdrawn; its record id, or None if
    there is none.

    Runs inside the caller's transaction.
    """
    number, doc_type, country = key
    # fold = ? first: the ART index serves the one-column equality, the rest filters.
    where = "fold = ? AND number = ? AND doc_type = ? AND country = ?"
    params = [fold, number, doc_type, country]
    con.execute(f"""INSERT INTO record_history
        SELECT *, 'withdrawn', ?, ? FROM records WHERE {where}""", [to_db(now), reason, *params])
    deleted = one(con, f"DELETE FROM records WHERE {where} RETURNING record_id", params)
    return int(deleted[0]) if deleted else None


# --- reads --------------------------------------------------------------------------------

#: What the in-memory key sets and first-level table hold of each record.
KEY_COLUMNS = "record_id, number, doc_type, country, fold_hash"


def key_columns(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """:data:`KEY_COLUMNS` of all active records (to build the key sets)."""
    return con.sql(f"SELECT {KEY_COLUMNS} FROM records").to_arrow_table()


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB identifier: double-quoted, inner quotes doubled.

    Example:
        >>> quote_ident('a"b')
        '"a""b"'
    """
    return '"' + str(name).replace('"', '""') + '"'


def candidate_pairs(con: duckdb.DuckDBPyConnection, candidates: pa.Table,
                    carried: Sequence[str], since: dt.datetime | None) -> pa.Table:
    """Screening's join: each candidate (``row, number, type, country, fold, fold_hash``
    and the ``carried`` columns) with every active record of the same folded key (changed
    since ``since``, when given), with ``record_id, record_number, record_type,
    record_country``.

    Joined on the integer ``fold_hash``: DuckDB pushes a Bloom filter of the few
    candidates' hashes into the scan of records (10M records: 0.05 s, against 0.24 s on
    the fold string). Hashes can collide, so the folds are compared too, in the projection
    (in the join or WHERE clause it cost 0.35 s).
    """
    where = "WHERE r.updated_at >= $since" if since is not None else ""
    params = {"since": to_db(since)} if since is not None else {}
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
