"""Typed values that cross sltd's API: records, queries and first-level hits.

Everything here is a frozen dataclass or an enum. A :class:`Record` validates and
normalizes itself on construction, so a ``Record`` that exists is a valid record.
A :class:`Hit` is the first-level answer and holds nothing else: no status, dates or
owner, by construction.

Example:
    >>> r = Record("x12 345 678", "passport", "d", "Stolen")
    >>> (r.number, r.doc_type, r.country, r.status)
    ('X12345678', <DocType.PASSPORT: 'P'>, 'DEU', <Status.STOLEN: 'stolen'>)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Any

from sltd import codes
from sltd.errors import InvalidDate, ValidationError
from sltd.normalize import canonical_number


class Status(enum.StrEnum):
    """Why a document is invalid."""

    LOST = "lost"
    STOLEN = "stolen"
    STOLEN_BLANK = "stolen_blank"
    REVOKED = "revoked"


class DocType(enum.StrEnum):
    """Document types; values are sltd's codes (ICAO 9303 document codes where they exist)."""

    PASSPORT = "P"
    DIPLOMATIC_PASSPORT = "PD"
    SERVICE_PASSPORT = "PS"
    IDENTITY_CARD = "I"
    VISA = "V"
    RESIDENCE_PERMIT = "R"
    REFUGEE_TRAVEL_DOCUMENT = "T"
    OTHER = "O"


assert {t.value for t in DocType} == set(codes.DOC_TYPES)


class MatchKind(enum.StrEnum):
    """How a first-level hit matches the query.

    EXACT: number, type and country all equal. PARTIAL: number equal, type or country
    different or not given. NEAR: number differs by a likely typing or OCR error that the
    evidence supports (look-alike characters; an MRZ check digit; a matching expiry
    date). LEAD: a listed number one edit away that nothing corroborates: shown on
    request, never counted as a hit (exit codes, screening totals).
    """

    EXACT = "exact"
    PARTIAL = "partial"
    NEAR = "near"
    LEAD = "lead"

    @property
    def is_hit(self) -> bool:
        """Whether this counts as a hit (all but leads)."""
        return self is not MatchKind.LEAD


class ErrorClass(enum.StrEnum):
    """The reading error a near hit or lead supposes between the query and the record."""

    OCR_CONFUSION = "ocr_confusion"  # look-alike characters only (O/0, I/1, B/8 ...)
    SUBSTITUTION = "substitution"
    TRANSPOSITION = "transposition"
    INSERTION = "insertion"  # the query has a character the record has not
    DELETION = "deletion"  # the query lacks a character of the record


class Evidence(enum.StrEnum):
    """What supports (or weakens) a near hit or lead."""

    LOOK_ALIKE = "look_alike"  # same number up to look-alike characters
    CHECK_DIGIT_CONSISTENT = "check_digit_consistent"  # the record's number has the
    # printed MRZ check digit, which the reading failed
    EXPIRY_MATCHES = "expiry_matches"  # the document's expiry date is the record's
    EXPIRY_DIFFERS = "expiry_differs"  # the record has another expiry date
    ISSUER_USES_BOTH = "issuer_uses_both"  # look-alike characters, but the issuer's
    # listed numbers carry both where they differ: another valid number, not a misreading


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_REASON = "not a calendar date in ISO form YYYY-MM-DD"
EXPIRY_REASON = "expiry is before issue"
OWNER_REASON = "owner NCB must be given by its country code (e.g. FRA)"
PLACE_LIMIT = 200


