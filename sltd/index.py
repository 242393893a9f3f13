"""The Index: one object that owns the DuckDB connection and the in-memory key set.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.duckdb")
    >>> with open_index(path, create=True) as ix:
    ...     _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    ...     [h.match.value for h in ix.check("x123-4567", "passport", "FRA")]
    ['exact']
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from sltd import alerts, codes, store, workflow
from sltd.audit import AuditLog, AuditReport
from sltd.audit import verify as verify_audit
from sltd.clock import Clock, SystemClock
from sltd.errors import (
    HitIdError,
    IndexStateError,
    RecordNotFound,
    SourceError,
    ValidationError,
)
from sltd.keyset import (
    KeySet,
    country_key_hashes,
    key_hash_bytes,
    key_hashes_from_strings,
)
from sltd.model import Alert, DocType, Hit, HitCase, HitDetails, MatchKind, Record
from sltd.mrz import MRZCheck, parse_mrz
from sltd.normalize import canonical_number, fold_bytes, fold_number
from sltd.search import classify, edit1_variants, mint_hit_id, rank_key, verify_hit_id
from sltd.sources import Problem, Source, arrow_from_rows, read_source

# Type and country validation runs on every check (a bad value is an error, even on a
# miss); the few distinct spellings a border system sends are cached.
_doc_type = functools.lru_cache(maxsize=4096)(codes.doc_type_code)
_country = functools.lru_cache(maxsize=4096)(codes.country_code)
_ncb = functools.lru_cache(maxsize=1024)(workflow.ncb_code)

#: Most hits one check returns (exact first, then partial, then near by score).
MAX_HITS = 20


def default_db_path() -> str:
    """``$SLTD_DB`` if set, else ``./sltd.duckdb``."""
    return os.environ.get("SLTD_DB") or "sltd.duckdb"


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a load did.

    Attributes:
        rows_read: data rows in the source (including malformed lines).
        inserted, updated, unchanged: valid records by effect.
        rejected: rows left out (each listed in ``problems`` with field and reason).
        problems: every problem found, one per field per row.
        rejects_path: where the problems were written, if anywhere.
        seconds: wall time of the load.
    """

    source: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    problems: tuple[Problem, ...]
    rejects_path: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["problems"] = len(self.problems)
        return d


def open_index(path: str | os.PathLike[str] | None = None, *, create: bool = False,
               clock: Clock | None = None, read_only: bool = False) -> Index:
    """Open the index at ``path`` (default :func:`default_db_path`).

    Args:
        path: the DuckDB file; ``":memory:"`` for a throw-away index.
        create: create the file and schema if missing (otherwise a missing index is an error).
        clock: where time comes from (default: the system clock, UTC).
        read_only: open without write access (several processes may read at once; DuckDB
            lets no writer in meanwhile). For analysis: checks made through a read-only
            index are not audited.

    Raises:
        IndexStateError: no index there (and ``create`` is false), or another schema.
    """
    return Index(path if path is not None else default_db_path(), create=create,
                 clock=clock, read_only=read_only)


