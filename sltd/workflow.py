"""The second level: reveal a hit, open a hit case with a validation deadline, escalate
cases nobody answered in time, and record the owner NCB's answer.

Every state change commits in one transaction with its alerts (written to the outbox, see
:mod:`sltd.alerts`) and its audit entry, so a crash never leaves a case without its
alerts or an alert without its case. Deadlines are stored, never slept on: a restarted
process finds overdue cases in the table and escalates each exactly once (the escalation
is an ``UPDATE ... WHERE state = 'pending'`` in the same transaction as its alerts).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from typing import Any

import duckdb

from sltd import codes, store
from sltd.audit import AuditLog
from sltd.database import Database
from sltd.errors import CaseError, HitIdError, ValidationError
from sltd.model import (
    CCC,
    GENERAL_SECRETARIAT,
    CaseState,
    HitCase,
    HitDetails,
    Status,
    person,
)
from sltd.search import HitIds
from sltd.store import from_db, one, to_db

#: Default validation window (ICAO/INTERPOL recommendation: one hour, day or night).
DEFAULT_WINDOW_MINUTES = 60


def reveal(db: Database, audit: AuditLog, hit_ids: HitIds, hit_id: str, *, officer: str,
           ncb: str, now: dt.datetime, window: dt.timedelta,
           record_of: Callable[[duckdb.DuckDBPyConnection, int], dict[str, Any] | None]
           = store.record_by_id) -> HitDetails:
    """Open the second level of a verified hit: the case, its three alerts and the audit
    entry in one transaction (see :meth:`sltd.Index.reveal`). ``record_of`` reads the
    hit's record (a sealed replica opens its details, :mod:`sltd.sealed`)."""
    ncb = ncb_code(ncb)
    officer = person(officer, "officer")
    token = hit_ids.verify(str(hit_id), ncb, now=now)
    with db.write(on_rollback=audit.invalidate) as con:
        record = record_of(con, token.record_id)
        if record is None:
            raise HitIdError(f"the record of hit id {hit_id!r} was withdrawn or changed "
                             "since the check: check the document again",
                             hit_id=str(hit_id))
        case, created = open_case(con, hit_id=str(hit_id), record=record, searching_ncb=ncb,
                                  officer=officer, now=now, window=window)
        audit.write(con, now, "reveal", actor=officer, ncb=ncb, subject=str(hit_id),
                    result=case.case_id + ("" if created else " (revealed again)"))
    return details(case, record)


def decide(db: Database, audit: AuditLog, case_id: str, *, confirmed: bool, officer: str,
           reason: str | None, now: dt.datetime) -> HitCase:
    """Record the owner NCB's answer with its closing alerts and audit entry.

    Raises:
        CaseError: no such case, or it is already closed.
        ValidationError: no officer, or a rejection without a reason.
    """
    officer = person(officer, "officer")
    if not confirmed and not str(reason or "").strip():
        raise ValidationError("a rejection needs a reason", field="reason", value=reason)
    reason = person(reason, "reason") if reason is not None and str(reason).strip() else None
    with db.write(on_rollback=audit.invalidate) as con:
        case = _decide(con, case_id, confirmed=confirmed, officer=officer, reason=reason,
                       now=now)
        late = case.late_by(now)
        audit.write(con, now, "confirm" if confirmed else "reject", actor=officer,
                    subject=case.case_id,
                    result=f"{case.state}" + (f", late by {late}" if late else ""))
    return case


def escalate(db: Database, audit: AuditLog, now: dt.datetime) -> list[HitCase]:
    """Escalate every pending case whose deadline has passed, each exactly once, with its
    alerts and audit entries."""
    with db.write(on_rollback=audit.invalidate) as con:
        cases = escalate_overdue(con, now)
        for c in cases:
            audit.write(con, now, "escalate", subject=c.case_id,
                        result=f"overdue by {now - c.deadline}")
    return cases


def ncb_code(value: str, field: str = "ncb") -> str:
    """An NCB is named by its country's code; the General Secretariat by ``GS``."""
    if str(value).strip().upper() == GENERAL_SECRETARIAT:
        return GENERAL_SECRETARIAT
    try:
        return codes.country_code(value)
    except ValidationError:
        raise ValidationError("unknown NCB: give the country code of the National Central "
                              "Bureau (e.g. FRA), or GS for the General Secretariat",
                              field=field, value=value) from None


def owner_of(record: dict[str, Any]) -> str:
    """Who validates a hit: the General Secretariat for an international organisation's
    record, else the record's owner NCB, else the issuing country's NCB."""
    if codes.is_international_organisation(record["country"]):
        return GENERAL_SECRETARIAT
    return str(record["owner_ncb"] or record["country"])


def recipients(owner: str, searching_ncb: str) -> list[str]:
    """The three recipients of every hit alert."""
    return [f"owner:{owner}", f"searching:{searching_ncb}", CCC]


def details(case: HitCase, record: dict[str, Any]) -> HitDetails:
    """The second-level details shown for a case."""
    return HitDetails(case.case_id, record["number"], record["doc_type"], record["country"],
                      Status(record["status"]), case.owner, record["place_of_loss"],
                      record["date_of_loss"], record["date_of_issue"], record["date_of_expiry"],
                      case.revealed_at, case.deadline, case.list_version)


