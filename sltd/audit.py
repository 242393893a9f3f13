"""Append-only, tamper-evident audit trail of checks, reveals, decisions and deliveries.

Entries are written in batches, one per write transaction, and chained batch by batch: a
row of ``audit_batches`` (first and last sequence number, previous hash, hash) holds the
SHA-256 of the previous batch's hash and of the batch's entries, column by column
(:func:`batch_hash`); each entry stores a 64-bit digest of its own fields
(:func:`entry_digest`) that says which entry was changed. Editing an entry breaks its
digest; deleting, inserting or renumbering entries breaks the run of sequence numbers or
a batch's range; editing an entry together with its digest breaks its batch's hash.
:func:`verify` names the first entry that was changed, deleted or inserted (in that last
case, the first entry of the batch). Entries written before schema version 3 are chained
one by one (:func:`chained_hash`); they keep verifying, and the first batch links to the
last of them. Deleting the tail of the trail together with its batches is not detectable
from the trail alone.

Checks are the hot path (an exact miss takes ~4 µs; a DuckDB insert per check would cost
~0.5 ms): a check is one append to an in-memory buffer. When the buffer holds
``buffer_size`` checks, the log's writer thread writes it, waiting for the write lock if a
load holds it: a check never writes and never waits. A batch is built column-wise (Arrow
slices and kernels; its hash from the Arrow buffers; the digests computed by DuckDB as it
inserts them), so no Python code runs per entry but the conversion of its fields (10,000
checks take ~25 ms to write, in that thread; hashing each entry in Python, in the checking
thread, took ~50 ms). A batch check (:meth:`AuditLog.record_checks`) takes one place in the
buffer with its checks as an Arrow table, so not even that conversion runs per check. Every
other write (reveal, decision, delivery) writes the buffer first, in its own transaction,
as do :meth:`AuditLog.flush` and closing. Entries of a process that is killed before a
flush are lost; reveals and decisions are never buffered (they are written in the same
transaction as the state they change).

Example:
    >>> import datetime as dt
    >>> from sltd import store
    >>> from sltd.database import Database
    >>> db = Database.open(":memory:")
    >>> with db.write() as con:
    ...     store.create_schema(con, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    >>> log = AuditLog(db)
    >>> log.record_check(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp(), "ana", "FRA",
    ...                  "X1234567", "P", "FRA", "miss")
    >>> log.flush(); verify(db.cursor())
    AuditReport(entries=1, first_broken=None, reason=None)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import operator
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd.store import one

if TYPE_CHECKING:
    from sltd.database import Database

GENESIS = "0" * 64
#: Seconds the writer thread waits before trying again after a failed write.
RETRY_SECONDS = 1.0
_TEXT_FIELDS = ("actor", "ncb", "action", "subject", "result")
_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
#: Microseconds from 0001-01-01 to 1970-01-01: the time origin of :func:`chained_hash`.
_CHAINED_ORIGIN = 62_135_683_200_000_000


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _micros(t: dt.datetime) -> int:
    """UTC microseconds since 1970 (of an aware time, or a naive one in UTC)."""
    return (_naive_utc(t) - _EPOCH) // _MICROSECOND


def chained_hash(prev_hash: str, seq: int, at: dt.datetime, actor: str | None,
                 ncb: str | None, action: str, subject: str | None, result: str | None) -> str:
    """The hash of an entry written before schema version 3: SHA-256 over the previous
    entry's hash and the fields, joined by the unit separator (``at`` in UTC microseconds
    since 0001-01-01; None as ``\\N``).

    Example:
        >>> chained_hash(GENESIS, 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "ana", "DEU",
        ...              "check", "X1234567 P FRA", "miss")[:16]
        '52b60d1beee5b024'
    """
    body = "\x1f".join((prev_hash, str(seq), str(_micros(at) + _CHAINED_ORIGIN),
                        "\\N" if actor is None else actor, "\\N" if ncb is None else ncb,
                        action, "\\N" if subject is None else subject,
                        "\\N" if result is None else result))
    return hashlib.sha256(body.encode()).hexdigest()


def entry_text(seq: int, at: dt.datetime, actor: str | None, ncb: str | None, action: str,
               subject: str | None, result: str | None) -> str:
    """An entry as the text its digest is taken of: ``seq,micros,`` (``at`` in UTC
    microseconds since 1970), then each text field as ``<length in UTF-8 bytes>:<text>``,
    or ``-`` for None, so that no two entries have the same text. DuckDB builds the same
    (``_TEXT``); this is the reference.

    Example:
        >>> entry_text(7, dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC), "ana", None,
        ...            "check", "X1 P FRA", "miss")
        '7,1000000,3:ana-5:check8:X1 P FRA4:miss'
    """
    return f"{seq},{_micros(at)}," + "".join(
        "-" if v is None else f"{len(v.encode())}:{v}"
        for v in (actor, ncb, action, subject, result))


def entry_digest(seq: int, at: dt.datetime, actor: str | None, ncb: str | None, action: str,
                 subject: str | None, result: str | None) -> int:
    """What a batched entry stores so that a changed copy of it is told apart: the first
    8 bytes of the MD5 of its :func:`entry_text`, as a little-endian unsigned number
    (DuckDB computes the same, ``_DIGEST``, for large batches and in :func:`verify`). It
    only says which entry was changed; what a forger has to break is the batch hash
    (SHA-256 of the fields).

    Example:
        >>> entry_digest(7, dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC), "ana", None,
        ...              "check", "X1 P FRA", "miss")
        10300971046436830710
    """
    text = entry_text(seq, at, actor, ncb, action, subject, result)
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "little")


Row = tuple[int, dt.datetime, str | None, str | None, str, str | None, str | None]


def batch_hash(prev_hash: str, entries: Sequence[Row]) -> str:
    """The hash of a batch: SHA-256 over the previous batch's hash (or the last chained
    entry's, or :data:`GENESIS`) and its entries ``(seq, at, actor, ncb, action, subject,
    result)``, in order, column by column: sequence numbers and times (UTC microseconds
    since 1970) as little-endian int64; each text field as the little-endian int32 byte
    lengths of its values (-1 for None), then their UTF-8 bytes. Pure Python: the
    reference of the column-wise twin that the log and :func:`verify` use.

    Example:
        >>> batch_hash(GENESIS, [(1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "ana", None,
        ...                       "check", "X1 P FRA", "miss")])[:16]
        '8cd7fa7fd2d88a6a'
    """
    h = hashlib.sha256(prev_hash.encode())
    columns = list(zip(*entries, strict=True)) or [()] * 7
    h.update(struct.pack(f"<{len(entries)}q", *columns[0]))
    h.update(struct.pack(f"<{len(entries)}q", *map(_micros, columns[1])))
    for column in columns[2:]:
        data = [b"" if v is None else v.encode() for v in column]
        h.update(struct.pack(f"<{len(entries)}i", *(
            -1 if v is None else len(d) for v, d in zip(column, data, strict=True))))
        h.update(b"".join(data))
    return h.hexdigest()


def _int64s(column: pa.ChunkedArray) -> np.ndarray:
    """An int64 or timestamp[us] column as int64."""
    if not column.num_chunks:
        return np.empty(0, np.int64)
    return np.concatenate([np.asarray(c).view(np.int64) for c in column.chunks])


def _text_parts(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The byte lengths (little-endian int32; -1 for None) and the UTF-8 bytes, one after
    the other, of a text array's values, read from its Arrow buffers."""
    nulls = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None
    if nulls is not None:
        chunk = chunk.fill_null("")  # a None contributes no bytes
    offsets = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1, chunk.offset * 4)
    lengths = np.diff(offsets).astype("<i4")
    if nulls is not None:
        lengths[nulls] = -1
    start, end = int(offsets[0]), int(offsets[-1])
    data = (np.frombuffer(chunk.buffers()[2], np.uint8, end - start, start) if end > start
            else np.empty(0, np.uint8))
    return lengths, data


