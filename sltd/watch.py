"""The alert watcher: escalate overdue cases and deliver alerts, round after round, until
told to stop (SIGINT/SIGTERM, or an event).

Each round opens the index, escalates and delivers, and lets go of the file before it
sleeps, so other ``sltd`` commands (a check, a reveal) get the file between rounds: they
wait at most one round (milliseconds), never for the watcher's lifetime. A round that
finds the file held by another process skips and tries again next round. Everything
durable lives in the index, so the watcher may be killed at any moment: a restart
escalates each overdue case once and delivers every alert at least once.

Example:
    >>> import tempfile, os
    >>> from sltd import Record, open_index
    >>> from sltd.alerts import MemorySink, Router
    >>> path = os.path.join(tempfile.mkdtemp(), "w.duckdb")
    >>> with open_index(path, create=True) as ix:
    ...     _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    ...     hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
    ...     _ = ix.reveal(hit.hit_id, officer="K. Weber", ncb="DEU")
    >>> sink = MemorySink()
    >>> rounds = run(path, Router({"*": sink}), once=True)
    >>> rounds[0].delivered, len(sink.sent)
    (3, 3)
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sltd.alerts import JsonlSink, Router
from sltd.clock import Clock
from sltd.errors import IndexBusy, SealedReplicaError
from sltd.index import open_index
from sltd.model import HitCase
from sltd.sources import refuse_overwrite


@dataclasses.dataclass(frozen=True)
class Round:
    """What one round did (``busy``: the file was held by another process; skipped)."""

    escalated: tuple[HitCase, ...] = ()
    delivered: int = 0
    failed: int = 0
    unrouted: int = 0
    busy: str | None = None


def run(path: str, router: Router, *, interval: float = 5.0, once: bool = False,
        stop: threading.Event | None = None, clock: Clock | None = None,
        wait: float | None = None, on_round: Callable[[Round], None] | None = None
        ) -> list[Round]:
    """Run rounds every ``interval`` seconds until ``stop`` is set (or one, with
    ``once``). Returns the rounds (only the last 100 are kept)."""
    for sink in router.routes.values():
        if isinstance(sink, JsonlSink):  # appending JSON to the index would destroy it
            refuse_overwrite(sink.path, [path], what="alert sink")
    stop = stop or threading.Event()
    rounds: list[Round] = []
    while True:
        try:
            with _open(path, clock, wait) as index:
                escalated = index.escalate_overdue()
                report = index.deliver_alerts(router)
            done = Round(tuple(escalated), report.delivered, report.failed, report.unrouted)
        except IndexBusy as e:
            done = Round(busy=str(e))
        rounds = [*rounds[-99:], done]
        if on_round is not None:
            on_round(done)
        if once or stop.wait(interval):
            return rounds


def _open(path: str, clock: Clock | None, wait: float | None) -> Any:
    """The index, or the sealed replica (:mod:`sltd.sealed`), whose outbox is watched."""
    try:
        return open_index(path, clock=clock, wait=wait)
    except SealedReplicaError:
        from sltd.sealed import open_sealed

        return open_sealed(path, clock=clock, wait=wait)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event,
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
                    ) -> Iterator[threading.Event]:
    """Set ``stop`` on these signals while the block runs (main thread only); the
    previous handlers come back after it."""
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
