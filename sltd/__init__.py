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
    AccessDenied,
    CaseError,
    DeliveryError,
    FeedError,
    HitIdError,
    IndexBusy,
    IndexStateError,
    InvalidDate,
    InvalidNumber,
    MRZError,
    RecordNotFound,
    SealedReplicaError,
    ServiceError,
    SltdError,
    SourceError,
    Unauthorized,
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
    "AccessDenied",
    "Alert",
    "CaseError",
    "CaseState",
    "Client",
    "Clock",
    "DeliveryError",
    "DocType",
    "FeedError",
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
    "SealedReplicaError",
    "ServiceError",
    "SltdError",
    "SourceError",
    "Status",
    "SystemClock",
    "Unauthorized",
    "UnknownCountry",
    "UnknownDocType",
    "UnknownStatus",
    "ValidationError",
    "canonical_number",
    "fold_number",
    "open_index",
    "parse_mrz",
]


def __getattr__(name: str) -> object:
    """``sltd.Client`` (the service's client) is imported on first use: httpx is not
    needed by the library or the CLI without ``--server``."""
    if name == "Client":
        from sltd.client import Client

        return Client
    raise AttributeError(f"module 'sltd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "Client"])
