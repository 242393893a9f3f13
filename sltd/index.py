"""The Index: the public face of one index file, a thin facade over the modules that do
the work (like ``httpx.Client`` over its transports): :mod:`~sltd.database` owns the file,
:mod:`~sltd.keyset` holds the published key sets, :mod:`~sltd.search` answers the first
level, :mod:`~sltd.loader` loads, :mod:`~sltd.workflow` reveals and decides,
:mod:`~sltd.alerts` delivers, :mod:`~sltd.audit` chains, :mod:`~sltd.screen` screens.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa

from sltd import access, alerts, codes, loader, store, workflow
from sltd.audit import AuditLog, AuditReport
from sltd.audit import verify as verify_audit
from sltd.clock import Clock, SystemClock, timestamp_of
from sltd.database import Database
from sltd.errors import (
    IndexStateError,
    InvalidDate,
    RecordNotFound,
    SealedReplicaError,
    SourceError,
    ValidationError,
)
from sltd.keyset import Keys, KeySnapshot, key_file_path
from sltd.loader import LoadProgress, LoadReport
from sltd.model import (
    DATE_REASON,
    TYPED,
    Alert,
    ErrorClass,
    Evidence,
    Hit,
    HitCase,
    HitDetails,
    ListVersion,
    MatchKind,
    Reading,
    Record,
    RecordVersion,
    Status,
    parse_date,
)
from sltd.mrz import MRZCheck, parse_mrz
from sltd.normalize import canonical_number, fold_number
from sltd.search import HitIds, Search
from sltd.sources import Source, arrow_from_rows

_ncb = functools.lru_cache(maxsize=1024)(workflow.ncb_code)


def default_db_path() -> str:
    """``$SLTD_DB`` if set, else ``./sltd.duckdb``."""
    return os.environ.get("SLTD_DB") or "sltd.duckdb"


def open_index(path: str | os.PathLike[str] | None = None, *, create: bool = False,
               clock: Clock | None = None, read_only: bool = False,
               wait: float | None = None, progress: Callable[[str], None] | None = None
               ) -> Index:
    """Open the index at ``path`` (default :func:`default_db_path`; ``":memory:"`` for a
    throw-away one). ``create`` makes it if missing; ``clock`` injects time (default UTC
    system clock); ``read_only`` allows no writes and audits no checks; ``wait`` is how
    long to wait while another process holds the file (default 5 s, ``$SLTD_WAIT``).
    A file made by an older sltd is migrated by a writable open, atomically (``progress``
    is told each step); a read-only open refuses it.

    Raises:
        IndexStateError: missing (without ``create``), not an index, another schema;
            IndexBusy: held by another process for longer than ``wait``.
    """
    return Index(path if path is not None else default_db_path(), create=create,
                 clock=clock, read_only=read_only, wait=wait, progress=progress)


class _Shared:
    """What every Index on one file in this process shares: key sets, audit chain, hit-id
    secret, home NCB."""

    def __init__(self, db: Database):
        self.keys = Keys(db.cursor, key_file_path(db.path))
        self.audit = AuditLog(db, enabled=not db.read_only)
        self.hit_ids = HitIds(bytes.fromhex(store.get_meta(db.cursor(), "hit_secret") or ""))
        self.search = Search(self.keys, self.hit_ids)
        self.home_ncb = store.get_meta(db.cursor(), "home_ncb") or ""
        #: The feed this index is a replica of (:mod:`sltd.feed`), if it is one.
        self.replica_of = store.get_meta(db.cursor(), "replica_feed_id")
        db.on_close(self.audit.flush)


class Index:
    """A stolen and lost travel documents index: load, check, reveal, withdraw, screen.

    Use :func:`open_index`. Safe to share between threads; opening the same file twice in
    one process gives two facades over one shared state.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False,
                 clock: Clock | None = None, read_only: bool = False,
                 wait: float | None = None, progress: Callable[[str], None] | None = None):
        self.path = os.fspath(path)
        #: The schema version this open migrated the file from (None: it was current).
        self.migrated_from: int | None = None
        self.clock = clock or SystemClock()
        self._read_only = read_only
        self._db = Database.open(self.path, create=create, read_only=read_only, wait=wait)
        try:
            if self._db.read_only:
                store.check_schema(self._db.cursor(), self.path)
            else:
                with self._db.write_lock:  # DDL in autocommit: an index build commits fast
                    if create and store.is_empty(self._db.writer):
                        store.create_schema(self._db.writer, self.clock.now())
                    self.migrated_from = store.migrate(self._db.writer, self.path, progress)
            if store.get_meta(self._db.cursor(), "sealed_feed_id"):
                raise SealedReplicaError(
                    f"{self.path} is a sealed replica: it answers checks (sltd check) and "
                    "syncs (sltd sync), from numbers it does not hold in plaintext; open "
                    "it with sltd.sealed.open_sealed", path=self.path)
            self._s = self._db.shared("index", lambda: _Shared(self._db))
        except BaseException:
            self._db.release()
            raise
        self._closed = False
        #: The snapshot a pinned view (:meth:`pin`) answers from; None: the current one.
        self._pin: KeySnapshot | None = None
        #: The list version a replay view (:meth:`replay`) answers as of; None: not one.
        self._replaying: int | None = None
        #: A replay's records whose review date had come (None: the clock's, live).
        self._lapsed: Callable[[float], frozenset[int]] | None = None


    def close(self) -> None:
        """Write buffered audit entries and let go of the file (the last user closes it)."""
        if not self._closed:
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

    def _writable(self) -> Database:
        if self._read_only:
            raise IndexStateError(f"{self.path} was opened read-only: no writes through it",
                                  path=self.path)
        return self._db

    def __len__(self) -> int:
        row = store.one(self._db.cursor(), "SELECT count(*) FROM records")
        return int(row[0]) if row else 0

    @property
    def clock(self) -> Clock:
        """Where this index's times come from (injected: tests drive it)."""
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock
        self._timestamp = timestamp_of(clock)  # what checks read: seconds, no datetime

    @property
    def key_set_bytes(self) -> int:
        """Memory held by the in-memory key sets and their probe filters."""
        return self._s.keys.snapshot().nbytes


    @property
    def home_ncb(self) -> str | None:
        """The NCB this index belongs to: the searching NCB of checks that name none."""
        return self._s.home_ncb or None

    def set_home_ncb(self, ncb: str, *, officer: str = "") -> None:
        """Record the NCB this index belongs to (audited)."""
        code = _ncb(ncb, "ncb")
        self._setting("home_ncb", code, officer)
        self._s.home_ncb = code

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
        with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
            old = store.get_meta(con, key)
            if old != value:
                store.set_meta(con, key, value)
                self._s.audit.write(con, now, "setting", actor=officer or None, subject=key,
                                    result=f"{old or '(unset)'} -> {value}")


    def load(self, source: Source, *, format: str | None = None,
             mapping: Mapping[str, str] | None = None,
             rejects: str | os.PathLike[str] | None = None, officer: str = "",
             batch_rows: int = loader.BATCH_ROWS,
             progress: Callable[[LoadProgress], None] | None = None) -> LoadReport:
        """Load records from CSV, Parquet, JSON Lines or an Arrow table, in one transaction.

        Valid rows are inserted or replace the record of the same key (the old version goes
        to history); identical rows change nothing, so reloading is idempotent. Invalid
        rows are left out and reported (row, field, value, reason) in the report and in
        ``rejects`` if given (written even when empty; never the source). Audited as
        ``officer``'s. If anything fails, the index is as it was. Checks go on meanwhile.
        ``mapping``: sltd column -> source column; ``format``: by default from the name.
        The source is read ``batch_rows`` rows at a time (memory follows that, not the
        file's size); ``progress`` hears a :class:`LoadProgress` after each batch and as
        the load applies its rows and indexes them.

        Raises:
            SourceError: unreadable source, a mandatory column missing, ``rejects`` = source.
        """
        self._own_list()
        return loader.load(self._writable(), self._s.audit, self._s.keys, source, format=format,
                           mapping=mapping, rejects=rejects, officer=officer,
                           now=self.clock.now(), ncb=self.home_ncb, batch_rows=batch_rows,
                           progress=progress)

    def expire(self, *, officer: str = "") -> int:
        """Move every record whose review date has come (:attr:`Record.review_date`) to
        history, as one change of the list (a list version), audited; how many. Such a
        record stopped hitting at its review date already: this removes it from the
        list the service, screening and feeds read.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen",
            ...                       review_date="2020-01-01")])
            >>> ix.check("X1234567"), ix.expire(), len(ix)
            ([], 1, 0)
        """
        self._own_list()
        now, db = self.clock.now(), self._writable()
        with db.write_lock:
            with db.write(on_rollback=self._s.audit.invalidate) as con:
                making = store.next_version(con)
                gone = store.expire(con, now.astimezone(dt.UTC).date(), now, making)
                if not gone.num_rows:
                    return 0
                version = store.new_version(con, now, "expire", officer, gone.num_rows,
                                            making)
                self._s.audit.write(con, now, "expire", actor=officer or None,
                                    ncb=self.home_ncb, subject=f"{gone.num_rows} records",
                                    result=f"review date reached; list version "
                                           f"{version.version}")
            self._s.keys.reviews_changed(now.timestamp())
            self._s.keys.withdraw(gone.column("record_id").to_pylist(), version, gone)
        return gone.num_rows

    @property
    def review_years(self) -> int:
        """Years from a record's entry or update to its review date, unless it gives one."""
        return store.review_years(self._db.cursor())

    def set_review_years(self, years: int, *, officer: str = "") -> None:
        """Set the review period of records added or updated from now on (audited)."""
        if not 1 <= int(years) <= 100:
            raise ValidationError("the review period is 1 to 100 years",
                                  field="review_years", value=years)
        self._setting("review_years", str(int(years)), officer)

    def _own_list(self) -> None:
        if self._s.replica_of:
            raise IndexStateError(
                f"{self.path} is a replica of feed {self._s.replica_of}: its list changes "
                "only through the feed (sltd sync)", path=self.path)

    @property
    def replica_of(self) -> str | None:
        """The id of the feed this index is a replica of (:mod:`sltd.feed`), or None."""
        return self._s.replica_of

    def upsert(self, records: Iterable[Record], *, officer: str = "") -> LoadReport:
        """Add or update records (already validated :class:`Record` values)."""
        rows = [r.as_dict() for r in records]
        if not rows:
            raise SourceError("no records given")
        return self.load(arrow_from_rows(rows), officer=officer)

    def withdraw(self, number: str, doc_type: str, country: str, *,
                 reason: str | None = None, officer: str = "") -> None:
        """Withdraw a record (document recovered): kept in history, no longer hit; audited.
        Raises RecordNotFound if no active record has that key."""
        self._own_list()
        key = (canonical_number(number), codes.doc_type_code(doc_type),
               codes.country_code(country))
        now, db = self.clock.now(), self._writable()
        fold = fold_number(key[0])
        with db.write_lock:  # commit and publish in one hold: publication in commit order
            # the key file finds the record (every change is published under this lock)
            ids = [r[0] for r in self._s.keys.snapshot().lookup(fold.encode("ascii"))
                   if r[1:] == key]
            with db.write(on_rollback=self._s.audit.invalidate) as con:
                making = store.next_version(con)
                if not ids or not store.withdraw(con, ids[0], key, now, reason, making):
                    raise RecordNotFound(number=key[0], doc_type=key[1], country=key[2])
                record_id = ids[0]
                version = store.new_version(con, now, "withdraw", officer, 1, making)
                self._s.audit.write(con, now, "withdraw", actor=officer or None,
                                    ncb=self.home_ncb, subject=" ".join(key),
                                    result=f"{reason or ''}; list version {version.version}"
                                    if reason else f"list version {version.version}")
            self._s.keys.withdraw([record_id], version, pa.table(  # published before we return
                {"number": [key[0]], "doc_type": [key[1]], "country": [key[2]]}))


    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, ncb: str | None = None, officer: str = "",
              expiry: dt.date | str | None = None, leads: bool = False,
              as_of: int | dt.datetime | None = None) -> list[Hit]:
        """First-level check of one document: hits with number, type and country only.

        ``number`` as typed or read (separators and case ignored); ``doc_type`` and
        ``country`` when known; ``exact_only`` skips near misses; ``ncb`` (default: the
        home NCB) is the searching NCB, the only one that can reveal the hit ids;
        ``officer`` is audited. Returns exact, then partial, then near hits by score (at
        most :data:`sltd.search.MAX_HITS`); an empty list means not listed.

        A typed number one edit away from a listed one is a *lead*, not a hit
        (:func:`sltd.search.near_tier`): returned only with ``leads`` (``match`` is
        ``lead``), and promoted to a near hit when ``expiry`` (the document's expiry
        date, ISO text or a date) equals the record's. Numbers equal up to look-alike
        characters (O/0, I/1 ...) are near hits.

        ``as_of`` (a list version, or a time: the version in force then) replays the check
        against the list as it stood then (:meth:`replay`).

        Raises:
            ValidationError: the number, type, country or NCB is not acceptable.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> [(h.match.value, h.number) for h in ix.check("X1Z34567", "P", "FRA")]
            [('near', 'X1234567')]
        """
        if as_of is not None:
            return self.replay(as_of).check(number, doc_type, country, exact_only=exact_only,
                                            ncb=ncb, officer=officer, expiry=expiry,
                                            leads=leads)
        who, at = self._searching(ncb), self._timestamp()
        reading = TYPED if expiry is None else Reading(expiry=_expiry(expiry))
        snap = self._s.keys.snapshot() if self._pin is None else self._pin
        hits = self._s.search.check(number, doc_type, country, ncb=who, now=at,
                                    exact_only=exact_only, reading=reading, leads=leads,
                                    expiries=self._expiries, snapshot=snap,
                                    lapsed=self._lapsed)
        if not self._read_only:
            if self._replaying is None:
                self._s.audit.record_check(at, officer, who, number, doc_type, country,
                                           _summary(hits), snap.version.version)
            else:
                self._audit_replay(at, officer, who, number, doc_type, country, hits)
        return hits

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  ncb: str | None = None, officer: str = "", leads: bool = False,
                  as_of: int | dt.datetime | None = None) -> MRZCheck:
        """First-level check by machine-readable zone. Check digits are verified; a failed
        one is reported in ``result.mrz.failed_checks`` and does not stop the search. When
        the number's digit matches, only look-alikes of the number can be near hits; when
        it fails, only listed numbers with the printed digit, with the MRZ's expiry date
        compared with the record's as evidence. ``as_of``: as :meth:`check`.

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
        if as_of is not None:
            return self.replay(as_of).check_mrz(mrz, exact_only=exact_only, ncb=ncb,
                                                officer=officer, leads=leads)
        read = parse_mrz(mrz)
        who, at = self._searching(ncb), self._timestamp()
        snap = self._s.keys.snapshot() if self._pin is None else self._pin
        hits = self._s.search.check_mrz(read, ncb=who, now=at, exact_only=exact_only,
                                        leads=leads, expiries=self._expiries,
                                        snapshot=snap, lapsed=self._lapsed)
        if not self._read_only:
            if self._replaying is None:
                self._s.audit.record_check(at, officer, who, read.number, read.doc_type,
                                           read.country, _summary(hits), snap.version.version)
            else:
                self._audit_replay(at, officer, who, read.number, read.doc_type,
                                   read.country, hits)
        return MRZCheck(read, hits)

    def _audit_replay(self, at: float, officer: str, who: str, number: str,
                      doc_type: str | None, country: str | None, hits: list[Hit]) -> None:
        """A replayed check's audit entry (its own write: replays are rare)."""
        with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
            self._s.audit.write(con, dt.datetime.fromtimestamp(at, dt.UTC), "replay",
                                actor=officer or None, ncb=who,
                                subject=f"{number} {doc_type} {country}",
                                result=f"as of list version {self._replaying}: "
                                       f"{_summary(hits)}")

    def _expiries(self, record_ids: Sequence[int]) -> dict[int, dt.date | None]:
        if self._replaying is not None:
            return store.expiry_dates_at(self._db.cursor(), record_ids, self._replaying)
        return store.expiry_dates(self._db.cursor(), record_ids)

    def check_many(self, documents: Sequence[tuple[str, str | None, str | None]], *,
                   exact_only: bool = False, leads: bool = False, ncb: str | None = None,
                   officer: str = "") -> list[list[Hit] | ValidationError]:
        """First-level checks of many documents (an airline's passenger list): for each
        (number, type or None, country or None), in order, what :meth:`check` answers,
        or the :class:`ValidationError` that refused it. Screened in one vectorized pass
        (:func:`sltd.screen.screen`), ~1 µs a document instead of ~4; every document's
        check is audited as a single check is. Expiry dates are not taken: a document
        with one goes through :meth:`check`.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> [r if isinstance(r, list) else "refused" for r in ix.check_many(
            ...     [("Q1234567", None, None), ("??", None, None)])]
            [[], 'refused']
        """
        hits, refused = self.check_sparse(documents, exact_only=exact_only, leads=leads,
                                          ncb=ncb, officer=officer)
        out: list[list[Hit] | ValidationError] = [[] for _ in documents]
        for i, found in hits.items():
            out[i] = found
        for i, error in refused.items():
            out[i] = error
        return out

    def check_sparse(self, documents: Sequence[tuple[str, str | None, str | None]], *,
                     exact_only: bool = False, leads: bool = False, ncb: str | None = None,
                     officer: str = ""
                     ) -> tuple[dict[int, list[Hit]], dict[int, ValidationError]]:
        """:meth:`check_many` for callers that answer a long list whose documents are
        almost all misses (the service's batch search): the hits of each document that
        has any and the refusal of each refused one, by 0-based position; a document in
        neither is a miss.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> hits, refused = ix.check_sparse([("Q1234567", None, None),
            ...                                  ("X1234567", "P", "FRA"), ("??", None, None)])
            >>> [(i, [h.match.value for h in found]) for i, found in hits.items()], list(refused)
            ([(1, ['exact'])], [2])
        """
        from sltd.screen import screen

        who, at = self._searching(ncb), self._timestamp()
        table = pa.table({"document_number": [d[0] for d in documents],
                          "document_type": pa.array([d[1] for d in documents], pa.string()),
                          "issuing_country": pa.array([d[2] for d in documents],
                                                      pa.string())})
        snap = self._s.keys.snapshot() if self._pin is None else self._pin
        found, report = screen(table, keys=snap, hit_ids=self._s.hit_ids,
                               con=self._db.cursor(), now=dt.datetime.fromtimestamp(at, dt.UTC),
                               ncb=who, exact_only=exact_only, leads=leads,
                               lapsed=self._s.keys.lapsed(at))
        hits, refused = _batch_answers(found, report.problems)
        if not self._read_only:
            self._s.audit.record_checks(
                at, officer, who, table.column(0), table.column(1), table.column(2),
                _batch_results(len(documents), hits, refused), snap.version.version)
        return hits, refused

    def _searching(self, ncb: str | None) -> str:
        return _ncb(ncb, "ncb") if ncb else self._s.home_ncb


    def pin(self) -> Pinned:
        """A view that answers every check from the list as it is now (one version), while
        loads and withdrawals go on: the answers of a request, a passenger list, a report
        all come from :attr:`Pinned.list_version`.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> view = ix.pin()
            >>> ix.withdraw("X1234567", "P", "FRA")
            >>> view.list_version.version, len(view.check("X1234567")), len(ix.check("X1234567"))
            (1, 1, 0)
        """
        view = object.__new__(Index)  # shares the state (4x cheaper than copy.copy)
        view.__dict__.update(self.__dict__)
        view._pin = self._s.keys.snapshot()
        return Pinned(view)

    def replay(self, as_of: int | dt.datetime) -> Replay:
        """A view that answers checks as the list stood at ``as_of``: a list version, or
        a time (the version in force then, and the review dates as they had come then;
        for a version: at its commit). For "was this document listed when the
        traveller crossed?": its answers equal those the checks made then got, but carry
        no hit id (a replay never opens a case nor raises an alert), and each is audited
        as a replay. Built from the version spans of the records (10M records: ~12 s
        here); reuse the view for many checks.

        Raises:
            ValidationError: ``as_of`` is a version not committed yet, or a time to come.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> ix.withdraw("X1234567", "P", "FRA", reason="recovered")
            >>> [h.match.value for h in ix.check("X1234567", "P", "FRA")]
            []
            >>> [(h.match.value, h.hit_id) for h in ix.check("X1234567", "P", "FRA", as_of=1)]
            [('exact', '')]
        """
        from sltd.keyset import Reviews, day_of, snapshot_at

        con = self._db.cursor()
        if isinstance(as_of, dt.datetime):
            if as_of.tzinfo is None:
                raise ValidationError("a time must carry its time zone (UTC)",
                                      field="as_of", value=as_of)
            if as_of > self.clock.now():
                raise ValidationError("is in the future", field="as_of",
                                      value=as_of.isoformat())
            version = store.version_at(con, as_of)
        else:
            found = store.version_of(con, as_of) if as_of >= 0 else None
            if found is None:
                raise ValidationError(
                    f"no such list version (the last is {self.list_version.version})",
                    field="as_of", value=as_of)
            version = found
        at = as_of if isinstance(as_of, dt.datetime) else version.committed_at \
            or self.clock.now()
        day = day_of(at.timestamp())
        gone = Reviews.of(store.reviews_until_at(con, dt.date(1970, 1, 1) + dt.timedelta(
            days=day), version.version), day).lapsed(day)
        view = object.__new__(Index)
        view.__dict__.update(self.__dict__)
        view._pin = snapshot_at(con, version)
        view._replaying = version.version
        view._lapsed = lambda _: gone  # as review dates stood at the replayed time
        return Replay(view)

    @property
    def list_version(self) -> ListVersion:
        """The version of the list that checks answer from now: the last committed change
        (load or withdrawal) published to this process's key structures."""
        return self._s.keys.snapshot().version

    def history(self, number: str, doc_type: str, country: str, *, officer: str = "",
                ncb: str | None = None) -> list[RecordVersion]:
        """A document's statuses over time (reported, updated, withdrawn...), oldest
        first; empty if it was never listed. Second-level information: audited.

        Example:
            >>> ix = open_index(":memory:", create=True)
            >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
            >>> ix.withdraw("X1234567", "P", "FRA", reason="recovered")
            >>> [(v.status.value, v.ended_by, v.reason) for v in
            ...  ix.history("X1234567", "P", "FRA")]
            [('stolen', 'withdrawn', 'recovered')]
        """
        key = (canonical_number(number), codes.doc_type_code(doc_type),
               codes.country_code(country))
        rows = store.history(self._db.cursor(), key)
        if not self._read_only:
            with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
                self._s.audit.write(con, self.clock.now(), "history", actor=officer or None,
                                    ncb=self._searching(ncb), subject=" ".join(key),
                                    result=f"{len(rows)} versions")
        return [RecordVersion(*key, Status(status), owner, place, loss,
                              start.replace(tzinfo=dt.UTC),
                              end.replace(tzinfo=dt.UTC) if end else None, change, reason)
                for status, owner, place, loss, start, end, change, reason in rows]

    def reveal(self, hit_id: str, *, officer: str, ncb: str | None = None) -> HitDetails:
        """Open the second-level details of a hit, and its case: in one transaction, alerts
        to the owner NCB (or General Secretariat), the searching NCB and the CCC, and the
        validation deadline. ``ncb`` (default: home NCB) must be the one the hit id was
        issued to. Revealing a hit id again returns the same case and sends nothing new.

        Raises:
            HitIdError: forged, mistyped, another NCB's, stale or from the future, or its
                record was withdrawn since.
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
            raise ValidationError("no NCB given and the index has no home NCB: give the NCB "
                                  "the hit id was issued to (--ncb), or set a home NCB with "
                                  "`sltd init --ncb CODE`", field="ncb", value="")
        return workflow.reveal(self._writable(), self._s.audit, self._s.hit_ids, hit_id,
                               officer=officer, ncb=who, now=self.clock.now(),
                               window=self.validation_window)

    def confirm(self, case_id: str, *, officer: str, reason: str | None = None) -> HitCase:
        """The owner NCB confirms the record (after the deadline: recorded as late).
        Raises CaseError if there is no such open case."""
        return workflow.decide(self._writable(), self._s.audit, case_id, confirmed=True,
                               officer=officer, reason=reason, now=self.clock.now())

    def reject(self, case_id: str, *, officer: str, reason: str) -> HitCase:
        """Not confirmed (record no longer valid, or not this document). Raises CaseError
        if there is no such open case, ValidationError without a reason."""
        return workflow.decide(self._writable(), self._s.audit, case_id, confirmed=False,
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
        return workflow.escalate(self._writable(), self._s.audit, self.clock.now())

    def deliver_alerts(self, router: alerts.Router, *, limit: int = 1000
                       ) -> alerts.DeliveryReport:
        """Deliver due alerts through ``router`` (at least once; failures retried later)."""
        return alerts.deliver(self._writable(), self._s.audit, router, self.clock.now(),
                              limit=limit)

    def alerts(self, *, case_id: str | None = None, undelivered: bool = False
               ) -> list[Alert]:
        """The outbox: every alert with its recipient, kind, case and delivery state."""
        return alerts.list_alerts(self._db.cursor(), case_id=case_id, undelivered=undelivered)

    def redeliver(self, alert_ids: Sequence[str] = (), *, failed: bool = False,
                  officer: str = "") -> int:
        """Queue the given alerts (or every failing one) for delivery now (audited)."""
        now = self.clock.now()
        with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
            n = alerts.redeliver(con, now, alert_ids=alert_ids, failed=failed)
            if n:
                self._s.audit.write(con, now, "redeliver", actor=officer or None,
                                    subject=", ".join(alert_ids) or "failed alerts",
                                    result=f"{n} queued")
        return n

    # --- API keys of the service (sltd.access) -------------------------------------------

    def add_key(self, *, ncb: str, officer: str, role: str, countries: Sequence[str] = (),
                by: str = "") -> tuple[access.ApiKey, str]:
        """Make an API key for the service; returns it and its token, shown this once
        (the index keeps its SHA-256). Audited, with ``by`` as the actor."""
        now = self.clock.now()
        with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
            key, token = access.add_key(con, ncb=ncb, officer=officer, role=role,
                                        countries=countries, now=now)
            self._s.audit.write(con, now, "key_add", actor=by or None, ncb=key.ncb,
                                subject=key.key_id, result=f"{key.role} {key.officer}")
        return key, token

    def api_keys(self) -> list[access.ApiKey]:
        """Every API key, revoked ones included (never their tokens)."""
        return access.list_keys(self._db.cursor())

    def revoke_key(self, key_id: str, *, by: str = "") -> access.ApiKey:
        """Revoke an API key (kept, revoked, for the audit trail). Audited."""
        now = self.clock.now()
        with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
            key = access.revoke_key(con, key_id, now)
            self._s.audit.write(con, now, "key_revoke", actor=by or None, ncb=key.ncb,
                                subject=key.key_id)
        return key

    def live_keys(self) -> dict[str, tuple[str, access.ApiKey]]:
        """The keys not revoked, with their tokens' hashes (:func:`sltd.access.live_keys`)."""
        return access.live_keys(self._db.cursor())

    def record_events(self, events: Sequence[tuple[dt.datetime, str, str | None, str | None,
                                                   str | None, str | None]]) -> None:
        """Write events to the audit trail now, in one transaction: each (time, action,
        actor, ncb, subject, result) (the service's refusals, gathered between rounds)."""
        if not events:
            return
        with self._writable().write(on_rollback=self._s.audit.invalidate) as con:
            for at, action, actor, ncb, subject, result in events:
                self._s.audit.write(con, at, action, actor=actor, ncb=ncb, subject=subject,
                                    result=result)

    def verify_audit(self) -> AuditReport:
        """Recompute the audit chain; the report names the first broken entry."""
        self._s.audit.flush()
        return verify_audit(self._db.cursor())


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

        now = self.clock.now()
        return screen(source, keys=self._s.keys.snapshot(), hit_ids=self._s.hit_ids,
                      con=self._db.cursor(), now=now, ncb=self._searching(ncb),
                      index_path=self.path, lapsed=self._s.keys.lapsed(now.timestamp()),
                      **options)

    def stats(self) -> dict[str, Any]:
        """Counts by status, type and country, history, key-set memory."""
        s = store.stats(self._db.cursor())
        s["key_set_bytes"] = self.key_set_bytes
        s["path"] = self.path
        s["home_ncb"] = self.home_ncb
        s["list_version"] = self.list_version.as_dict()
        s["reviews"] = store.upcoming_reviews(self._db.cursor(),
                                              self.clock.now().astimezone(dt.UTC).date())
        s["review_years"] = self.review_years
        return s