def parse_date(value: Any, field: str) -> dt.date | None:
    """A date field: a date (or datetime), ISO text ``YYYY-MM-DD``, or None / empty.

    Raises:
        InvalidDate: anything else, naming ``field`` and the value.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    if _ISO_DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise InvalidDate(DATE_REASON, field=field, value=value)


#: Control characters refused in every text field (NUL, escapes, C1 codes); tab and line
#: breaks are white space and folded to one space. The loader's SQL uses the same class.
CONTROL_CHARACTERS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_CONTROL = re.compile(CONTROL_CHARACTERS)
#: Longest free text kept (a name, a reason): a 10 MB value is refused, not stored.
TEXT_LIMIT = 1000


def _text(value: Any, field: str, limit: int = PLACE_LIMIT) -> str | None:
    """Free text with white space folded; None when blank.

    Raises:
        ValidationError: a control character, or longer than ``limit`` characters.
    """
    if value is None:
        return None
    raw = str(value)
    bad = _CONTROL.search(raw)
    if bad:
        raise ValidationError(f"control character U+{ord(bad.group()):04X} at position "
                              f"{bad.start() + 1} is not allowed in text", field=field,
                              value=value)
    text = " ".join(raw.split())
    if len(text) > limit:
        raise ValidationError(f"longer than {limit} characters", field=field, value=value)
    return text or None


def person(value: Any, field: str) -> str:
    """A required free-text field such as the acting officer or a reason.

    Example:
        >>> person("  K.  Weber ", "officer")
        'K. Weber'

    Raises:
        ValidationError: blank, too long, or holding a control character.
    """
    text = _text(value, field, TEXT_LIMIT)
    if text is None:
        raise ValidationError("must be given (who acts, or why)", field=field, value=value)
    return text


@dataclass(frozen=True, slots=True)
class Record:
    """One SLTD record. Mandatory fields first; the rest are optional.

    Construction normalizes every field (canonical number, type and country codes, status
    enum, ISO dates) and raises a :class:`~sltd.errors.ValidationError` subclass naming the
    field and value when one is not acceptable.

    Attributes:
        number: canonical document number.
        doc_type: document type code (see :class:`DocType`).
        country: ICAO 9303 issuing-country code.
        status: lost, stolen, stolen blank or revoked.
        owner_ncb: country code of the National Central Bureau that registered the record.
        place_of_loss: where the document was lost or stolen.
        date_of_loss, date_of_issue, date_of_expiry: dates (blanks have no issue/expiry).
        review_date: when the record is reviewed: from that day (00:00 UTC) on it no
            longer hits, and ``sltd expire`` moves it to history. None: the index's
            default, the day it is added (or updated) plus its review period (10 years).
    """

    number: str
    doc_type: str
    country: str
    status: Status
    owner_ncb: str | None = None
    place_of_loss: str | None = None
    date_of_loss: dt.date | None = None
    date_of_issue: dt.date | None = None
    date_of_expiry: dt.date | None = None
    review_date: dt.date | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "number", canonical_number(self.number))
        s(self, "doc_type", DocType(codes.doc_type_code(self.doc_type)))
        s(self, "country", codes.country_code(self.country))
        s(self, "status", Status(codes.status_code(self.status)))
        if self.owner_ncb is not None and str(self.owner_ncb).strip():
            try:
                s(self, "owner_ncb", codes.country_code(self.owner_ncb))
            except ValidationError as e:
                raise type(e)(OWNER_REASON,
                              field="owner_ncb", value=self.owner_ncb) from None
        else:
            s(self, "owner_ncb", None)
        s(self, "place_of_loss", _text(self.place_of_loss, "place_of_loss"))
        for name in ("date_of_loss", "date_of_issue", "date_of_expiry", "review_date"):
            s(self, name, parse_date(getattr(self, name), name))
        if (self.date_of_issue and self.date_of_expiry
                and self.date_of_expiry < self.date_of_issue):
            raise InvalidDate(EXPIRY_REASON, field="date_of_expiry",
                              value=self.date_of_expiry)

    @property
    def key(self) -> tuple[str, str, str]:
        """The record's identity: (number, type, country)."""
        return (self.number, str(self.doc_type), self.country)

    def as_dict(self) -> dict[str, Any]:
        """The record as plain values, with the default loader column names."""
        d = dataclasses.asdict(self)
        return {
            "document_number": d.pop("number"),
            "document_type": str(d.pop("doc_type")),
            "issuing_country": d.pop("country"),
            "status": str(d.pop("status")),
            **d,
        }


@dataclass(frozen=True)
class Reading:
    """What the channel of a query says about its number, beyond the number itself.

    Attributes:
        check_digit: the number's check digit as printed in an MRZ (None: typed, or no
            digit there).
        verified: whether that digit matched the number as read.
        expiry: the document's expiry date, when known (an MRZ's whose digit matched, or
            given by the caller).
    """

    check_digit: int | None = None
    verified: bool = False
    expiry: dt.date | None = None


#: A typed number with nothing else known.
TYPED = Reading()