#: Batches of up to this many entries are hashed by the pure-Python references and
#: written with parameters: below it, the fixed cost of each Arrow and DuckDB call exceeds
#: the work (one reveal's entry: ~1 ms instead of ~4).
_SMALL = 16


def _rows(table: pa.Table) -> list[Row]:
    return list(zip(*(table.column(name).to_pylist() for name in _COLUMNS), strict=True))


def _table_hash(prev_hash: str, table: pa.Table) -> str:
    """:func:`batch_hash` of a table of entries, from its Arrow buffers (no Python code
    per entry; the reference below :data:`_SMALL` entries)."""
    if table.num_rows <= _SMALL:
        return batch_hash(prev_hash, _rows(table))
    h = hashlib.sha256(prev_hash.encode())
    for name in ("seq", "logged_at"):
        for chunk in table.column(name).chunks:
            h.update(np.ascontiguousarray(np.asarray(chunk).view(np.int64), "<i8").data)
    for name in _TEXT_FIELDS:
        parts = [_text_parts(chunk) for chunk in table.column(name).chunks]
        for lengths, _ in parts:
            h.update(lengths.data)
        for _, data in parts:
            h.update(data.data)
    return h.hexdigest()


#: :func:`chained_hash` in SQL, over the columns of ``audit``.
_CHAINED = "sha256(concat_ws(chr(31), prev_hash, seq, epoch_us(logged_at) + {}, {}))".format(
    _CHAINED_ORIGIN, ", ".join(f"coalesce({f}, '\\N')" for f in _TEXT_FIELDS))