_ONE = {kind: f"{kind.value} 1" for kind in MatchKind}


def _expiry(value: dt.date | str) -> dt.date:
    """A document's expiry date given to a check (a date, or ISO text)."""
    date = parse_date(value, "date_of_expiry")
    if date is None:
        raise InvalidDate(DATE_REASON, field="date_of_expiry", value=value)
    return date


def _batch_answers(found: pa.Table, problems: Sequence[Any]
                   ) -> tuple[dict[int, list[Hit]], dict[int, ValidationError]]:
    """A screened batch's answers (0-based rows): the ranked hits of the documents with
    any, and the refusal of each refused document."""
    from sltd.search import MAX_HITS, rank_key

    refused: dict[int, ValidationError] = {}
    for p in problems:
        refused.setdefault(p.row - 1, ValidationError(p.reason, field=p.field, value=p.value))
    hits: dict[int, list[Hit]] = {}
    if found.num_rows:
        columns = [found.column(c).to_pylist() for c in (
            "row", "hit_id", "record_number", "record_type", "record_country", "match",
            "score", "explanation", "error", "evidence")]
        for row, hit_id, number, doc_type, country, match, score, why, error, evidence \
                in zip(*columns, strict=True):
            hits.setdefault(row - 1, []).append(
                Hit(hit_id, number, doc_type, country, MatchKind(match), score, why,
                    ErrorClass(error) if error else None,
                    tuple(Evidence(e) for e in (evidence or "").split(",") if e)))
        for found_hits in hits.values():
            if len(found_hits) > 1:
                found_hits.sort(key=lambda h: rank_key(h.match, h.score, h.number, h.country,
                                                       str(h.doc_type)))
                del found_hits[MAX_HITS:]
    for i in refused:  # a refused document was not checked
        hits.pop(i, None)
    return hits, refused


