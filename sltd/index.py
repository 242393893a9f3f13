"""The Index: the public face of one index file, a thin facade over the modules that do
the work (like ``httpx.Client`` over its transports).

- :mod:`sltd.database` owns the file: a cursor per thread, one writer at a time, one
  shared state per file per process;
- :mod:`sltd.keyset` holds the published key sets, :mod:`sltd.search` answers the first
  level and mints hit ids, :mod:`sltd.workflow` reveals and decides, :mod:`sltd.alerts`
  delivers, :mod:`sltd.audit` chains every entry, :mod:`sltd.screen` screens manifests.

Every public method may be called from any number of threads at once. A check reads one
published snapshot of the key sets and never waits for a write; a write (load, withdraw,
reveal, decision, delivery) commits, then publishes, then returns, so a check that starts
after it returned sees it.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.duckdb")
    >>> with open_index(path, create=True) as ix:
    ...     _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    ...     [h.match.value for h in ix.check("x123-4567", "passport", "FRA")]
    ['exact']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import pyarrow as pa

from sltd import alerts, codes, store, workflow
from sltd.audit import AuditLog, AuditReport
from sltd.audit import verify as verify_audit
from sltd.clock import Clock, SystemClock
from sltd.database import Database
from sltd.errors import RecordNotFound, SourceError, ValidationError
from sltd.keyset import Keys
from sltd.model import Alert, Hit, HitCase, HitDetails, Record
from sltd.mrz import MRZCheck, parse_mrz
from sltd.normalize import canonical_number, fold_number
from sltd.search import HitIds, Search
from sltd.sources import Problem, Source, arrow_from_rows, read_source, refuse_overwrite
from sltd.sources import write_rejects as _write_rejects
from sltd.store import LoadCounts

_ncb = functools.lru_cache(maxsize=1024)(workflow.ncb_code)


def default_db_path() -> str:
    """``$SLTD_DB`` if set, else ``./sltd.duckdb``."""
    return os.environ.get("SLTD_DB") or "sltd.duckdb"


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


def open_index(path: str | os.PathLike[str] | None = None, *, create: bool = False,
               clock: Clock | None = None, read_only: bool = False,
               wait: float | None = None) -> Index:
    """Open the index at ``path`` (default :func:`default_db_path`).

    Args:
        path: the DuckDB file; ``":memory:"`` for a throw-away index.
        create: create the file and schema if missing (otherwise a missing index is an error).
        clock: where time comes from (default: the system clock, UTC).
        read_only: no writes through this object; its checks are not audited.
        wait: seconds to wait while another process holds the file (default 5, or
            ``$SLTD_WAIT``).

    Raises:
        IndexStateError: no index there (and ``create`` is false), not an index, another
            schema, or held by another process for longer than ``wait``.
    """
    return Index(path if path is not None else default_db_path(), create=create,
                 clock=clock, read_only=read_only, wait=wait)


class _Shared:
    """What every Index on one file in this process shares: key sets, audit chain, hit-id
    secret, home NCB."""

    def __init__(self, db: Database):
        self.keys = Keys(lambda: store.key_columns(db.cursor()))
        self.audit = AuditLog(db, enabled=not db.read_only)
        self.hit_ids = HitIds(bytes.fromhex(store.get_meta(db.cursor(), "hit_secret") or ""))
        self.search = Search(self.keys, lambda folds: store.rows_by_folds(db.cursor(), folds),
                             self.hit_ids)
        self.home_ncb = store.get_meta(db.cursor(), "home_ncb") or ""


class Index:
    """A stolen and lost travel documents index: load, check, reveal, withdraw, screen.

    Use :func:`open_index`. Safe to share between threads; opening the same file twice in
    one process gives two facades over one shared state.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False,
                 clock: Clock | None = None, read_only: bool = False,
                 wait: float | None = None):
        self.path = os.fspath(path)
        self.clock: Clock = clock or SystemClock()
        self._read_only = read_only
        self._db = Database.open(self.path, create=create, read_only=read_only, wait=wait)
        try:
            if self._db.read_only:
                store.check_schema(self._db.cursor(), self.path)
            else:
                with self._db.write_lock:  # DDL in autocommit: an index build commits fast
                    if create:
                        store.create_schema(self._db.writer, self.clock.now())
                    store.check_schema(self._db.writer, self.path)
                    store.migrate(self._db.writer)
            self._s = self._db.shared("index", lambda: _Shared(self._db))
        except BaseException:
            self._db.release()
            raise
        self._closed = False

    # --- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        """Write buffered audit entries and let go of the file (the last user closes it)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._s.audit.flush()
        finally:
            self._db.release()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __len__(self) -> int:
        row = store.one(self._db.cursor(), "SELECT count(*) FROM records")
        return int(row[0]) if row else 0

    @property
    def key_set_bytes(self) -> int:
        """Memory held by the in-memory key sets and their probe filters."""
        return self._s.keys.snapshot().nbytes

    # --- settings ---------------------------------------------------------------------

    @property
    def home_ncb(self) -> str | None:
        """The NCB this index belongs to: the searching NCB of checks that name none."""
        return self._s.home_ncb or None

    def set_home_ncb(self, ncb: str, *, officer: str = "") -> None:
        """Record the NCB this index belongs to (audited)."""
        self._setting("home_ncb", _ncb(ncb, "ncb"), officer)
        self._s.home_ncb = _ncb(ncb, "ncb")

    @property
    def validation_window(self) -> dt.timedelta:
        """How long the owner NCB has to confirm a hit (default 60 minutes)."""
        minutes = store.get_meta(self._db.cursor(), "validation_window_minutes")
        return dt.timedelta(minutes=float(minutes or workflow.DEFAULT_WINDOW_MINUTES))

    def set_validation_window(self, minutes: float, *, officer: str = "") -> None:
        """Set the validation window, as national law requires (applies to new cases)."""
        if not 0 < minutes <= 7 * 24 * 60:
            raise ValidationError("must be more than 0 and at most one week (10080 minutes)",
                                  field="validation_minutes", value=minutes)
        self._setting("validation_window_minutes", f"{minutes:g}", officer)

    def _setting(self, key: str, value: str, officer: str) -> None:
        now = self.clock.now()
        with self._db.write(on_rollback=self._s.audit.invalidate) as con:
            old = store.get_meta(con, key)
            if old != value:
                store.set_meta(con, key, value)
                self._s.audit.write(con, now, "setting", actor=officer or None, subject=key,
                                    result=f"{old or '(unset)'} -> {value}")

    # --- writes -----------------------------------------------------------------------

    def load(self, source: Source, *, format: str | None = None,
             mapping: Mapping[str, str] | None = None,
             rejects: str | os.PathLike[str] | None = None, officer: str = "") -> LoadReport:
        """Load records from CSV, Parquet, JSON Lines or an Arrow table, in one transaction.

        Valid rows are inserted or replace the record of the same key (the old version goes
        to history); identical rows change nothing, so reloading a file is idempotent.
        Invalid rows are left out and reported with row, field, value and reason, in the
        report and, if ``rejects`` is given, in that CSV file. The load is audited. If
        anything fails, the index is left exactly as it was. Checks go on meanwhile.

        Args:
            source: file path or Arrow table.
            format: csv, parquet, jsonl or arrow (default: from the file name).
            mapping: sltd column -> source column, e.g. ``{"document_number": "doc_no"}``.
            rejects: CSV file to write the problems to (even when there are none); never
                the source itself.
            officer: who loads, for the audit trail.

        Raises:
            SourceError: the source cannot be read, lacks a mandatory column, or
                ``rejects`` is the source.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> rep = ix.load(pa.table({"document_number": ["X1234567", "?"],
            ...     "document_type": ["P", "P"], "issuing_country": ["FRA", "FRA"],
            ...     "status": ["lost", "lost"]}))
            >>> rep.inserted, rep.rejected, rep.problems[0].field
            (1, 1, 'document_number')
        """
        start = time.perf_counter()
        if rejects is not None:
            refuse_overwrite(rejects, [source, self.path], what="rejects file")
        src = read_source(source, format=format, mapping=mapping, required=store.MANDATORY,
                          optional=store.OPTIONAL)
        now = self.clock.now()
        with self._db.write(on_rollback=self._s.audit.invalidate) as con:
            checked = store.validate(con, src)
            counts = store.upsert(con, checked.valid, now)
            problems = (*src.problems, *checked.problems)
            counts = dataclasses.replace(counts, rows_read=src.table.num_rows
                                         + len(src.problems),
                                         rejected=len({p.row for p in problems}))
            self._s.audit.write(con, now, "load", actor=officer or None,
                                ncb=self.home_ncb, subject=src.name, result=counts.summary())
            if rejects is not None:  # inside the transaction: no load without its rejects
                _write_rejects(rejects, problems)
        with self._db.write_lock:
            store.ensure_index(self._db.writer)
        self._s.keys.add(checked.valid)  # published before we return
        return LoadReport(**dataclasses.asdict(counts), source=src.name, problems=problems,
                          rejects_path=os.fspath(rejects) if rejects is not None else None,
                          seconds=time.perf_counter() - start)

    def upsert(self, records: Iterable[Record], *, officer: str = "") -> LoadReport:
        """Add or update records (already validated :class:`Record` values)."""
        rows = [r.as_dict() for r in records]
        if not rows:
            raise SourceError("no records given")
        return self.load(arrow_from_rows(rows), officer=officer)

    def withdraw(self, number: str, doc_type: str, country: str, *,
                 reason: str | None = None, officer: str = "") -> None:
        """Withdraw a record (the document was recovered): kept in history, no longer hit.
        Audited. The key sets keep its hash: a superset only costs a DuckDB lookup.

        Raises:
            RecordNotFound: no active record with that key.
        """
        key = (canonical_number(number), codes.doc_type_code(doc_type),
               codes.country_code(country))
        now = self.clock.now()
        with self._db.write(on_rollback=self._s.audit.invalidate) as con:
            if not store.withdraw(con, key, fold_number(key[0]), now, reason):
                raise RecordNotFound(number=key[0], doc_type=key[1], country=key[2])
            self._s.audit.write(con, now, "withdraw", actor=officer or None,
                                ncb=self.home_ncb, subject=" ".join(key), result=reason)

    # --- first level ------------------------------------------------------------------

    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, ncb: str | None = None, officer: str = ""
              ) -> list[Hit]:
        """First-level check of one document: hits with number, type and country only.

        Args:
            number: the document number as typed or read (separators and case ignored).
            doc_type: type code or name, if known.
            country: issuing-country code, if known.
            exact_only: skip near-miss search (exact and partial hits only).
            ncb: the searching NCB (default: the index's home NCB); hit ids are bound to
                it, and only that NCB can reveal them.
            officer: who searches, for the audit trail.

        Returns:
            Hits, exact first, then partial, then near misses by descending score; at most
            :data:`sltd.search.MAX_HITS`. An empty list means not listed.

        Raises:
            ValidationError: the number, type, country or NCB is not acceptable.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> [(h.match.value, h.number) for h in ix.check("X1Z34567", "P", "FRA")]
            [('near', 'X1234567')]
        """
        who, now = self._searching(ncb), self.clock.now()
        hits = self._s.search.check(number, doc_type, country, ncb=who, now=now,
                                    exact_only=exact_only)
        return self._audited(now, hits, number, doc_type, country, who, officer)

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  ncb: str | None = None, officer: str = "") -> MRZCheck:
        """First-level check of a document by its machine-readable zone.

        The MRZ is parsed and its check digits verified; a failed digit does not stop the
        search (a misread MRZ of a listed document must still find it) and is reported in
        ``result.mrz.failed_checks``. When the number's digit matches, near misses are
        kept only if the reader could have misread them without the digit noticing
        (:meth:`sltd.mrz.MRZ.could_be_misread`).

        Raises:
            MRZError: the text is not an MRZ.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("L898902C3", "P", "UTO", "stolen")])
            >>> r = ix.check_mrz(["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
            ...                   "L8989O2C36UTO7408122F1204159ZE184226B<<<<<10"])
            >>> r.mrz.failed_checks, [(h.match.value, h.explanation) for h in r.hits]
            (('document number', 'composite'), [('near', "'0' read as 'O' at position 6")])
        """
        read = parse_mrz(mrz)
        who, now = self._searching(ncb), self.clock.now()
        hits = self._s.search.check_mrz(read, ncb=who, now=now, exact_only=exact_only)
        return MRZCheck(read, self._audited(now, hits, read.number, read.doc_type,
                                            read.country, who, officer))

    def _searching(self, ncb: str | None) -> str:
        return _ncb(ncb, "ncb") if ncb else self._s.home_ncb

    def _audited(self, now: dt.datetime, hits: list[Hit], number: str, doc_type: str | None,
                 country: str | None, ncb: str, officer: str) -> list[Hit]:
        if not self._read_only:
            self._s.audit.record_check(now, officer, ncb, number, doc_type, country,
                                       _summary(hits))
        return hits

    # --- second level: reveal, cases, alerts, audit --------------------------------------

    def reveal(self, hit_id: str, *, officer: str, ncb: str | None = None) -> HitDetails:
        """Open the second-level details of a first-level hit, and the hit case.

        Revealing notifies, in the same transaction, the owner NCB (or the General
        Secretariat for an international organisation's record), the searching NCB and the
        Command and Coordination Centre, and starts the validation deadline. Revealing the
        same hit id again returns the same case and sends nothing new.

        Args:
            hit_id: from a :meth:`check` made by ``ncb``.
            officer: who reveals (audited).
            ncb: the NCB the hit id was issued to (default: the home NCB).

        Raises:
            HitIdError: forged, mistyped, issued to another NCB, older than the hit-id
                lifetime or in the future, or its record was withdrawn since.
            ValidationError: unknown NCB or no officer.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
            >>> d = ix.reveal(hit.hit_id, officer="K. Weber", ncb="DEU")
            >>> d.status.value, d.owner, d.deadline - d.revealed_at
            ('stolen', 'FRA', datetime.timedelta(seconds=3600))
            >>> sorted(a.recipient for a in ix.alerts())
            ['CCC', 'owner:FRA', 'searching:DEU']
        """
        who = self._searching(ncb)
        if not who:
            raise ValidationError("say which NCB reveals (the one the hit id was issued "
                                  "to), or set the index's home NCB", field="ncb", value=ncb)
        return workflow.reveal(self._db, self._s.audit, self._s.hit_ids, hit_id,
                               officer=officer, ncb=who, now=self.clock.now(),
                               window=self.validation_window)

    def confirm(self, case_id: str, *, officer: str, reason: str | None = None) -> HitCase:
        """The owner NCB confirms the record is valid (also after the deadline, then late).

        Raises:
            CaseError: no such case, or it is already closed.
        """
        return workflow.decide(self._db, self._s.audit, case_id, confirmed=True,
                               officer=officer, reason=reason, now=self.clock.now())

    def reject(self, case_id: str, *, officer: str, reason: str) -> HitCase:
        """Not confirmed: the record is no longer valid, or it is not this document.

        Raises:
            CaseError: no such case, or it is already closed.
            ValidationError: no reason given.
        """
        return workflow.decide(self._db, self._s.audit, case_id, confirmed=False,
                               officer=officer, reason=reason, now=self.clock.now())

    def cases(self, states: Sequence[str] | None = None) -> list[HitCase]:
        """Hit cases in the given states (all by default), earliest deadline first."""
        return workflow.list_cases(self._db.cursor(),
                                   [str(s) for s in states] if states else None)

    def case(self, case_id: str) -> HitCase:
        """One hit case. Raises CaseError if there is none."""
        return workflow.get_case(self._db.cursor(), case_id)

    def escalate_overdue(self) -> list[HitCase]:
        """Escalate every pending case whose deadline has passed (each exactly once)."""
        return workflow.escalate(self._db, self._s.audit, self.clock.now())

    def deliver_alerts(self, router: alerts.Router, *, limit: int = 1000
                       ) -> alerts.DeliveryReport:
        """Deliver due alerts through ``router`` (at least once; failures retried later)."""
        return alerts.deliver(self._db, self._s.audit, router, self.clock.now(), limit=limit)

    def alerts(self, *, case_id: str | None = None, undelivered: bool = False
               ) -> list[Alert]:
        """The outbox: every alert with its recipient, kind, case and delivery state."""
        return alerts.list_alerts(self._db.cursor(), case_id=case_id, undelivered=undelivered)

    def redeliver(self, alert_ids: Sequence[str] = (), *, failed: bool = False,
                  officer: str = "") -> int:
        """Queue the given alerts (or every failing one) for delivery now (audited)."""
        now = self.clock.now()
        with self._db.write(on_rollback=self._s.audit.invalidate) as con:
            n = alerts.redeliver(con, now, alert_ids=alert_ids, failed=failed)
            if n:
                self._s.audit.write(con, now, "redeliver", actor=officer or None,
                                    subject=", ".join(alert_ids) or "failed alerts",
                                    result=f"{n} queued")
        return n

    def verify_audit(self) -> AuditReport:
        """Recompute the audit chain; the report names the first broken entry."""
        self._s.audit.flush()
        return verify_audit(self._db.cursor())

    # --- bulk and reporting -----------------------------------------------------------

    def screen(self, source: Source, *, ncb: str | None = None, **options: Any
               ) -> tuple[pa.Table, Any]:
        """Screen a whole manifest: see :func:`sltd.screen.screen` for the options.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> hits, report = ix.screen(pa.table({"document_number": ["X1234567", "Q1"],
            ...     "issuing_country": ["FRA", "FRA"]}))
            >>> hits.column("match").to_pylist(), report.rejected
            (['partial'], 1)
        """
        from sltd.screen import screen

        return screen(source, keys=self._s.keys.snapshot(), hit_ids=self._s.hit_ids,
                      con=self._db.cursor(), now=self.clock.now(), ncb=self._searching(ncb),
                      **options)

    def stats(self) -> dict[str, Any]:
        """Counts by status, type and country, history, key-set memory."""
        s = store.stats(self._db.cursor())
        s["key_set_bytes"] = self.key_set_bytes
        s["path"] = self.path
        s["home_ncb"] = self.home_ncb
        return s


def _summary(hits: list[Hit]) -> str:
    if not hits:
        return "miss"
    kinds: dict[str, int] = {}
    for h in hits:
        kinds[h.match.value] = kinds.get(h.match.value, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in kinds.items())