_COLUMNS = ("seq", "logged_at", *_TEXT_FIELDS)
#: :func:`entry_text` in SQL, over the columns of ``audit``.
_TEXT = "concat(seq, ',', epoch_us(logged_at), ',', {})".format(", ".join(
    f"coalesce(strlen({f}) || ':' || {f}, '-')" for f in _TEXT_FIELDS))
#: :func:`entry_digest` in SQL.
_DIGEST = f"(md5_number({_TEXT}) & {(1 << 64) - 1}::UHUGEINT)::UBIGINT"
_INSERT = (f"INSERT INTO audit ({', '.join(_COLUMNS)}, digest) "
           f"SELECT *, {_DIGEST} FROM _audit_batch")


def _insert_values(n: int) -> str:
    """INSERT of ``n`` entries given as parameters (row by row, digest last)."""
    row = f"({', '.join('?' * (len(_COLUMNS) + 1))})"
    return f"INSERT INTO audit ({', '.join(_COLUMNS)}, digest) VALUES {', '.join([row] * n)}"


#: The fields of a buffered check, in the order :meth:`AuditLog.record_check` keeps them.
_CHECK = ("logged_at", "officer", "ncb", "number", "doc_type", "country", "result",
          "list_version")


def with_version(result: str, version: int | None) -> str:
    """A check's audited result with the list version that answered it (its entry's
    ``result``: "miss; list version 17")."""
    return result if version is None else f"{result}; list version {version}"


def _with_versions(results: _Column, versions: _Column | pa.Scalar) -> _Column:
    """:func:`with_version` column-wise (a None version adds nothing)."""
    suffix = pc.binary_join_element_wise("list version", pc.cast(versions, pa.string()),
                                         " ")
    return pc.binary_join_element_wise(results, suffix, "; ", null_handling="skip")
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.UTC)
_NO_TEXT = pa.scalar(None, pa.string())

_Column: TypeAlias = pa.Array | pa.ChunkedArray
_Entry = tuple[dt.datetime, str | None, str | None, str, str | None, str | None]


def _from_seconds(at: float) -> dt.datetime:
    """A check's time (seconds since the epoch) as a datetime, to the microsecond (as
    :func:`_seconds` rounds it)."""
    return _EPOCH_UTC + dt.timedelta(microseconds=round(at * 1e6))


