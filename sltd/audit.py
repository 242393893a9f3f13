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
import json

import duckdb
import pyarrow as pa

from sltd.store import from_db, one, to_db

GENESIS = "0" * 64
_FIELDS = ("seq", "logged_at", "actor", "ncb", "action", "subject", "result")


def entry_hash(prev_hash: str, seq: int, at: dt.datetime, actor: str | None,
               ncb: str | None, action: str, subject: str | None, result: str | None) -> str:
    """The chained hash of one entry (``at`` is stored as naive UTC, microseconds)."""
    body = json.dumps([prev_hash, seq, at.replace(tzinfo=None).isoformat(timespec="microseconds"),
                       actor, ncb, action, subject, result], separators=(",", ":"))
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
        # Head of the chain (seq, hash), read once: this log is the only writer of its
        # table in the process (one Index per file), so it stays true between writes.
        self._head: tuple[int, str] | None = None

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
        self._write_pending()

    def invalidate(self) -> None:
        """Forget the cached chain head (call after a rollback that may have undone writes)."""
        self._head = None

    def write_pending(self) -> None:
        """Write buffered entries inside the caller's transaction."""
        self._write_pending()

    def flush(self) -> None:
        """Write buffered entries in their own transaction."""
        if not self._pending:
            return
        self.con.execute("BEGIN")
        try:
            self._write_pending()
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            self.invalidate()
            raise

    def _write_pending(self) -> None:
        if not self._pending:
            return
        if self._head is None:
            last = one(self.con, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            self._head = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        seq, prev = self._head
        rows: dict[str, list[object]] = {k: [] for k in (*_FIELDS, "prev_hash", "hash")}
        for at, actor, ncb, action, subject, result in self._pending:
            seq += 1
            at_db = to_db(at)
            h = entry_hash(prev, seq, at_db, actor, ncb, action, subject, result)
            for k, v in zip((*_FIELDS, "prev_hash", "hash"),
                            (seq, at_db, actor, ncb, action, subject, result, prev, h),
                            strict=True):
                rows[k].append(v)
            prev = h
        table = pa.table({k: pa.array(v, pa.timestamp("us") if k == "logged_at" else
                                      (pa.int64() if k == "seq" else pa.string()))
                          for k, v in rows.items()})
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


def entries(con: duckdb.DuckDBPyConnection, *, limit: int = 100) -> list[dict[str, object]]:
    """The latest audit entries, newest first."""
    cur = con.execute("SELECT seq, logged_at, actor, ncb, action, subject, result FROM audit "
                      "ORDER BY seq DESC LIMIT ?", [limit])
    out = []
    for row in cur.fetchall():
        d = dict(zip(_FIELDS, row, strict=True))
        d["logged_at"] = from_db(d["logged_at"])  # type: ignore[arg-type]
        out.append(d)
    return out