def _batch_results(n: int, hits: Mapping[int, list[Hit]],
                   refused: Mapping[int, ValidationError]) -> pa.Array:
    """The audit results of a batch of ``n`` documents (what :func:`_summary` gives each),
    as one Arrow column built from the few that are not misses."""
    summaries = ["miss", "refused", *(_summary(h) for h in hits.values())]
    codes = np.zeros(n, np.int32)
    codes[list(refused)] = 1
    codes[list(hits)] = np.arange(2, 2 + len(hits), dtype=np.int32)
    return pa.array(summaries, pa.string()).take(pa.array(codes))


def _summary(hits: list[Hit]) -> str:
    """A check's result as the audit stores it: "miss", or the hits by kind."""
    if not hits:
        return "miss"
    if len(hits) == 1:
        return _ONE[hits[0].match]
    kinds: dict[str, int] = {}
    for h in hits:
        kinds[h.match.value] = kinds.get(h.match.value, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in kinds.items())


class Pinned:
    """Checks answered from one version of the list (:meth:`Index.pin`): the methods and
    answers of :meth:`Index.check`, :meth:`Index.check_mrz`, :meth:`Index.check_many` and
    :meth:`Index.check_sparse`,
    audited as theirs."""

    __slots__ = ("_view",)

    def __init__(self, view: Index):
        self._view = view  # an Index whose checks read its pinned snapshot

    @property
    def list_version(self) -> ListVersion:
        """The version every answer of this view comes from."""
        assert self._view._pin is not None
        return self._view._pin.version

    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, ncb: str | None = None, officer: str = "",
              expiry: dt.date | str | None = None, leads: bool = False) -> list[Hit]:
        return self._view.check(number, doc_type, country, exact_only=exact_only, ncb=ncb,
                                officer=officer, expiry=expiry, leads=leads)

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  ncb: str | None = None, officer: str = "", leads: bool = False
                  ) -> MRZCheck:
        return self._view.check_mrz(mrz, exact_only=exact_only, ncb=ncb, officer=officer,
                                    leads=leads)

    def check_many(self, documents: Sequence[tuple[str, str | None, str | None]], *,
                   exact_only: bool = False, leads: bool = False, ncb: str | None = None,
                   officer: str = "") -> list[list[Hit] | ValidationError]:
        return self._view.check_many(documents, exact_only=exact_only, leads=leads,
                                     ncb=ncb, officer=officer)

    def check_sparse(self, documents: Sequence[tuple[str, str | None, str | None]], *,
                     exact_only: bool = False, leads: bool = False, ncb: str | None = None,
                     officer: str = ""
                     ) -> tuple[dict[int, list[Hit]], dict[int, ValidationError]]:
        return self._view.check_sparse(documents, exact_only=exact_only, leads=leads,
                                       ncb=ncb, officer=officer)


class Replay:
    """Checks answered as the list stood at one past version (:meth:`Index.replay`): the
    answers of :meth:`Index.check` and :meth:`Index.check_mrz` then, without hit ids,
    audited as replays."""

    __slots__ = ("_view",)

    def __init__(self, view: Index):
        self._view = view

    @property
    def list_version(self) -> ListVersion:
        """The version every answer of this view comes from."""
        assert self._view._pin is not None
        return self._view._pin.version

    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, ncb: str | None = None, officer: str = "",
              expiry: dt.date | str | None = None, leads: bool = False) -> list[Hit]:
        return _without_ids(self._view.check(number, doc_type, country,
                                             exact_only=exact_only, ncb=ncb, officer=officer,
                                             expiry=expiry, leads=leads))

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  ncb: str | None = None, officer: str = "", leads: bool = False
                  ) -> MRZCheck:
        found = self._view.check_mrz(mrz, exact_only=exact_only, ncb=ncb, officer=officer,
                                     leads=leads)
        return MRZCheck(found.mrz, _without_ids(found.hits))


def _without_ids(hits: list[Hit]) -> list[Hit]:
    """A replay's hits: no hit id, so nothing can be revealed from a replay."""
    return [dataclasses.replace(h, hit_id="") for h in hits]
