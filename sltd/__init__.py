"""sltd: a stolen and lost travel documents matching engine (INTERPOL SLTD model).

Example:
    >>> import sltd
    >>> ix = sltd.open_index(":memory:", create=True)
    >>> _ = ix.upsert([sltd.Record("X1234567", "P", "FRA", "stolen")])
    >>> [(h.match.value, h.number) for h in ix.check("X1234567", "P", "FRA")]
    [('exact', 'X1234567')]
"""

from sltd.clock import Clock, ManualClock, SystemClock
from sltd.errors import (
    CaseError,
    DeliveryError,
    HitIdError,
    IndexBusy,
    IndexStateError,
    InvalidDate,
    InvalidNumber,
    MRZError,
    RecordNotFound,
    SltdError,
    SourceError,
    UnknownCountry,
    UnknownDocType,
    UnknownStatus,
    ValidationError,
)
from sltd.index import Index, LoadProgress, LoadReport, open_index
from sltd.model import (
    Alert,
    CaseState,
    DocType,
    Hit,
    HitCase,
    HitDetails,
    MatchKind,
    Record,
    Status,
)
from sltd.mrz import MRZ, MRZCheck, parse_mrz
from sltd.normalize import canonical_number, fold_number

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "CaseError",
    "CaseState",
    "Clock",
    "DeliveryError",
    "DocType",
    "Hit",
    "HitCase",
    "HitDetails",
    "HitIdError",
    "Index",
    "IndexBusy",
    "IndexStateError",
    "InvalidDate",
    "InvalidNumber",
    "LoadProgress",
    "LoadReport",
    "MRZ",
    "MRZCheck",
    "MRZError",
    "ManualClock",
    "MatchKind",
    "Record",
    "RecordNotFound",
    "SltdError",
    "SourceError",
    "Status",
    "SystemClock",
    "UnknownCountry",
    "UnknownDocType",
    "UnknownStatus",
    "ValidationError",
    "canonical_number",
    "fold_number",
    "open_index",
    "parse_mrz",
]
