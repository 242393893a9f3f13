"""Loading records: read a source, validate every row, apply the valid ones in one
transaction with its audit entry, then publish the new keys to the checks.

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
from collections.abc import Mapping
from typing import Any

from sltd import store
from sltd.audit import AuditLog
from sltd.database import Database
from sltd.keyset import Keys
from sltd.sources import Problem, Source, read_source, refuse_overwrite, write_rejects
from sltd.store import LoadCounts


@dataclasses.dataclass(frozen=True)
class LoadReport(LoadCounts):
    """What a load did: ``rows_read``, ``inserted``, ``updated``, ``unchanged``,
    ``rejected`` (rows left out, each in ``problems`` with field and reason, one per field
    per row), ``rejects_path`` (where the problems were written, if anywhere), ``seconds``.
    """

    source: str = ""
    problems: tuple[Problem, ...] = ()
    rejects_path: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["problems"] = len(self.problems)
        return d


def load(db: Database, audit: AuditLog, keys: Keys, source: Source, *, now: dt.datetime,
         format: str | None = None, mapping: Mapping[str, str] | None = None,
         rejects: str | os.PathLike[str] | None = None, officer: str = "",
         ncb: str | None = None) -> LoadReport:
    """Load ``source`` into ``db`` (see :meth:`sltd.Index.load`); ``ncb`` and ``officer``
    go into the audit entry."""
    start = time.perf_counter()
    if rejects is not None:
        refuse_overwrite(rejects, [source, db.path], what="rejects file")
    src = read_source(source, format=format, mapping=mapping, required=store.MANDATORY,
                      optional=store.OPTIONAL)
    # Commit and publish under one hold of the writer lock: keys are published in commit
    # order, so a withdrawal that commits after this load is never undone by its publish.
    with db.write_lock:
        with db.write(on_rollback=audit.invalidate) as con:
            checked = store.validate(con, src)
            # The new records are read back only for key sets already built (a process
            # that has not checked yet builds them from the table when it first does).
            counts, inserted = store.upsert(con, checked.valid, now, returning=keys.built)
            problems = (*src.problems, *checked.problems)
            counts = dataclasses.replace(
                counts, rows_read=src.table.num_rows + len(src.problems),
                rejected=len({p.row for p in problems}))
            audit.write(con, now, "load", actor=officer or None, ncb=ncb, subject=src.name,
                        result=counts.summary())
            if rejects is not None:  # inside the transaction: no load without its rejects
                write_rejects(rejects, problems)
        store.ensure_index(db.writer)  # after COMMIT: 4 s at 10M, against 32 s inside
        keys.add(inserted)  # published before we return (checks never take this lock)
    return LoadReport(**dataclasses.asdict(counts), source=src.name, problems=problems,
                      rejects_path=os.fspath(rejects) if rejects is not None else None,
                      seconds=time.perf_counter() - start)