def open_case(con: duckdb.DuckDBPyConnection, *, hit_id: str, record: dict[str, Any],
              searching_ncb: str, officer: str, now: dt.datetime, window: dt.timedelta
              ) -> tuple[HitCase, bool]:
    """Open the case of a verified hit (or return the one this hit id already opened).

    Returns (case, created). Runs inside the caller's transaction; writes the three hit
    alerts to the outbox when the case is new.
    """
    existing = one(con, "SELECT case_id FROM hit_cases WHERE hit_id = ?", [hit_id])
    if existing:
        return get_case(con, existing[0]), False
    case_id = "c" + secrets.token_hex(6)
    owner = owner_of(record)
    deadline = now + window
    con.execute("""INSERT INTO hit_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending',
                   NULL, NULL, NULL, NULL, ?)""",
                [case_id, hit_id, record["record_id"], record["number"], record["doc_type"],
                 record["country"], owner, searching_ncb, officer, to_db(now), to_db(deadline),
                 store.current_version(con).version])
    case = get_case(con, case_id)
    _queue(con, case, "hit", now, {
        "record": {"number": record["number"], "type": record["doc_type"],
                   "country": record["country"], "status": record["status"]},
        "deadline": deadline.isoformat(),
    })
    return case, True


def escalate_overdue(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> list[HitCase]:
    """Mark every pending case past its deadline overdue and queue its escalation alerts.

    Runs inside the caller's transaction. A case is escalated at most once: only cases
    still ``pending`` are taken, and they leave that state in the same statement.
    """
    rows = con.execute("""UPDATE hit_cases SET state = 'overdue', escalated_at = ?
                          WHERE state = 'pending' AND deadline <= ? RETURNING case_id""",
                       [to_db(now), to_db(now)]).fetchall()
    cases = [get_case(con, r[0]) for r in rows]
    for case in cases:
        _queue(con, case, "escalation", now, {
            "deadline": case.deadline.isoformat(),
            "overdue_by_seconds": int((now - case.deadline).total_seconds()),
        })
    return cases


def _decide(con: duckdb.DuckDBPyConnection, case_id: str, *, confirmed: bool, officer: str,
            reason: str | None, now: dt.datetime) -> HitCase:
    """Record the owner NCB's answer (even late) and queue the closing alerts (inside the
    caller's transaction)."""
    case = get_case(con, case_id)
    if case.state.closed:
        raise CaseError(f"case {case_id} is already closed ({case.state}); a decision is "
                        "final", case_id=case_id, state=str(case.state))
    state = CaseState.CONFIRMED if confirmed else CaseState.NOT_CONFIRMED
    con.execute("""UPDATE hit_cases SET state = ?, decided_at = ?, decided_by = ?, reason = ?
                   WHERE case_id = ?""", [str(state), to_db(now), officer, reason, case_id])
    case = get_case(con, case_id)
    late = case.late_by(now)
    _queue(con, case, "closing", now, {
        "decision": str(state), "reason": reason, "decided_by": officer,
        "late_by_seconds": int(late.total_seconds()) if late else 0,
    })
    return case


def _queue(con: duckdb.DuckDBPyConnection, case: HitCase, kind: str, now: dt.datetime,
           extra: dict[str, Any]) -> None:
    values: list[Any] = []
    for recipient in recipients(case.owner, case.searching_ncb):
        alert_id = f"{case.case_id}.{kind}.{recipient.replace(':', '-')}"
        payload = {"alert_id": alert_id, "kind": kind, "recipient": recipient,
                   "case_id": case.case_id, "number": case.number, "type": case.doc_type,
                   "country": case.country, "owner": case.owner,
                   "searching_ncb": case.searching_ncb, "officer": case.officer,
                   "state": str(case.state), "at": now.isoformat(), **extra}
        values += [alert_id, case.case_id, kind, recipient, json.dumps(payload), to_db(now),
                   to_db(now)]
    # one statement for the three alerts: each INSERT costs a primary-key check (~3 ms)
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, NULL, NULL, 0, ?, NULL)"] * (len(values) // 7))
    con.execute(f"INSERT INTO outbox VALUES {rows} ON CONFLICT DO NOTHING", values)


_CASE_COLUMNS = ("case_id, number, doc_type, country, owner, searching_ncb, officer, state, "
                 "revealed_at, deadline, escalated_at, decided_at, decided_by, reason, "
                 "coalesce(list_version, 0)")


def _case(row: tuple[Any, ...]) -> HitCase:
    (case_id, number, doc_type, country, owner, searching, officer, state, revealed,
     deadline, escalated, decided, decided_by, reason, version) = row
    return HitCase(case_id, number, doc_type, country, owner, searching, officer,
                   CaseState(state), from_db(revealed), from_db(deadline),  # type: ignore[arg-type]
                   from_db(escalated), from_db(decided), decided_by, reason, int(version))


def get_case(con: duckdb.DuckDBPyConnection, case_id: str) -> HitCase:
    """The case ``case_id``.

    Raises:
        CaseError: no such case.
    """
    row = one(con, f"SELECT {_CASE_COLUMNS} FROM hit_cases WHERE case_id = ?",
              [str(case_id).strip()])
    if row is None:
        raise CaseError(f"no hit case {case_id!r}; list cases with `sltd hits`",
                        case_id=case_id)
    return _case(row)


def list_cases(con: duckdb.DuckDBPyConnection, states: list[str] | None = None
               ) -> list[HitCase]:
    """Cases in the given states (all by default), earliest deadline first."""
    if states:
        marks = ", ".join("?" * len(states))
        rows = con.execute(f"SELECT {_CASE_COLUMNS} FROM hit_cases WHERE state IN ({marks}) "
                           "ORDER BY deadline, case_id", states).fetchall()
    else:
        rows = con.execute(f"SELECT {_CASE_COLUMNS} FROM hit_cases "
                           "ORDER BY deadline, case_id").fetchall()
    return [_case(r) for r in rows]