class Index:
    """A stolen and lost travel documents index: load, check, withdraw.

    Use :func:`open_index` to get one. One Index per database file per process: the key set
    it holds is refreshed by its own writes.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False,
                 clock: Clock | None = None, read_only: bool = False):
        self.path = os.fspath(path)
        self.clock: Clock = clock or SystemClock()
        self._read_only = read_only
        memory = self.path == ":memory:"
        if not memory and not create and not Path(self.path).exists():
            raise IndexStateError(
                f"no index at {self.path}; create one with `sltd init` (or create=True)",
                path=self.path)
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
            self.con.execute("SET enable_progress_bar = false")
        except duckdb.Error as e:
            raise IndexStateError(f"cannot open {self.path}: {str(e).splitlines()[0]}",
                                  path=self.path) from None
        try:
            if create and not read_only:
                store.create_schema(self.con, self.clock.now())
            store.check_schema(self.con, self.path)
            if not read_only:
                store.migrate(self.con)
        except BaseException:
            self.con.close()
            raise
        secret = store.get_meta(self.con, "hit_secret")
        self._secret = bytes.fromhex(secret or "")
        self.audit = AuditLog(self.con, enabled=not read_only)
        self._keys = KeySet(np.empty(0, np.int64))
        self._country_keys = KeySet(np.empty(0, np.int64))
        self._add_keys(store.key_columns(self.con))

    # --- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        """Write buffered audit entries and close the database connection."""
        try:
            if not self._read_only:
                self.audit.flush()
        finally:
            self.con.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __len__(self) -> int:
        row = store.one(self.con, "SELECT count(*) FROM records")
        return int(row[0]) if row else 0

    @property
    def key_set_bytes(self) -> int:
        """Memory held by the in-memory key sets: 8 bytes per distinct folded key (exact and
        partial checks) + 8 per distinct (country, folded key) (near-miss probing), plus
        each set's probe filter (2-4 bytes a key, a power of two in all)."""
        return self._keys.nbytes + self._country_keys.nbytes

    def _add_keys(self, keys: pa.Table) -> None:
        fold_hashes = keys.column("fold_hash").to_numpy()
        self._keys = self._keys.union(fold_hashes)
        self._country_keys = self._country_keys.union(
            country_key_hashes(fold_hashes, keys.column("country")))
        # Probe filters are built now (0.2 s a set at 10M keys), not by the first
        # near-miss check or screening that probes (~3.4 bytes a record in all).
        self._keys.prepare()
        self._country_keys.prepare()

    # --- writes -----------------------------------------------------------------------

    def load(self, source: Source, *, format: str | None = None,
             mapping: Mapping[str, str] | None = None,
             rejects: str | os.PathLike[str] | None = None) -> LoadReport:
        """Load records from CSV, Parquet, JSON Lines or an Arrow table, in one transaction.

        Valid rows are inserted or replace the record of the same key (the old version goes
        to history); identical rows change nothing, so reloading a file is idempotent.
        Invalid rows are left out and reported with row, field, value and reason, in the
        report and, if ``rejects`` is given, in that CSV file. If anything fails, the index
        is left exactly as it was.

        Args:
            source: file path or Arrow table.
            format: csv, parquet, jsonl or arrow (default: from the file name).
            mapping: sltd column -> source column, e.g. ``{"document_number": "doc_no"}``.
            rejects: path of a CSV file to write the problems to (written even when empty).

        Raises:
            SourceError: the source cannot be read or lacks a mandatory column.

        Example:
            >>> import pyarrow as pa
            >>> ix = open_index(":memory:", create=True)
            >>> rep = ix.load(pa.table({"document_number": ["X1234567", "?"],
            ...     "document_type": ["P", "P"], "issuing_country": ["FRA", "FRA"],
            ...     "status": ["lost", "lost"]}))
            >>> rep.inserted, rep.rejected, rep.problems[0].field
            (1, 1, 'document_number')
        """
        import time

        start = time.perf_counter()
        src = read_source(source, format=format, mapping=mapping, required=store.MANDATORY,
                          optional=store.OPTIONAL, con=self.con)
        with store.transaction(self.con):
            checked = store.validate(self.con, src)
            counts = store.upsert(self.con, checked.valid, self.clock.now())
            problems = [*src.problems, *checked.problems]
            if rejects is not None:
                _write_rejects(rejects, problems)
        store.ensure_index(self.con)
        self._add_keys(checked.valid)
        return LoadReport(
            source=src.name,
            rows_read=src.table.num_rows + len(src.problems),
            inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged,
            rejected=len({p.row for p in problems}),
            problems=tuple(problems),
            rejects_path=os.fspath(rejects) if rejects is not None else None,
            seconds=time.perf_counter() - start,
        )

    def upsert(self, records: Iterable[Record]) -> LoadReport:
        """Add or update records (already validated :class:`Record` values)."""
        rows = [r.as_dict() for r in records]
        if not rows:
            raise SourceError("no records given")
        return self.load(arrow_from_rows(rows))

    def withdraw(self, number: str, doc_type: str, country: str, *,
                 reason: str | None = None) -> None:
        """Withdraw a record (the document was recovered): kept in history, no longer hit.

        Raises:
            RecordNotFound: no active record with that key.
        """
        key = (canonical_number(number), codes.doc_type_code(doc_type),
               codes.country_code(country))
        with store.transaction(self.con):
            if not store.withdraw(self.con, key, fold_number(key[0]), self.clock.now(),
                                  reason):
                raise RecordNotFound(number=key[0], doc_type=key[1], country=key[2])
        # The key set keeps the hash: a superset only costs a DuckDB lookup, never a hit.

    # --- first level ------------------------------------------------------------------

    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, searcher: str = "", officer: str = "") -> list[Hit]:
        """First-level check of one document: hits with number, type and country only.

        Args:
            number: the document number as typed or read (separators and case ignored).
            doc_type: type code or name, if known.
            country: issuing-country code, if known.
            exact_only: skip near-miss search (exact and partial hits only).
            searcher: the searching NCB's code; hit ids are bound to it, and only that NCB
                can reveal them.
            officer: who searches, for the audit trail.

        Returns:
            Hits, exact first, then partial, then near misses by descending score; at most
            :data:`MAX_HITS`. An empty list means not listed.

        Raises:
            ValidationError: the number, type or country is not acceptable.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> [(h.match.value, h.number) for h in ix.check("X1Z34567", "P", "FRA")]
            [('near', 'X1234567')]
        """
        hits = self._check(number, doc_type, country, exact_only,
                           _ncb(searcher) if searcher else "")
        return self._audited(hits, number, doc_type, country, searcher, officer)

    def _audited(self, hits: list[Hit], number: str, doc_type: str | None,
                 country: str | None, searcher: str, officer: str) -> list[Hit]:
        self.audit.record_check(self.clock.now(), officer, searcher, number, doc_type, country,
                                _summary(hits) if hits else "miss")
        return hits

    def _check(self, number: str, doc_type: str | None, country: str | None,
               exact_only: bool, searcher: str) -> list[Hit]:
        canonical = canonical_number(number)
        qtype = _doc_type(doc_type) if doc_type is not None else None
        qcountry = _country(country) if country is not None else None
        folded = fold_bytes(canonical)
        listed = key_hash_bytes(folded) in self._keys
        if exact_only and not listed:
            return []  # the hot path: most checks end here, without touching DuckDB
        folds = [folded.decode()] if listed else []
        if not exact_only:
            folds += self._near_folds(folded.decode(), qcountry)
        if not folds:
            return []
        rows = store.rows_by_folds(self.con, folds)
        return self._classify(canonical, qtype, qcountry, rows, exact_only, searcher)

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  searcher: str = "", officer: str = "") -> MRZCheck:
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
        hits = self._check(read.number, read.doc_type, read.country, exact_only,
                           _ncb(searcher) if searcher else "")
        # A near miss the number's check digit rules out is noise, not a lead.
        hits = [h for h in hits if h.match is not MatchKind.NEAR
                or read.could_be_misread(h.number)]
        return MRZCheck(read, self._audited(hits, read.number, read.doc_type, read.country,
                                            searcher, officer))

    def _near_folds(self, folded: str, country: str | None) -> list[str]:
        """Folded keys one edit away from ``folded`` that are listed (in ``country``)."""
        variants = edit1_variants(folded)
        hashes = key_hashes_from_strings(variants)
        if country is not None:
            present = self._country_keys.contains_any(country_key_hashes(hashes, country))
        else:
            present = self._keys.contains_any(hashes)
        return [variants[i] for i in np.flatnonzero(present)]

    def _classify(self, canonical: str, qtype: str | None, qcountry: str | None,
                  rows: list[tuple[int, str, str, str]], exact_only: bool,
                  searcher: str) -> list[Hit]:
        now = self.clock.now()
        hits: list[tuple[tuple[int, float, str, str, str], Hit]] = []
        for record_id, number, rtype, rcountry in rows:
            match = classify(canonical, qtype, qcountry, number, rtype, rcountry,
                             exact_only=exact_only)
            if match is None:
                continue
            kind, score, why = match
            hit = Hit(mint_hit_id(self._secret, record_id, now, searcher), number,
                      DocType(rtype), rcountry, kind, score, why)
            hits.append((rank_key(kind, score, number, rcountry, rtype), hit))
        hits.sort(key=lambda t: t[0])
        return [h for _, h in hits[:MAX_HITS]]

    # --- second level: reveal, cases, alerts, audit --------------------------------------

    @property
    def validation_window(self) -> dt.timedelta:
        """How long the owner NCB has to confirm a hit (default 60 minutes)."""
        minutes = store.get_meta(self.con, "validation_window_minutes")
        return dt.timedelta(minutes=float(minutes or workflow.DEFAULT_WINDOW_MINUTES))

    def set_validation_window(self, minutes: float) -> None:
        """Set the validation window, as national law requires (applies to new cases)."""
        if not 0 < minutes <= 7 * 24 * 60:
            raise ValidationError("must be more than 0 and at most one week (10080 minutes)",
                                  field="validation_minutes", value=minutes)
        store.set_meta(self.con, "validation_window_minutes", str(minutes))

    def reveal(self, hit_id: str, *, officer: str, searching_ncb: str) -> HitDetails:
        """Open the second-level details of a first-level hit, and the hit case.

        Revealing notifies, in the same transaction, the owner NCB (or the General
        Secretariat for an international organisation's record), the searching NCB and the
        Command and Coordination Centre, and starts the validation deadline. Revealing the
        same hit id again returns the same case and sends nothing new.

        Args:
            hit_id: from a :meth:`check` made by ``searching_ncb``.
            officer: who reveals (audited).
            searching_ncb: the NCB the hit id was issued to.

        Raises:
            HitIdError: forged, mistyped, issued to another NCB, older than the hit-id
                lifetime, or its record was withdrawn since.
            ValidationError: unknown NCB or no officer.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> hit = ix.check("X1234567", "P", "FRA", searcher="DEU")[0]
            >>> d = ix.reveal(hit.hit_id, officer="K. Weber", searching_ncb="DEU")
            >>> d.status.value, d.owner, d.deadline - d.revealed_at
            ('stolen', 'FRA', datetime.timedelta(seconds=3600))
            >>> sorted(a.recipient for a in ix.alerts())
            ['CCC', 'owner:FRA', 'searching:DEU']
        """
        ncb = workflow.ncb_code(searching_ncb, "searching_ncb")
        if not str(officer or "").strip():
            raise ValidationError("the revealing officer must be named", field="officer",
                                  value=officer)
        token = verify_hit_id(self._secret, str(hit_id), ncb)
        if token is None:
            raise HitIdError(f"hit id {hit_id!r} was not issued to NCB {ncb} by this index "
                             "(mistyped, forged, or from another searcher): check again",
                             hit_id=str(hit_id))
        now = self.clock.now()
        lifetime = dt.timedelta(minutes=workflow.DEFAULT_HIT_ID_MINUTES)
        if now - token.issued_at > lifetime:
            raise HitIdError(f"hit id {hit_id!r} is older than {lifetime} and can no longer "
                             "be revealed: check the document again", hit_id=str(hit_id))
        with self._transaction():
            record = store.record_by_id(self.con, token.record_id)
            if record is None:
                raise HitIdError(f"the record of hit id {hit_id!r} was withdrawn or changed "
                                 "since the check: check the document again",
                                 hit_id=str(hit_id))
            case, created = workflow.open_case(
                self.con, hit_id=str(hit_id), record=record, searching_ncb=ncb,
                officer=str(officer).strip(), now=now, window=self.validation_window)
            self.audit.write(now, "reveal", actor=str(officer).strip(), ncb=ncb,
                             subject=str(hit_id),
                             result=case.case_id + ("" if created else " (revealed again)"))
        return workflow.details(case, record)

    def confirm(self, case_id: str, *, by: str, reason: str | None = None) -> HitCase:
        """The owner NCB confirms the record is valid (also after the deadline, then late).

        Raises:
            CaseError: no such case, or it is already closed.
        """
        return self._decide(case_id, True, by, reason)

    def reject(self, case_id: str, *, by: str, reason: str) -> HitCase:
        """Not confirmed: the record is no longer valid, or it is not this document.

        Raises:
            CaseError: no such case, or it is already closed.
            ValidationError: no reason given.
        """
        if not str(reason or "").strip():
            raise ValidationError("a rejection needs a reason", field="reason", value=reason)
        return self._decide(case_id, False, by, reason)

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A transaction whose rollback also forgets the audit log's cached chain head."""
        return store.transaction(self.con, on_rollback=self.audit.invalidate)

    def _decide(self, case_id: str, confirmed: bool, by: str, reason: str | None) -> HitCase:
        if not str(by or "").strip():
            raise ValidationError("say who decides", field="by", value=by)
        now = self.clock.now()
        with self._transaction():
            case = workflow.decide(self.con, case_id, confirmed=confirmed, by=by,
                                   reason=reason, now=now)
            self.audit.write(now, "confirm" if confirmed else "reject", actor=by,
                             subject=case.case_id, result=f"{case.state}"
                             + (f", late by {case.late_by(now)}" if case.late_by(now) else ""))
        return case

    def cases(self, states: Sequence[str] | None = None) -> list[HitCase]:
        """Hit cases in the given states (all by default), earliest deadline first."""
        return workflow.list_cases(self.con, [str(s) for s in states] if states else None)

    def case(self, case_id: str) -> HitCase:
        """One hit case. Raises CaseError if there is none."""
        return workflow.get_case(self.con, case_id)

    def escalate_overdue(self) -> list[HitCase]:
        """Escalate every pending case whose deadline has passed (each exactly once)."""
        now = self.clock.now()
        with self._transaction():
            cases = workflow.escalate_overdue(self.con, now)
            for c in cases:
                self.audit.write(now, "escalate", subject=c.case_id,
                                 result=f"overdue by {now - c.deadline}")
        return cases

    def deliver_alerts(self, router: alerts.Router, *, limit: int = 1000
                       ) -> alerts.DeliveryReport:
        """Deliver due alerts through ``router`` (at least once; failures retried later)."""
        self.audit.flush()
        return alerts.deliver(self.con, router, self.clock.now(), limit=limit,
                              audit=self.audit)

    def alerts(self, *, case_id: str | None = None, undelivered: bool = False
               ) -> list[Alert]:
        """The outbox: every alert with its recipient, kind, case and delivery state."""
        return alerts.list_alerts(self.con, case_id=case_id, undelivered=undelivered)

    def redeliver(self, alert_ids: Sequence[str] = (), *, failed: bool = False) -> int:
        """Queue the given alerts (or every failing one) for delivery now."""
        return alerts.redeliver(self.con, self.clock.now(), alert_ids=alert_ids,
                                failed=failed)

    def verify_audit(self) -> AuditReport:
        """Recompute the audit chain; the report names the first broken entry."""
        self.audit.flush()
        return verify_audit(self.con)

    # --- bulk --------------------------------------------------------------------------

    def screen(self, source: Source, **options: Any) -> tuple[pa.Table, Any]:
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

        return screen(self, source, **options)

    # --- reporting --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts by status, type and country, history, key-set memory."""
        s = store.stats(self.con)
        s["key_set_bytes"] = self.key_set_bytes
        s["path"] = self.path
        return s


def _summary(hits: list[Hit]) -> str:
    if not hits:
        return "miss"
    kinds: dict[str, int] = {}
    for h in hits:
        kinds[h.match.value] = kinds.get(h.match.value, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in kinds.items())


def _write_rejects(path: str | os.PathLike[str], problems: list[Problem]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["row", "field", "value", "reason"])
        for p in problems:
            w.writerow([p.row, p.field, p.value, p.reason])