def _seconds(values: list[float]) -> pa.Array:
    """Checks' times (seconds since the epoch) as the naive UTC timestamps ``audit``
    stores, rounded to the microsecond, in NumPy."""
    micros = np.rint(np.array(values, np.float64) * 1e6).astype(np.int64)
    return pa.array(micros).cast(pa.timestamp("us"))


def _times(values: list[dt.datetime]) -> pa.Array:
    """Times (aware, as clocks give them) as the naive UTC timestamps ``audit`` stores, in
    C: Arrow reads timedeltas from the epoch ~5x faster than datetimes, on each of which
    it would call ``utcoffset()``, and subtracting the epoch (same tzinfo: no call) is one
    ``map``."""
    try:
        deltas = list(map(operator.sub, values, itertools.repeat(_EPOCH_UTC)))
    except TypeError:  # a naive time among them: taken as UTC, as elsewhere
        deltas = [_naive_utc(t) - _EPOCH for t in values]
    return pa.array(deltas, pa.duration("us")).cast(pa.int64()).cast(pa.timestamp("us"))


def _check_rows(flat: list[Any], first: int) -> list[Row]:
    """Buffered checks (their fields in one flat list) as ``audit`` rows from ``first``
    (few of them: :func:`_checks_table` for many)."""
    width = len(_CHECK)
    return [(seq, _from_seconds(at), officer or None, ncb or None, "check",
             f"{number} {doc_type} {country}", with_version(result, version))
            for seq, (at, officer, ncb, number, doc_type, country, result, version)
            in enumerate(zip(*(flat[i::width] for i in range(width)), strict=True), first)]


def _checks_table(flat: list[Any], first: int) -> pa.Table:
    """Buffered checks (their fields in one flat list) as ``audit`` rows from ``first``,
    column-wise: a column is a slice of the list, formatted by Arrow kernels."""
    n = len(flat) // len(_CHECK)
    officer, ncb, number, doc_type, country, result = (
        pa.array(flat[i::len(_CHECK)], pa.string()) for i in range(1, len(_CHECK) - 1))
    versions = pa.array(flat[len(_CHECK) - 1::len(_CHECK)], pa.int64())
    return pa.Table.from_arrays([
        pa.array(np.arange(first, first + n, dtype=np.int64)),
        _seconds(flat[0::len(_CHECK)]),
        pc.if_else(pc.equal(officer, ""), _NO_TEXT, officer),
        pc.if_else(pc.equal(ncb, ""), _NO_TEXT, ncb),
        pa.repeat("check", n),
        pc.binary_join_element_wise(number, pc.fill_null(doc_type, "None"),
                                    pc.fill_null(country, "None"), " "),
        _with_versions(result, versions),
    ], names=list(_COLUMNS))


def _batch_table(at: float, officer: str, ncb: str, numbers: _Column, doc_types: _Column,
                 countries: _Column, results: _Column, version: int | None) -> pa.Table:
    """Checks of one batch made at ``at`` (Arrow columns, one row a document) as ``audit``
    columns but ``seq``: the rows :func:`_checks_table` gives for the same checks, built
    by Arrow kernels from the columns, with no Python code per check."""
    n = len(numbers)
    def repeat(value: str) -> pa.Array:
        return pa.nulls(n, pa.string()) if not value else pa.repeat(value, n)
    return pa.Table.from_arrays([
        _seconds([at]).take(pa.array(np.zeros(n, np.int64))),
        repeat(officer), repeat(ncb), pa.repeat("check", n),
        pc.binary_join_element_wise(numbers, pc.fill_null(doc_types, "None"),
                                    pc.fill_null(countries, "None"), " "),
        _with_versions(results, pa.scalar(version, pa.int64())),
    ], names=list(_COLUMNS[1:]))


class _Batch:
    """The mark of a batch's place in the check buffer (:meth:`AuditLog.record_checks`):
    the place holds it and the batch's table where a check's time and officer would be."""


_BATCH = _Batch()