@dataclass(frozen=True, slots=True)
class Hit:
    """A first-level hit: what an officer may see before deciding it fits the document.

    Attributes:
        hit_id: opaque id to reveal the second-level details with.
        number, doc_type, country: the listed record's key.
        match: exact, partial, near or lead (leads only when asked for).
        score: similarity 0-100 (100 for exact and partial).
        explanation: how the listed number differs from the query, for near hits and
            leads.
        error: the reading error a near hit or lead supposes.
        evidence: what supports (or weakens) it.
    """

    hit_id: str
    number: str
    doc_type: str
    country: str
    match: MatchKind
    score: float = 100.0
    explanation: str | None = None
    error: ErrorClass | None = None
    evidence: tuple[Evidence, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``hit_id, number, type, country, match`` (+ ``score,
        explanation, error, evidence`` for near hits and leads)."""
        d: dict[str, Any] = {
            "hit_id": self.hit_id,
            "number": self.number,
            "type": str(self.doc_type),
            "country": self.country,
            "match": str(self.match),
        }
        if self.error is not None:
            d["score"] = round(self.score, 1)
            d["explanation"] = self.explanation
            d["error"] = str(self.error)
            d["evidence"] = [str(e) for e in self.evidence]
        return d


class CaseState(enum.StrEnum):
    """Where a hit case stands. ``overdue`` = deadline passed with no answer (escalated)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"
    OVERDUE = "overdue"

    @property
    def closed(self) -> bool:
        return self in (CaseState.CONFIRMED, CaseState.NOT_CONFIRMED)


#: The owner of records registered by international organisations.
GENERAL_SECRETARIAT = "GS"
#: INTERPOL's Command and Coordination Centre (24/7), told of every hit.
CCC = "CCC"


@dataclass(frozen=True, slots=True, order=True)
class ListVersion:
    """A version of the list: every committed change (a load that changed records, a
    withdrawal) makes the next one. ``0``: no change committed yet (``committed_at``
    None)."""

    version: int
    committed_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "committed_at":
                self.committed_at.isoformat() if self.committed_at else None}

    def __str__(self) -> str:
        when = f", {self.committed_at:%Y-%m-%d %H:%M} UTC" if self.committed_at else ""
        return f"list version {self.version}{when}"


#: The list before any change.
NO_VERSION = ListVersion(0)


@dataclass(frozen=True, slots=True)
class RecordVersion:
    """One version of a record in a document's history: what the list said from
    ``in_force_from`` until ``in_force_until`` (None: still in force), and what ended it
    (``ended_by``: ``updated`` or ``withdrawn``, with the withdrawal's ``reason``)."""

    number: str
    doc_type: str
    country: str
    status: Status
    owner_ncb: str | None
    place_of_loss: str | None
    date_of_loss: dt.date | None
    in_force_from: dt.datetime
    in_force_until: dt.datetime | None
    ended_by: str | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (v.isoformat() if isinstance(v, dt.date) else
                    str(v) if isinstance(v, enum.Enum) else v) for k, v in d.items()}


@dataclass(frozen=True, slots=True)
class HitDetails:
    """The second-level answer: what a reveal shows, and the case it opened.

    Attributes:
        case_id: the hit case opened by the reveal (confirm or reject it by this id).
        number, doc_type, country: the record's key.
        status: lost, stolen, stolen blank or revoked.
        owner: owner NCB code, or ``"GS"`` (General Secretariat) for an organisation's record.
        place_of_loss, date_of_loss, date_of_issue, date_of_expiry: as registered.
        revealed_at, deadline: when the reveal happened and when validation is due (UTC).
        list_version: the list version in force when the details were read.
    """

    case_id: str
    number: str
    doc_type: str
    country: str
    status: Status
    owner: str
    place_of_loss: str | None
    date_of_loss: dt.date | None
    date_of_issue: dt.date | None
    date_of_expiry: dt.date | None
    revealed_at: dt.datetime
    deadline: dt.datetime
    list_version: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (v.isoformat() if isinstance(v, dt.date) else
                    str(v) if isinstance(v, enum.Enum) else v) for k, v in d.items()}


@dataclass(frozen=True, slots=True)
class HitCase:
    """A revealed hit awaiting (or past) validation by the owner NCB.

    ``late_by`` is how long after the deadline an answer came (or, while unanswered, how
    long it is overdue at ``now``); ``time_left`` is what remains before the deadline.
    """

    case_id: str
    number: str
    doc_type: str
    country: str
    owner: str
    searching_ncb: str
    officer: str
    state: CaseState
    revealed_at: dt.datetime
    deadline: dt.datetime
    escalated_at: dt.datetime | None
    decided_at: dt.datetime | None
    decided_by: str | None
    reason: str | None
    #: The list version in force when the hit was revealed (0: revealed before sltd kept
    #: list versions).
    list_version: int = 0

    def time_left(self, now: dt.datetime) -> dt.timedelta:
        return self.deadline - now

    def late_by(self, now: dt.datetime) -> dt.timedelta | None:
        end = self.decided_at or now
        return end - self.deadline if end > self.deadline else None

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        out = {k: (v.isoformat() if isinstance(v, dt.datetime) else
                   str(v) if isinstance(v, enum.Enum) else v) for k, v in d.items()}
        late = self.late_by(now)
        out["late_by_seconds"] = int(late.total_seconds()) if late is not None else None
        out["time_left_seconds"] = (int(self.time_left(now).total_seconds())
                                    if not self.state.closed else None)
        return out


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification in the outbox (delivered at least once; dedupe on ``alert_id``)."""

    alert_id: str
    case_id: str
    kind: str
    recipient: str
    payload: dict[str, Any]
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    delivered_to: str | None
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return "delivered"
        return "retrying" if self.attempts else "queued"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in d.items()}
        d["state"] = self.state
        return d
