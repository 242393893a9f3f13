"""Every exception sltd raises on purpose.

The tree::

    SltdError                       base of everything below; catch this at a boundary
    ├── ValidationError             a value is not acceptable (carries field=, value=, row=)
    │   ├── InvalidNumber           document number empty, too long, or not alphanumeric
    │   ├── UnknownCountry          not an ICAO 9303 issuing-state code
    │   ├── UnknownDocType          not a known document type code or name
    │   ├── UnknownStatus           not lost / stolen / stolen blank / revoked
    │   ├── InvalidDate             not an ISO date (YYYY-MM-DD)
    │   └── MRZError                not a readable ICAO 9303 machine-readable zone
    ├── SourceError                 an input file or table cannot be read as asked
    │                               (missing file, unknown format, mapped column absent)
    ├── IndexStateError             the index file is missing, of another schema version,
    │   │                           or the operation does not fit its state
    │   ├── SealedReplicaError      a sealed replica opened as a plain index
    │   └── IndexBusy               another process holds the file (and kept it longer
    │                               than the wait allowed)
    ├── RecordNotFound              no active record has that number, type and country
    ├── HitIdError                  a hit id that cannot be revealed (unknown, forged,
    │                               issued to another NCB, stale, record withdrawn)
    ├── CaseError                   no such hit case, or it cannot take that decision
    ├── DeliveryError               an alert sink could not deliver (the alert stays
    │                               queued and is retried)
    ├── FeedError                   a feed unit a replica refused (bad signature or hash,
    │                               another key or feed, a gap, an older feed)
    ├── Unauthorized                the service refused the API key (HTTP 401)
    ├── AccessDenied                the key's role or countries do not allow it (403)
    └── ServiceError                another error answer of the service

Every error carries the failing objects as keyword-only attributes so that a caller can
act on them, and its message says what to do.
"""

from __future__ import annotations

from typing import Any


class SltdError(Exception):
    """Base of every exception sltd raises on purpose."""


class ValidationError(SltdError, ValueError):
    """A value given to sltd is not acceptable.

    Attributes:
        field: name of the field (e.g. ``"issuing_country"``).
        value: the value as given.
        reason: why it was refused, in plain words.
        row: 1-based row of the source it came from, when it came from a file.
    """

    def __init__(self, reason: str, *, field: str, value: Any, row: int | None = None):
        self.field = field
        self.value = value
        self.reason = reason
        self.row = row
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{where}{field}={value!r}: {reason}")


def reason_of(check: Any, value: Any) -> str:
    """The reason ``check(value)`` refuses ``value`` (its ValidationError's ``reason``).

    Bulk paths find bad values in SQL or Arrow, then ask the single-value validator why,
    so a reject reads the same whichever way the value came in.

    Example:
        >>> from sltd.codes import country_code
        >>> reason_of(country_code, "ZZZ")[:29]
        'not an ICAO 9303 issuing-stat'
    """
    try:
        check(value)
    except ValidationError as e:
        return e.reason
    return "invalid value"


class InvalidNumber(ValidationError):
    """A document number that cannot be a travel document number."""


class UnknownCountry(ValidationError):
    """An issuing country that is not an ICAO 9303 code."""


class UnknownDocType(ValidationError):
    """A document type that sltd does not know."""


class UnknownStatus(ValidationError):
    """A record status other than lost, stolen, stolen blank or revoked."""


class InvalidDate(ValidationError):
    """A date that is not an ISO calendar date."""


class MRZError(ValidationError):
    """Input that cannot be read as an ICAO 9303 MRZ (wrong shape or characters).

    A failed check digit is not an MRZError: the MRZ is still searched, and reported as
    inconsistent (see :class:`sltd.mrz.MRZ`).
    """


class SourceError(SltdError):
    """An input source cannot be read as asked.

    Attributes:
        source: the path or description of the source.
    """

    def __init__(self, message: str, *, source: Any = None):
        self.source = source
        super().__init__(message)


class IndexStateError(SltdError):
    """The index is missing, has another schema version, or is not in the state needed.

    Attributes:
        path: the database path concerned.
    """

    def __init__(self, message: str, *, path: Any = None):
        self.path = path
        super().__init__(message)


class SealedReplicaError(IndexStateError):
    """The file is a sealed replica (:mod:`sltd.sealed`), opened as a plain index: it
    answers checks, the details of its hits and its feed's sync, through
    :func:`sltd.sealed.open_sealed`."""


class IndexBusy(IndexStateError):
    """Another process holds the index file (DuckDB lets one process open it for writing),
    and kept it for longer than the caller agreed to wait.

    Attributes:
        path: the database path; pid: the process holding it.
    """

    def __init__(self, message: str, *, path: Any = None, pid: int | None = None):
        self.pid = pid
        super().__init__(message, path=path)


class RecordNotFound(SltdError, LookupError):
    """No active record with that number, type and country.

    Attributes:
        number, doc_type, country: the key that was looked for.
    """

    def __init__(self, *, number: str, doc_type: str, country: str):
        self.number = number
        self.doc_type = doc_type
        self.country = country
        super().__init__(
            f"no active record {number} / {doc_type} / {country}: check the key, "
            "or the record may already be withdrawn"
        )


class HitIdError(SltdError):
    """A hit id that cannot be revealed: unknown, forged, for another NCB, or stale.

    Attributes:
        hit_id: the id given.
    """

    def __init__(self, message: str, *, hit_id: str):
        self.hit_id = hit_id
        super().__init__(message)


class CaseError(SltdError):
    """A hit case that does not exist, or cannot take that decision (already closed).

    Attributes:
        case_id: the case concerned.
        state: its state, when it exists.
    """

    def __init__(self, message: str, *, case_id: str, state: str | None = None):
        self.case_id = case_id
        self.state = state
        super().__init__(message)


class DeliveryError(SltdError):
    """An alert sink could not deliver; the alert stays in the outbox and is retried."""


class FeedError(SltdError):
    """A replica refused its feed, or a feed cannot be published; nothing was applied.

    Attributes:
        unit: the feed unit concerned (e.g. ``v0000000057``), if any.
    """

    def __init__(self, message: str, *, unit: str | None = None):
        self.unit = unit
        super().__init__(f"{unit}: {message}" if unit else message)


class Unauthorized(SltdError):
    """The service refused the API key: missing, unknown or revoked (HTTP 401)."""


class AccessDenied(SltdError):
    """The API key's role or countries do not allow this (HTTP 403)."""


class ServiceError(SltdError):
    """The service answered with an error that has no library counterpart.

    Attributes:
        status: the HTTP status.
    """

    def __init__(self, status: int, detail: str):
        self.status = status
        super().__init__(f"{status}: {detail}")