def _runs(flat: list[Any]) -> list[list[Any] | pa.Table]:
    """The buffered checks in order, as runs of single checks (flat fields) and batch
    tables."""
    width = len(_CHECK)
    marks = [i for i, at in enumerate(flat[0::width]) if at is _BATCH]
    if not marks:
        return [flat] if flat else []
    runs: list[list[Any] | pa.Table] = []
    start = 0
    for i in marks:
        if i * width > start:
            runs.append(flat[start:i * width])
        runs.append(flat[i * width + 1])
        start = (i + 1) * width
    if start < len(flat):
        runs.append(flat[start:])
    return runs


def _numbered(table: pa.Table, first: int) -> pa.Table:
    """A :func:`_batch_table` as ``audit`` rows from ``first``."""
    return table.add_column(0, "seq", pa.array(np.arange(first, first + table.num_rows,
                                                         dtype=np.int64)))


def _entries_table(entries: list[_Entry], first: int) -> pa.Table:
    """Other entries as ``audit`` rows from ``first``."""
    at, *fields = zip(*entries, strict=True)
    return pa.Table.from_arrays(
        [pa.array(np.arange(first, first + len(entries), dtype=np.int64)), _times(list(at)),
         *(pa.array(f, pa.string()) for f in fields)], names=list(_COLUMNS))


def _head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """Sequence number and hash the next batch follows: the last batch's, else the last
    chained entry's, else none."""
    row = one(con, "SELECT last_seq, hash FROM audit_batches ORDER BY last_seq DESC LIMIT 1") \
        or one(con, "SELECT seq, hash FROM audit WHERE prev_hash IS NOT NULL "
                    "ORDER BY seq DESC LIMIT 1")
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


