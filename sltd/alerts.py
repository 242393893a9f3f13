"""Alert delivery: the durable outbox, delivery sinks, routing and retries.

Alerts are written to the ``outbox`` table in the same transaction as the case change that
raises them (:mod:`sltd.workflow`), then delivered at least once by :func:`deliver`: an
alert is marked delivered only after its sink accepted it, so a crash or a receiver that
is down causes a later retry (with exponential backoff, scheduled in the table, never
slept on), never a loss. Every alert carries a stable ``alert_id`` that receivers use to
drop duplicates. A delivery failure never touches the case that raised the alert.

Sinks: :class:`JsonlSink` (append to a file), :class:`WebhookSink` (HTTP POST of JSON, with
a bounded timeout), :class:`StdoutSink`, :class:`MemorySink` (tests). A :class:`Router`
picks the sink per recipient (``owner:FRA``, ``searching:DEU``, ``CCC``).

Example:
    >>> r = Router.parse(["CCC=-", "*=alerts.jsonl"])
    >>> type(r.sink_for("CCC")).__name__, type(r.sink_for("owner:FRA")).__name__
    ('StdoutSink', 'JsonlSink')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from sltd.errors import DeliveryError, SltdError
from sltd.model import Alert
from sltd.store import from_db, to_db

if TYPE_CHECKING:
    from sltd.audit import AuditLog
    from sltd.database import Database

#: Retry delays: 5 s, 10 s, 20 s ... capped at 5 minutes.
BACKOFF_FIRST = dt.timedelta(seconds=5)
BACKOFF_MAX = dt.timedelta(minutes=5)


class Sink(Protocol):
    """Delivers one alert payload; raises on failure."""

    name: str

    def send(self, payload: dict[str, Any]) -> None: ...


class JsonlSink:
    """Appends each alert as one JSON line, flushed and fsynced before it counts."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"

    def send(self, payload: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(payload, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise DeliveryError(f"{self.path}: {e.strerror or e}") from None


class StdoutSink:
    """Prints each alert as one JSON line."""

    name = "stdout"

    def send(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
        sys.stdout.flush()


class WebhookSink:
    """POSTs each alert as JSON; any answer but 2xx, or no answer in ``timeout`` seconds, is
    a failure (retried later)."""

    def __init__(self, url: str, *, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout
        self.name = f"webhook:{url}"

    def send(self, payload: dict[str, Any]) -> None:
        # imported here: urllib.request costs every sltd command ~30 ms at start-up
        import urllib.error
        import urllib.request

        body = json.dumps(payload).encode()
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": str(payload["alert_id"])})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                if not 200 <= resp.status < 300:
                    raise DeliveryError(f"{self.url}: HTTP {resp.status}")
        except urllib.error.HTTPError as e:
            raise DeliveryError(f"{self.url}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise DeliveryError(f"{self.url}: {reason}") from None


class MemorySink:
    """Keeps payloads in a list; can be told to fail (for tests and dry runs)."""

    def __init__(self, name: str = "memory"):
        self.name = name
        self.sent: list[dict[str, Any]] = []
        self.failing = False
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> None:
        if self.failing:
            raise DeliveryError(f"{self.name}: receiver down")
        with self._lock:
            self.sent.append(payload)


def sink_from_spec(spec: str, *, timeout: float = 5.0) -> Sink:
    """``-`` or ``stdout`` -> stdout; ``http(s)://...`` -> webhook; anything else -> JSONL file."""
    spec = spec.strip()
    if spec in ("-", "stdout"):
        return StdoutSink()
    if spec.startswith(("http://", "https://")):
        return WebhookSink(spec, timeout=timeout)
    if not spec:
        raise SltdError("empty sink: give a file path, an http(s) URL or - for stdout")
    return JsonlSink(spec)


@dataclasses.dataclass
class Router:
    """Chooses a sink per recipient: an exact recipient (``owner:FRA``), a kind prefix
    (``owner``, ``searching``), ``CCC``, or ``*`` for everything else."""

    routes: dict[str, Sink]

    @classmethod
    def parse(cls, specs: Sequence[str], *, timeout: float = 5.0) -> Router:
        """From ``RECIPIENT=SINK`` strings; a bare ``SINK`` means ``*=SINK``."""
        routes: dict[str, Sink] = {}
        for spec in specs:
            key, sep, target = spec.partition("=")
            if not sep or key.startswith(("http", "/", ".")):
                key, target = "*", spec
            routes[key.strip()] = sink_from_spec(target, timeout=timeout)
        return cls(routes)

    def sink_for(self, recipient: str) -> Sink | None:
        kind = recipient.split(":", 1)[0]
        return self.routes.get(recipient) or self.routes.get(kind) or self.routes.get("*")


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    failed: int
    unrouted: int


def deliver(db: Database, audit: AuditLog, router: Router, now: dt.datetime, *,
            limit: int = 1000, batch: int = 200) -> DeliveryReport:
    """Send every alert that is due; mark each delivered only once its sink accepted it.

    Outcomes are recorded ``batch`` at a time in one transaction with their audit entries
    (a transaction per alert costs a commit each). A crash between a send and its record
    resends that alert later, with the same ``alert_id``: at least once, never lost. A
    failed alert is rescheduled with exponential backoff.
    """
    rows = db.cursor().execute("""SELECT alert_id, recipient, payload, attempts FROM outbox
                          WHERE delivered_at IS NULL AND next_attempt_at <= ?
                          ORDER BY created_at, alert_id LIMIT ?""",
                       [to_db(now), limit]).fetchall()
    delivered = failed = unrouted = 0
    outcomes: list[tuple[str, str, str | None, int]] = []
    for alert_id, recipient, payload, attempts in rows:
        sink = router.sink_for(recipient)
        if sink is None:
            unrouted += 1
            continue
        error: str | None = None
        try:
            sink.send(json.loads(payload))
            delivered += 1
        except DeliveryError as e:
            error = str(e)
            failed += 1
        outcomes.append((alert_id, sink.name, error, attempts))
        if len(outcomes) >= batch:
            _record(db, audit, outcomes, now)
            outcomes = []
    if outcomes:
        _record(db, audit, outcomes, now)
    return DeliveryReport(delivered, failed, unrouted)


def _record(db: Database, audit: AuditLog,
            outcomes: list[tuple[str, str, str | None, int]], now: dt.datetime) -> None:
    import pyarrow as pa

    table = pa.table({
        "alert_id": [o[0] for o in outcomes],
        "sink": [o[1] for o in outcomes],
        "error": pa.array([o[2] for o in outcomes], pa.string()),
        "retry_at": pa.array([to_db(now + min(BACKOFF_FIRST * (2 ** o[3]), BACKOFF_MAX))
                              for o in outcomes], pa.timestamp("us")),
    })
    with db.write(on_rollback=audit.invalidate) as con:
        con.register("_outcomes", table)
        con.execute("""UPDATE outbox SET
                attempts = outbox.attempts + 1,
                delivered_at = CASE WHEN o.error IS NULL THEN $now END,
                delivered_to = CASE WHEN o.error IS NULL THEN o.sink END,
                last_error = o.error,
                next_attempt_at = CASE WHEN o.error IS NULL THEN outbox.next_attempt_at
                                       ELSE o.retry_at END
            FROM _outcomes o WHERE outbox.alert_id = o.alert_id""", {"now": to_db(now)})
        con.unregister("_outcomes")
        for alert_id, sink_name, error, _ in outcomes:
            audit.record(now, "deliver", actor=sink_name, subject=alert_id,
                         result="delivered" if error is None else f"failed: {error}")
        audit.write_pending(con)


def list_alerts(con: duckdb.DuckDBPyConnection, *, case_id: str | None = None,
                undelivered: bool = False) -> list[Alert]:
    """Outbox entries, oldest first."""
    where, params = [], []
    if case_id:
        where.append("case_id = ?")
        params.append(case_id)
    if undelivered:
        where.append("delivered_at IS NULL")
    sql = ("SELECT alert_id, case_id, kind, recipient, payload, created_at, delivered_at, "
           "delivered_to, attempts, next_attempt_at, last_error FROM outbox"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY created_at, alert_id")
    return [Alert(a, c, k, r, json.loads(p), from_db(cr), from_db(d), to, n,  # type: ignore[arg-type]
                  from_db(nx), e)  # type: ignore[arg-type]
            for a, c, k, r, p, cr, d, to, n, nx, e in con.execute(sql, params).fetchall()]


def redeliver(con: duckdb.DuckDBPyConnection, now: dt.datetime, *,
              alert_ids: Sequence[str] = (), failed: bool = False) -> int:
    """Queue alerts again now: the given ids (even if delivered), or every failing one."""
    if alert_ids:
        marks = ", ".join("?" * len(alert_ids))
        rows = con.execute(f"""UPDATE outbox SET delivered_at = NULL, delivered_to = NULL,
                               next_attempt_at = ? WHERE alert_id IN ({marks})
                               RETURNING alert_id""", [to_db(now), *alert_ids]).fetchall()
        missing = set(alert_ids) - {r[0] for r in rows}
        if missing:
            raise SltdError(f"no alert {', '.join(sorted(missing))}; list them with "
                            "`sltd alerts`")
        return len(rows)
    if failed:
        rows = con.execute("""UPDATE outbox SET next_attempt_at = ?
                              WHERE delivered_at IS NULL AND attempts > 0
                              RETURNING alert_id""", [to_db(now)]).fetchall()
        return len(rows)
    return 0
