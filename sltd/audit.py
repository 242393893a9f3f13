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
    >>> import duckdb, datetime as dt
    >>> from sltd import store
    >>> con = duckdb.connect()
    >>> store.create_schema(con, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    >>> log = AuditLog(con)
    >>> log.record(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "check", actor="ana", ncb="FRA",
    ...            subject="X1234567 P FRA", result="miss")
    >>> log.flush(); verify(con).ok
    True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import duckdb
import pyarrow as pa

from sltd.store import one, transaction

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
    """Writes chained audit entries to the ``audit`` table of a connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, buffer_size: int = 10_000,
                 enabled: bool = True):
        self.con = con
        self.buffer_size = buffer_size
        self.enabled = enabled
        self._pending: list[tuple[dt.datetime, str | None, str | None, str, str | None,
                                  str | None]] = []
        self._checks: list[tuple[dt.datetime, str, str, str, str | None, str | None,
                                 str]] = []
        # Head of the chain (seq, hash), read once: this log is the only writer of its
        # table in the process (one Index per file), so it stays true between writes.
        self._head: tuple[int, str] | None = None

    def record_check(self, at: dt.datetime, officer: str, ncb: str, number: str,
                     doc_type: str | None, country: str | None, result: str) -> None:
        """Buffer a check (the hot path: a tuple append; formatted at flush)."""
        if self.enabled:
            self._checks.append((at, officer, ncb, number, doc_type, country, result))
            if len(self._checks) >= self.buffer_size:
                self.flush()

    def record(self, at: dt.datetime, action: str, *, actor: str | None = None,
               ncb: str | None = None, subject: str | None = None,
               result: str | None = None) -> None:
        """Buffer an entry; it is written at the next flush (see module doc)."""
        if not self.enabled:
            return
        self._pending.append((at, actor, ncb, action, subject, result))
        if len(self._pending) >= self.buffer_size:
            self.flush()

    def write(self, at: dt.datetime, action: str, *, actor: str | None = None,
              ncb: str | None = None, subject: str | None = None,
              result: str | None = None) -> None:
        """Write an entry now, inside the caller's transaction (with any buffered ones)."""
        self._pending.append((at, actor, ncb, action, subject, result))
        self.write_pending()

    def invalidate(self) -> None:
        """Forget the cached chain head (call after a rollback that may have undone writes)."""
        self._head = None

    def flush(self) -> None:
        """Write buffered entries in their own transaction."""
        if not self._pending and not self._checks:
            return
        with transaction(self.con, on_rollback=self.invalidate):
            self.write_pending()

    def write_pending(self) -> None:
        """Write buffered entries inside the caller's transaction."""
        if self._checks:
            # Checks and other entries interleave only at flush points, so checks buffered
            # so far go first: they happened before the write that triggers this flush.
            self._pending[:0] = [
                (at, officer or None, ncb or None, "check", f"{number} {doc_type} {country}",
                 result) for at, officer, ncb, number, doc_type, country, result in self._checks]
            self._checks.clear()
        if not self._pending:
            return
        if self._head is None:
            last = one(self.con, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
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
        rows = table.column_names
        self.con.register("_audit_new", table)
        try:
            self.con.execute(f"INSERT INTO audit SELECT {', '.join(rows)} FROM _audit_new")
        except BaseException:
            self._head = None  # the caller rolls back: read the head again next time
            raise
        finally:
            self.con.unregister("_audit_new")
        self._head = (seq, prev)
        self._pending.clear()


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
