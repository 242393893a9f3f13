"""Loading records: read a source, validate every row, apply the valid ones in one
transaction with its audit entry, then publish the new keys to the checks.

The source is read, validated and staged in batches (:data:`BATCH_ROWS`), then applied at
once, so memory follows the batch size and not the file's (a first load of 10M records
peaks at 1.25-1.5 GiB, most of it DuckDB building the lookup indexes after the COMMIT). A
failure or Ctrl-C at any point leaves the index as it was.

The order is what keeps concurrent checks right: COMMIT, then publish the key sets, then
return. A check that starts after the load returned finds its records; one that overlaps
it sees the list before or after, never half of it. Checks never wait for a load.

Example:
    >>> import pyarrow as pa
    >>> from sltd import open_index
    >>> ix = open_index(":memory:", create=True)
    >>> rep = ix.load(pa.table({"document_number": ["X1234567", "?"],
    ...     "document_type": ["P", "P"], "issuing_country": ["FRA", "FRA"],
    ...     "status": ["lost", "lost"]}))
    >>> rep.inserted, rep.rejected, rep.problems[0].field
    (1, 1, 'document_number')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from sltd import store
from sltd.audit import AuditLog
from sltd.database import Database
from sltd.errors import FeedError
from sltd.keyset import Keys
from sltd.model import ListVersion
from sltd.sources import Problem, Source, open_source, refuse_overwrite, write_rejects
from sltd.store import LoadCounts

#: Rows read, validated and staged at a time: memory follows this, not the file's size.
BATCH_ROWS = 1 << 20


@dataclasses.dataclass(frozen=True)
class LoadReport(LoadCounts):
    """What a load did: ``rows_read``, ``inserted``, ``updated``, ``unchanged``,
    ``withdrawn`` (a replica's delta), ``rejected`` (rows left out, each in ``problems``
    with field and reason, one per field per row), ``rejects_path`` (where the problems
    were written, if anywhere), ``seconds``."""

    source: str = ""
    problems: tuple[Problem, ...] = ()
    rejects_path: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["problems"] = len(self.problems)
        return d


@dataclasses.dataclass(frozen=True)
class LoadProgress:
    """Where a load is, as its ``progress`` callback hears it.

    Attributes:
        stage: ``"reading"`` (reading, validating and staging batches: ``rows_read``
            grows), then ``"applying"`` (the staged rows go into the records at once),
            then ``"indexing"`` (after the commit: the key file is brought up to date,
            or built by a first load).
        rows_read: data rows read so far (rejected ones included).
        rows_total: data rows in the source, if its format tells up front (Parquet,
            Arrow); else None.
    """

    stage: str
    rows_read: int
    rows_total: int | None


def load(db: Database, audit: AuditLog, keys: Keys, source: Source, *, now: dt.datetime,
         format: str | None = None, mapping: Mapping[str, str] | None = None,
         rejects: str | os.PathLike[str] | None = None, officer: str = "",
         ncb: str | None = None, batch_rows: int = BATCH_ROWS,
         progress: Callable[[LoadProgress], None] | None = None,
         withdrawals: pa.Table | None = None, as_version: ListVersion | None = None,
         change: str = "load", strict: bool = False, onto: int | None = None
         ) -> LoadReport:
    """Load ``source`` into ``db`` (see :meth:`sltd.Index.load`); ``ncb`` and ``officer``
    go into the audit entry.

    The source is read, validated and staged ``batch_rows`` at a time, then applied at
    once, all in one transaction: memory is bounded by the batch size, not the file's.

    A replica applies a feed's delta as one such load (:mod:`sltd.feed`): the records of
    ``withdrawals`` (number, doc_type, country) are withdrawn in the same transaction, and
    the change is recorded as list version ``as_version`` (the source's number and commit
    time), whatever it changed; ``strict``: a rejected row refuses the whole load
    (:class:`sltd.errors.FeedError`), as a replica must not diverge from its source;
    ``onto``: the list version the load must start from (checked in its transaction: a
    delta applies only onto the version it follows).
    """
    start = time.perf_counter()
    if rejects is not None:
        refuse_overwrite(rejects, [source, db.path], what="rejects file")
    stream = open_source(source, format=format, mapping=mapping, required=store.MANDATORY,
                         optional=store.OPTIONAL, batch_rows=batch_rows,
                         dictionary=(*store.MANDATORY[1:], *store.OPTIONAL))
    say = progress or (lambda _: None)
    rows_read = 0
    problems: list[Problem] = []
    # Commit and publish under one hold of the writer lock: keys are published in commit
    # order, so a withdrawal that commits after this load is never undone by its publish.
    with db.write_lock:
        store.drop_indexes(db.writer)
        first = store.no_records(db.writer)
        with store.bulk_session(db.writer, first=first, rows=stream.rows), \
                store.checker(db.writer) as checker, \
                db.write(on_rollback=audit.invalidate) as con:
            if onto is not None and (now_at := store.current_version(con).version) != onto:
                raise FeedError(f"the list is at version {now_at}, not {onto} as the "
                                "change expects (changed meanwhile); nothing applied")
            staging = store.open_staging(
                con, now, version=as_version.version if as_version is not None else None)
            for batch in stream.batches():
                checked = store.validate(checker, batch)
                store.stage(con, staging, checked.valid)
                problems += (*batch.problems, *checked.problems)
                rows_read += batch.table.num_rows + len({p.row for p in batch.problems})
                say(LoadProgress("reading", rows_read, stream.rows))
                del batch, checked  # not alive while the next batch is read
            problems += store.duplicates(con, staging)
            say(LoadProgress("applying", rows_read, stream.rows))
            counts = store.upsert(con, staging)
            gone = store.withdraw_keys(con, withdrawals, now, staging.version) \
                if withdrawals is not None and withdrawals.num_rows else None
            problems.sort(key=lambda p: (p.row, p.field))
            if strict and problems:
                bad = problems[0]
                raise FeedError(f"{len(problems)} rows refused; the first: row {bad.row}, "
                                f"{bad.field}={bad.value!r}: {bad.reason}")
            counts = dataclasses.replace(counts, rows_read=rows_read,
                                         rejected=len({p.row for p in problems}),
                                         withdrawn=gone.num_rows if gone is not None else 0)
            changed = counts.inserted + counts.updated + counts.withdrawn
            version = store.new_version(
                con, as_version.committed_at or now if as_version is not None else now,
                change, officer, changed, staging.version) \
                if changed or as_version is not None else None
            audit.write(con, now, change, actor=officer or None, ncb=ncb,
                        subject=stream.name, result=counts.summary() + (
                            f"; list version {version.version}" if version else ""))
            if rejects is not None:  # inside the transaction: no load without rejects
                write_rejects(rejects, problems)
        # Published before we return (checks never take this lock): the records with ids
        # above the published ones, read back after the COMMIT; a process that had not
        # used the keys opens the key file (or builds it, for a first load) now, so the
        # next check, here or in another process, does not pay for it.
        say(LoadProgress("indexing", rows_read, stream.rows))
        keys.reviews_changed(now.timestamp())  # before the new keys are published
        if keys.built:
            keys.add(version=version)
            if gone is not None and gone.num_rows:
                keys.withdraw(gone.column("record_id").to_pylist(), version, gone)
        else:
            keys.snapshot()
    return LoadReport(**dataclasses.asdict(counts), source=stream.name,
                      problems=tuple(problems),
                      rejects_path=os.fspath(rejects) if rejects is not None else None,
                      seconds=time.perf_counter() - start)