class AuditLog:
    """Writes audit entries, in hashed batches, to the ``audit`` table of one
    :class:`Database`.

    Thread-safe. Checks are appended to a lock-free buffer (extending a list by a tuple is
    atomic) by any thread; entries are numbered and hashed only inside a write
    transaction, so the chain head has one writer at a time. A check that fills the buffer
    wakes the log's writer thread (started then), which writes all it finds there,
    waiting for the write lock if it must; the next write, :meth:`flush` or :meth:`close`
    takes what is left. A batch of up to :data:`_SMALL` entries is hashed in Python and
    inserted with parameters; a larger one is built column-wise in Arrow, hashed from its
    buffers, and DuckDB computes the digests as it inserts it.
    """

    def __init__(self, db: Database, *, buffer_size: int = 10_000, enabled: bool = True):
        self.db = db
        self.enabled = enabled
        # The fields of each buffered check, in one flat list (``+=`` of a tuple is atomic:
        # no lock; and its columns are slices of it).
        self._checks: list[Any] = []
        self._pending: list[_Entry] = []
        # Checks taken from the buffer by the write transaction under way: put back if it
        # rolls back (writes are serialized, so the next write means it committed).
        self._taken: list[Any] = []
        # Checks held by batches in the buffer beyond their one place each (a wake-up
        # estimate: only ever read to decide when to wake the writer).
        self._batched = 0
        self._taken_in = -1  # the transaction number they were taken in
        # Head of the chain (last seq, hash), read once: this log is the only writer of its
        # table (one per file per process, and the file has one process), and it is only
        # read or moved under the database's write lock.
        self._head: tuple[int, str] | None = None
        self._wake_at = buffer_size * len(_CHECK)  # list length of a full buffer
        self._full = threading.Event()  # set by a check that fills the buffer
        self._stop = threading.Event()  # set by close: the writer thread ends
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        db.on_close(self.close)

    @property
    def buffer_size(self) -> int:
        """How many checks fill the buffer (and wake the writer thread)."""
        return self._wake_at // len(_CHECK)

    def record_check(self, at: float, officer: str, ncb: str, number: str,
                     doc_type: str | None, country: str | None, result: str,
                     version: int | None = None) -> None:
        """Buffer a check made at ``at`` (seconds since the epoch: reading a clock as a
        float is 6x cheaper than as a datetime), answered from list version ``version``.
        The hot path: one append; formatted (:func:`with_version`) and hashed when
        written."""
        if self.enabled:
            checks = self._checks
            checks += (at, officer, ncb, number, doc_type, country, result, version)
            if len(checks) >= self._wake_at and not self._full.is_set():
                self._wake_writer()

    def record_checks(self, at: float, officer: str, ncb: str, numbers: _Column,
                      doc_types: _Column, countries: _Column, results: _Column,
                      version: int | None = None) -> None:
        """Buffer the checks of a batch made at ``at``, given column-wise (a document's
        number, type, country and result a row), as :meth:`record_check` would one by one
        and in their order. The batch takes one place in the buffer, as a table of its
        rows (:func:`_batch_table`), so no Python code runs per check (10,000 checks:
        ~1 ms here, ~8 ms as tuples), and it is written in its place among single checks.
        """
        if self.enabled and len(numbers):
            table = _batch_table(at, officer, ncb, numbers, doc_types, countries, results,
                                 version)
            checks = self._checks
            checks += (_BATCH, table, None, None, None, None, None, None)
            self._batched += table.num_rows - 1
            if len(checks) // len(_CHECK) + self._batched >= self.buffer_size \
                    and not self._full.is_set():
                self._wake_writer()

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
            self._checks[:0] = self._taken
        self._taken = []

    def flush(self, *, wait: bool = True) -> None:
        """Write buffered entries in their own transaction, after the write under way if
        any (so every entry recorded before the call is committed when it returns). With
        ``wait=False``, do nothing if another write is under way."""
        if not self.enabled or not self.db.write_lock.acquire(blocking=wait):
            return
        try:
            if self._checks or self._pending:
                with self.db.write(on_rollback=self.invalidate) as con:
                    self.write_pending(con)
        finally:
            self.db.write_lock.release()

    def close(self) -> None:
        """Stop the writer thread, then write what is buffered (run when the database
        closes; checks recorded after it are written by a :meth:`flush` only)."""
        self._stop.set()
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._full.set()
            thread.join()
        self.flush()

    def _wake_writer(self) -> None:
        with self._thread_lock:
            if self._stop.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_when_full, daemon=True,
                                                name=f"sltd audit writer {self.db.path}")
                self._thread.start()
        self._full.set()

    def _write_when_full(self) -> None:
        """The writer thread: write the buffer each time a check fills it, until closed.
        A failed write leaves the checks buffered; it is reported and tried again."""
        while True:
            self._full.wait()
            if self._stop.is_set():
                return
            self._full.clear()
            try:
                self.flush()
            except Exception as e:  # noqa: BLE001 - nothing to raise to; nothing is lost
                print(f"sltd: {self.db.path}: writing the audit buffer failed "
                      f"({type(e).__name__}: {e}); trying again in {RETRY_SECONDS:g} s",
                      file=sys.stderr)
                self._stop.wait(RETRY_SECONDS)

    def write_pending(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write buffered entries inside the caller's write transaction on ``con``, as one
        batch: the checks buffered so far (they happened before the write that triggers
        this), then the entries recorded for it."""
        if not self.enabled:
            return
        checks = self._checks
        taken = checks[:len(checks)]  # checks appended meanwhile stay, after these
        del checks[:len(taken)]
        if self._taken_in != self.db.transaction_no:  # a new transaction: the last committed
            self._taken, self._taken_in = [], self.db.transaction_no
        self._taken += taken
        entries = self._pending
        if not taken and not entries:
            return
        if self._head is None:
            self._head = _head(con)
        seq, prev = self._head
        runs = _runs(taken)
        self._batched = max(0, self._batched - sum(
            r.num_rows - 1 for r in runs if isinstance(r, pa.Table)))
        first = seq + 1
        numbered: list[list[Any] | pa.Table] = []
        for run in runs:
            if isinstance(run, pa.Table):
                numbered.append(_numbered(run, first))
                first += run.num_rows
            else:
                numbered.append(run)
                first += len(run) // len(_CHECK)
        last = first - 1 + len(entries)
        try:
            if last - seq <= _SMALL:
                rows: list[Row] = []
                for run in numbered:
                    rows += _rows(run) if isinstance(run, pa.Table) \
                        else _check_rows(run, seq + 1 + len(rows))
                rows += [(n, *entry) for n, entry in enumerate(entries, first)]
                sealed = batch_hash(prev, rows)
                con.execute(_insert_values(len(rows)), [
                    v for row in rows
                    for v in (row[0], _naive_utc(row[1]), *row[2:], entry_digest(*row))])
            else:
                parts, k = [], seq + 1
                for run in numbered:
                    part = run if isinstance(run, pa.Table) else _checks_table(run, k)
                    parts.append(part)
                    k += part.num_rows
                if entries:
                    parts.append(_entries_table(entries, first))
                batch = pa.concat_tables(parts)
                sealed = _table_hash(prev, batch)
                con.register("_audit_batch", batch)
                try:
                    con.execute(_INSERT)
                finally:
                    con.unregister("_audit_batch")
            con.execute("INSERT INTO audit_batches VALUES (?, ?, ?, ?)",
                        [seq + 1, last, prev, sealed])
        except BaseException:
            self._head = None  # the caller rolls back: read the head again next time
            raise
        self._head = (last, sealed)
        self._pending = []


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """Result of :func:`verify`.

    Attributes:
        entries: how many entries were checked.
        first_broken: sequence number of the first entry that was changed, deleted or
            inserted (or, when an entry was rewritten together with its digest, of the
            first entry of its batch).
        reason: what is wrong with it.
    """

    entries: int
    first_broken: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


# The first entry whose number, link or hash is wrong (checks in the order of the CASE).
_BAD_ENTRY = f"""
SELECT seq, before, problem FROM (
    SELECT seq, before, CASE
        WHEN seq = before THEN 'twice'
        WHEN seq <> coalesce(before, 0) + 1 THEN 'missing'
        WHEN prev_hash IS NULL THEN
            CASE WHEN digest IS DISTINCT FROM {_DIGEST} THEN 'content' END
        WHEN before_batched THEN 'chained after batched'
        WHEN prev_hash <> coalesce(before_hash, '{GENESIS}') THEN 'link'
        WHEN hash IS DISTINCT FROM {_CHAINED} THEN 'content'
    END AS problem
    FROM (SELECT *, lag(seq) OVER w AS before, lag(hash) OVER w AS before_hash,
                 lag(prev_hash IS NULL) OVER w AS before_batched
          FROM audit WINDOW w AS (ORDER BY seq)))
WHERE problem IS NOT NULL ORDER BY seq LIMIT 1
"""
_CHAINED_HEAD = """
SELECT count(*), max(seq) FILTER (WHERE prev_hash IS NOT NULL),
       arg_max(hash, seq) FILTER (WHERE prev_hash IS NOT NULL)
FROM audit
"""


def verify(con: duckdb.DuckDBPyConnection) -> AuditReport:
    """Recompute every entry's digest (or chained hash) and every batch's hash, and name
    the first entry that was changed, deleted or inserted.

    DuckDB checks the sequence numbers and recomputes every entry's digest or chained
    hash; the batched entries are then read once, in order, as Arrow, and each batch's
    hash is recomputed from its slice of them. ``con`` must not be inside a transaction:
    the trail is read in one, so a write that commits meanwhile is seen whole or not at
    all.

    Example:
        >>> from sltd import Record, open_index
        >>> ix = open_index(":memory:", create=True)
        >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        >>> _ = ix.check("X7654321", "P", "FRA", officer="ana")
        >>> ix.verify_audit().ok
        True
        >>> _ = ix._db.cursor().execute("UPDATE audit SET actor = 'eve' WHERE seq = 2")
        >>> ix.verify_audit()
        AuditReport(entries=2, first_broken=2, reason='content does not match its hash')
    """
    con.execute("BEGIN TRANSACTION")
    try:
        entries, chained_last, chained_hash_last = one(con, _CHAINED_HEAD)
        bad_entry = _first_bad_entry(con)
        bad_batch = _first_bad_batch(con, chained_last or 0, chained_hash_last or GENESIS)
    finally:
        con.execute("ROLLBACK")
    # An entry named by its own fault is more precise than the batch around it.
    if bad_batch is not None and (bad_entry is None or bad_batch[0] < bad_entry[0]):
        return AuditReport(entries, bad_batch[1], bad_batch[2])
    if bad_entry is not None:
        return AuditReport(entries, *bad_entry)
    return AuditReport(entries)


def _first_bad_entry(con: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    row = one(con, _BAD_ENTRY)
    if row is None:
        return None
    seq, before, problem = row
    if problem == "missing":
        missing = (before or 0) + 1
        return missing, f"entry {missing} is missing (next stored is {seq})"
    return seq, {
        "twice": f"entry {seq} is stored more than once",
        "chained after batched": "a chained entry follows batched ones",
        "link": "link to the previous entry does not match",
        "content": "content does not match its hash",
    }[problem]


def _first_bad_batch(con: duckdb.DuckDBPyConnection, after: int, prev: str
                     ) -> tuple[int, int, str] | None:
    """(last seq concerned, seq to name, reason) of the first batch that does not start
    where the one before ended, links to another hash, lacks entries or does not match
    its hash; or of the first batched entry after the last batch. Batches that follow each
    other cover every sequence number once, so no entry escapes them."""
    batches = con.execute("SELECT first_seq, last_seq, prev_hash, hash FROM audit_batches "
                          "ORDER BY first_seq").fetchall()
    end = batches[-1][1] if batches else after
    stray = one(con, "SELECT min(seq) FROM audit WHERE prev_hash IS NULL AND seq > ?", [end])[0]
    reader = con.sql(f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE prev_hash IS NULL "
                     "ORDER BY seq").to_arrow_reader(_VERIFY_ROWS)
    try:
        slices = _slices(reader, [(first, last) for first, last, _, _ in batches])
        for (first, last, prev_hash, h), entries in zip(batches, slices, strict=True):
            if first > after + 1:
                return first - 1, after + 1, f"entries {after + 1}..{first - 1} are in no batch"
            if first <= after:
                return last, first, f"batch {first}..{last} overlaps the one before (to {after})"
            if prev_hash != prev:
                return last, first, (f"link of batch {first}..{last} to the one before does "
                                     "not match")
            if entries.num_rows < last - first + 1:
                missing = first + entries.num_rows  # earlier gaps are named by the entries
                return last, missing, f"entry {missing} is missing (its batch ends at {last})"
            if _table_hash(prev_hash, entries) != h:
                return last, first, (f"entries {first}..{last} do not match their batch hash "
                                     "(an entry was rewritten with its digest, or the batch "
                                     "was)")
            after, prev = last, h
    finally:
        reader.close()
    return None if stray is None else (stray, stray, f"entry {stray} is in no batch")


#: Rows :func:`verify` reads at a time.
_VERIFY_ROWS = 100_000


def _slices(reader: pa.RecordBatchReader, ranges: list[tuple[int, int]]
            ) -> Iterator[pa.Table]:
    """For each ``(first, last)`` of ``ranges`` (in order, not overlapping), the rows of
    the stream (in ``seq`` order) with ``first <= seq <= last``, read as far as needed."""
    parts = iter(reader)
    table, seqs = pa.Table.from_batches([], reader.schema), np.empty(0, np.int64)
    for first, last in ranges:
        while not len(seqs) or seqs[-1] < last:
            part = next(parts, None)
            if part is None:
                break
            table = pa.concat_tables([table, pa.Table.from_batches([part])])
            seqs = np.concatenate([seqs, _int64s(pa.chunked_array([part.column(0)]))])
        lo, hi = (int(i) for i in np.searchsorted(seqs, [first, last + 1]))
        yield table.slice(lo, hi - lo)
        table, seqs = table.slice(hi), seqs[hi:]
