"""The one owner of an index file in this process: its DuckDB instance, a cursor per
thread, one writer at a time.

DuckDB lets one process write a file, and one connection object is not safe to share
between threads. So, per file and per process, there is one :class:`Database`:

- every thread reads through its own cursor (``.cursor()`` of the one connection: the
  same database instance, its own transaction), so concurrent reads never mix results;
- every write runs in :meth:`Database.write`: a lock (re-entrant, so a write may call
  another) around one transaction on a dedicated writer cursor. Writers never conflict,
  and readers are never blocked by a writer (DuckDB is MVCC: a reader sees the state
  committed when its query started);
- opening a file that this process already has open returns the same object (counted:
  the last :meth:`release` closes it), so two ``Index`` objects on one file share one key
  set and one audit chain instead of silently diverging;
- opening a file that another process holds waits a bounded time for it, then says which
  process holds it and what to do, in one line.

Example:
    >>> db = Database.open(":memory:")
    >>> with db.write() as con:
    ...     _ = con.execute("CREATE TABLE t (x INTEGER)")
    ...     _ = con.execute("INSERT INTO t VALUES (1)")
    >>> db.cursor().execute("SELECT x FROM t").fetchall()
    [(1,)]
    >>> db.release()
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from sltd.errors import IndexBusy, IndexStateError

#: Seconds a command waits for a file another process holds (``--wait``, ``$SLTD_WAIT``).
DEFAULT_WAIT = 5.0
_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
_LOCKED = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")

T = TypeVar("T")


def default_wait() -> float:
    """``$SLTD_WAIT`` seconds if set (and a number), else :data:`DEFAULT_WAIT`."""
    try:
        return max(0.0, float(os.environ.get("SLTD_WAIT", DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


class Database:
    """The DuckDB file of one index, shared by every thread and every ``Index`` of this
    process that opened it. Use :meth:`open`; :meth:`release` when done."""

    _registry: dict[str, Database] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str, con: duckdb.DuckDBPyConnection, *, read_only: bool,
                 key: str | None):
        self.path = path
        self.read_only = read_only
        self._con = con
        self._key = key
        self._refs = 1
        self._local = threading.local()
        self._cursors: dict[threading.Thread, duckdb.DuckDBPyConnection] = {}
        self._cursors_lock = threading.Lock()
        #: Held for the whole of every write transaction (and by whoever must see no
        #: write between two statements). Re-entrant: a write may call another.
        self.write_lock = threading.RLock()
        self._writer = con.cursor()
        #: Number of the write transaction under way (or last run): one writer at a time.
        self.transaction_no = 0
        self._shared: dict[str, Any] = {}
        self._shared_lock = threading.Lock()
        self._on_close: list[Callable[[], None]] = []
        self._closed = False
        _OPEN.add(self)

    # --- opening and closing ------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False,
             read_only: bool = False, wait: float | None = None) -> Database:
        """The Database of ``path`` in this process (opened now, or the one already open).

        Args:
            path: the index file, or ``":memory:"`` (a new private database every time).
            create: the file may be created (otherwise it must exist).
            read_only: open without write access. If this process already has the file
                open for writing, that instance is shared (the caller must not write).
            wait: seconds to wait while another process holds the file (default
                :func:`default_wait`).

        Raises:
            IndexStateError: no file (and not ``create``), not a DuckDB file, held by
                another process for longer than ``wait``, or already open read-only in
                this process when write access is asked for.
        """
        path = os.fspath(path)
        if path == ":memory:":
            return cls(path, _connect(path, read_only=False), read_only=False, key=None)
        _check_file(path, create=create)
        key = os.path.realpath(path)
        with cls._registry_lock:
            db = cls._registry.get(key)
            if db is not None:
                if db.read_only and not read_only:
                    raise IndexStateError(
                        f"{path} is open read-only in this process; close that index "
                        "before opening it for writing", path=path)
                db._refs += 1
                return db
            con = _connect_waiting(path, read_only=read_only,
                                   wait=default_wait() if wait is None else wait)
            db = cls(path, con, read_only=read_only, key=key)
            cls._registry[key] = db
            return db

    def release(self) -> None:
        """Drop this reference; the last one closes every cursor and the file."""
        with Database._registry_lock:
            self._refs -= 1
            if self._refs > 0 or self._closed:
                return
            self._closed = True
            if self._key is not None:
                Database._registry.pop(self._key, None)
        self._close()

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` before the file is closed (by the last release, or at exit for a
        database nobody closed): e.g. write the audit entries still buffered."""
        self._on_close.append(fn)

    def _close(self) -> None:
        for fn in self._on_close:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - closing goes on; nothing is lost silently
                print(f"sltd: {self.path}: closing: {type(e).__name__}: {e}", file=sys.stderr)
        with self._cursors_lock:
            cursors, self._cursors = list(self._cursors.values()), {}
        for cur in [*cursors, self._writer, self._con]:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        _OPEN.discard(self)

    # --- reading and writing ------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (made on first use; closed with the database, or once its
        thread has ended: a server that starts a thread per request does not pile up one
        cursor per request)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            if self._closed:
                raise IndexStateError(f"{self.path}: the index is closed", path=self.path)
            cur = self._con.cursor()
            self._local.cursor = cur
            with self._cursors_lock:
                for dead in [t for t in self._cursors if not t.is_alive()]:
                    with contextlib.suppress(duckdb.Error):
                        self._cursors.pop(dead).close()
                self._cursors[threading.current_thread()] = cur
        return cur

    @contextlib.contextmanager
    def write(self, on_rollback: Callable[[], None] | None = None
              ) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction on the writer cursor, serialized with every other write.
        A nested call joins the enclosing transaction. On an exception: ROLLBACK, then
        ``on_rollback``, then the exception goes on."""
        if self.read_only:
            raise IndexStateError(f"{self.path} is open read-only", path=self.path)
        with self.write_lock:
            if getattr(self._local, "in_write", False):
                yield self._writer
                return
            self._local.in_write = True
            try:
                self.transaction_no += 1
                self._writer.execute("BEGIN")
                try:
                    yield self._writer
                    self._writer.execute("COMMIT")
                except BaseException:
                    try:
                        with contextlib.suppress(duckdb.Error):  # e.g. after a failed COMMIT
                            self._writer.execute("ROLLBACK")
                    finally:
                        if on_rollback is not None:
                            on_rollback()
                    raise
            finally:
                self._local.in_write = False

    @property
    def writer(self) -> duckdb.DuckDBPyConnection:
        """The writer cursor, for statements that must run outside a transaction (index
        builds after a bulk load); hold :attr:`write_lock` while using it."""
        return self._writer

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """The one object called ``name`` of this file in this process (made by ``make``
        on first use): key sets, audit log, hit-id keys."""
        with self._shared_lock:
            if name not in self._shared:
                self._shared[name] = make()
            return self._shared[name]  # type: ignore[no-any-return]


_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    """Close what nobody closed, after its ``on_close`` hooks (buffered audit entries are
    written, not lost with the process)."""
    for db in list(_OPEN):
        if not db._closed:
            db._closed = True
            db._close()


def _check_file(path: str, *, create: bool) -> None:
    """Refuse a missing file (unless ``create``) and any file that is not DuckDB's: an
    operator's Parquet or CSV given as ``--db`` must never be written to."""
    p = Path(path)
    if not p.exists():
        if not create:
            raise IndexStateError(f"no index at {path}; create one with `sltd init`",
                                  path=path)
        return
    if p.is_dir():
        raise IndexStateError(f"{path} is a directory, not an index file", path=path)
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise IndexStateError(f"cannot read {path}: {e.strerror or e}", path=path) from None
    if head[8:12] != _MAGIC:
        what = "an empty file" if not head else "not a DuckDB file"
        raise IndexStateError(
            f"{path} is {what}, so not an sltd index; nothing was written to it (give "
            "--db the index file, or a new path to create one)", path=path)


def _connect(path: str, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    return con


def _connect_waiting(path: str, *, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """Connect; while another process holds the file, retry until ``wait`` seconds pass."""
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        try:
            return _connect(path, read_only=read_only)
        except duckdb.IOException as e:
            held = _LOCKED.search(str(e))
            if held is None:
                raise IndexStateError(f"cannot open {path}: {_first_line(e)}",
                                      path=path) from None
            if time.monotonic() >= deadline:
                pid = int(held.group(2))
                raise IndexBusy(
                    f"{path} is in use by process {pid} ({_command_of(pid, held.group(1))}) "
                    f"and stayed so for {wait:g} s: stop that process or wait until it is "
                    "done (--wait SECONDS waits longer)", path=path, pid=pid) from None
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)
        except duckdb.Error as e:
            raise IndexStateError(f"cannot open {path}: {_first_line(e)}",
                                  path=path) from None


def _command_of(pid: int, program: str) -> str:
    """What process ``pid`` runs, as an operator recognises it (``sltd watch ...``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return program
    words = [a.decode(errors="replace") for a in argv if a]
    for i, w in enumerate(words):
        if Path(w).name == "sltd":
            return " ".join(["sltd", *words[i + 1:]])[:80]
    return " ".join(words)[:80] or program


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
