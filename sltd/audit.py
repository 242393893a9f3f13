"""Append-only, tamper-evident audit trail of checks, reveals, decisions and deliveries.

Each entry is chained to the one before by a SHA-256 hash over its fields and the previous
hash, so editing, deleting or reordering any stored entry breaks the chain at that entry;
:func:`verify` names the first broken one.

Checks are the hot path (a DuckDB insert per check would cost ~0.5 ms against a ~3 µs
check), so they are buffered in memory and written in batches: when the buffer fills, on
every other write (reveal, decision, delivery), on :meth:`AuditLog.flush` and on close.
Entries of a process that is killed before a flush are lost; reveals and decisions are
never buffered (they are written in the same transaction as the state they change).

Example:
    >>> import datetime as dt
    >>> from sltd import store
    >>> from sltd.database import Database
    >>> db = Database.open(":memory:")
    >>> with db.write() as con:
    ...     store.create_schema(con, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    >>> log = AuditLog(db)
    >>> log.record_check(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "ana", "FRA", "X1234567",
    ...                  "P", "FRA", "miss")
    >>> log.flush(); verify(db.cursor()).ok
    True
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from sltd.store import one

if TYPE_CHECKING:
    from sltd.database import Database

GENESIS = "0" * 64
_FIELDS = ("seq", "logged_at", "actor", "ncb", "action", "subject", "result")


def _micros(t: dt.datetime) -> int:
    """Whole microseconds of a UTC time from its fields (exact; aware or naive UTC)."""
    return ((t.toordinal() * 86400 + t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000
            + t.microsecond)


def entry_hash(prev_hash: str, seq: int, at: dt.datetime, actor: str | None,
               ncb: str | None, action: str, subject: str | None, result: str | None) -> str:
    """The chained hash of one entry: SHA-256 over the previous hash and the fields, joined
    by the unit separator (``at`` in UTC microseconds; None as ``\\N``)."""
    body = "\x1f".join((prev_hash, str(seq), str(_micros(at)),
                        "\\N" if actor is None else actor, "\\N" if ncb is None else ncb,
                        action, "\\N" if subject is None else subject,
                        "\\N" if result is None else result))
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    """Writes chained audit entries to the ``audit`` table of one :class:`Database`.

    Thread-safe. Checks are appended to a lock-free buffer (``deque.append`` is atomic)
    by any thread; entries are numbered and chained only inside a write transaction, so
    the chain head has one writer at a time. A check that fills the buffer flushes it only
    if no write is under way (it never waits behind a load); the next write or
    :meth:`flush` takes what is left.
    """

    def __init__(self, db: Database, *, buffer_size: int = 10_000, enabled: bool = True):
        self.db = db
        self.buffer_size = buffer_size
        self.enabled = enabled
        self._checks: collections.deque[tuple[dt.datetime, str, str, str, str | None,
                                              str | None, str]] = collections.deque()
        self._pending: list[tuple[dt.datetime, str | None, str | None, str, str | None,
                                  str | None]] = []
        # Checks taken from the buffer by the write transaction under way: put back if it
        # rolls back (writes are serialized, so the next write means it committed).
        self._taken: list[tuple[dt.datetime, str, str, str, str | None, str | None,
                                str]] = []
        self._taken_in = -1  # the transaction number they were taken in
        # Head of the chain (seq, hash), read once: this log is the only writer of its
        # table (one per file per process, and the file has one process), and it is only
        # read or moved under the database's write lock.
        self._head: tuple[int, str] | None = None

    def record_check(self, at: dt.datetime, officer: str, ncb: str, number: str,
                     doc_type: str | None, country: str | None, result: str) -> None:
        """Buffer a check (the hot path: a tuple append; formatted at flush)."""
        if self.enabled:
            self._checks.append((at, officer, ncb, number, doc_type, country, result))
            if len(self._checks) >= self.buffer_size:
                self.flush(wait=False)

    def record(self, at: dt.datetime, action: str, *, actor: str | None = None,
               ncb: str | None = None, subject: str | None = None,
               result: str | None = None) -> None:
        """Add an entry to the write transaction under way (written by its
        :meth:`write_pending`)."""
        if self.enabled:
            self._pending.append((at, actor, ncb, action, subject, result))

    def write(self, con: duckdb.DuckDBPyConnection, at: dt.datetime, action: str, *,
              actor: str | None = None, ncb: str | None = None, subject: str | None = None,
              result: str | None = None) -> None:
        """Write an entry now, inside the caller's write transaction on ``con`` (with the
        checks buffered so far, which happened before it)."""
        self.record(at, action, actor=actor, ncb=ncb, subject=subject, result=result)
        self.write_pending(con)

    def invalidate(self) -> None:
        """After a rollback: forget the cached chain head and the entries of the failed
        write; the checks it had taken from the buffer go back to its front."""
        self._head = None
        self._pending.clear()
        if self._taken_in == self.db.transaction_no:  # taken by the failed transaction
            self._checks.extendleft(reversed(self._taken))
        self._taken = []

    def flush(self, *, wait: bool = True) -> None:
        """Write buffered entries in their own transaction. With ``wait=False``, do
        nothing if another write is under way."""
        if not self.enabled or (not self._checks and not self._pending):
            return
        if not self.db.write_lock.acquire(blocking=wait):
            return
        try:
            with self.db.write(on_rollback=self.invalidate) as con:
                self.write_pending(con)
        finally:
            self.db.write_lock.release()

    def write_pending(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write buffered entries inside the caller's write transaction on ``con``."""
        if not self.enabled:
            return
        taken = [self._checks.popleft() for _ in range(len(self._checks))]
        if self._taken_in != self.db.transaction_no:  # a new transaction: the last committed
            self._taken, self._taken_in = [], self.db.transaction_no
        self._taken += taken
        if taken:
            # Checks buffered so far go first: they happened before the write that
            # triggers this flush.
            self._pending[:0] = [
                (at, officer or None, ncb or None, "check", f"{number} {doc_type} {country}",
                 result) for at, officer, ncb, number, doc_type, country, result in taken]
        if not self._pending:
            return
        if self._head is None:
            last = one(con, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            self._head = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        seq, prev = self._head
        first = seq + 1
        entries = self._pending
        prevs, hashes = [], []
        for at, actor, ncb, action, subject, result in entries:
            seq += 1
            prevs.append(prev)
            prev = entry_hash(prev, seq, at.astimezone(dt.UTC), actor, ncb, action, subject,
                              result)
            hashes.append(prev)
        columns = list(zip(*entries, strict=True))
        logged = pa.array(columns[0], pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        table = pa.table({
            "seq": pa.array(range(first, seq + 1), pa.int64()),
            "logged_at": logged,
            **{name: pa.array(col, pa.string())
               for name, col in zip(_FIELDS[2:], columns[1:], strict=True)},
            "prev_hash": pa.array(prevs, pa.string()),
            "hash": pa.array(hashes, pa.string()),
        })
        con.register("_audit_new", table)
        try:
            con.execute(f"INSERT INTO audit SELECT {', '.join(table.column_names)} "
                        "FROM _audit_new")
        except BaseException:
            self._head = None  # the caller rolls back: read the head again next time
            raise
        finally:
            con.unregister("_audit_new")
        self._head = (seq, prev)
        self._pending = []


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """Result of :func:`verify`.

    Attributes:
        entries: how many entries were checked.
        first_broken: sequence number of the first entry whose hash or link is wrong.
        reason: what is wrong with it.
    """

    entries: int
    first_broken: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def verify(con: duckdb.DuckDBPyConnection) -> AuditReport:
    """Recompute the chain over every stored entry; name the first broken one."""
    rows = con.execute("SELECT seq, logged_at, actor, ncb, action, subject, result, prev_hash, "
                       "hash "
                       "FROM audit ORDER BY seq").fetchall()
    prev, expected_seq = GENESIS, 1
    for seq, at, actor, ncb, action, subject, result, prev_hash, h in rows:
        if seq != expected_seq:
            return AuditReport(len(rows), expected_seq,
                               f"entry {expected_seq} is missing (next stored is {seq})")
        if prev_hash != prev:
            return AuditReport(len(rows), seq, "link to the previous entry does not match")
        if entry_hash(prev, seq, at, actor, ncb, action, subject, result) != h:
            return AuditReport(len(rows), seq, "content does not match its hash")
        prev, expected_seq = h, seq + 1
    return AuditReport(len(rows))
