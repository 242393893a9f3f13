"""``sltd serve``: the network service over one index (FIND-like), JSON over HTTP.

The process that serves owns the DuckDB file (DuckDB allows one writing process), so
booths, e-gates and back-office tools talk to it: first-level search (single and batch),
second-level details, case decisions, record management, alerts. Stack: Starlette on
uvicorn (with httptools and uvloop), msgspec for request bodies: on this 2-core machine a
do-nothing POST answers ~12k requests/s under wrk with that stack (bench/serve.py; 4.8k
with uvicorn's pure-Python parser), where FastAPI + pydantic was measured at ~1.55k.

- Document numbers travel only in request bodies (POST), never in URLs or access logs.
- Every request but ``/health``, ``/ready``, ``/openapi.json`` and ``/docs`` carries an API
  key (``Authorization: Bearer <token>``, :mod:`sltd.access`); the key's NCB is the
  searching NCB (hit ids are bound to it) and its officer is audited.
- Errors are RFC 9457 ``application/problem+json``, carrying sltd's ``field``, ``value``
  and ``reason`` for bad input; refusals (401, 403) are audited.
- A record added or withdrawn is seen by the next search after the response; checks are
  answered on the event loop from memory, while loads, reveals and decisions run in worker
  threads, so searches never queue behind a load.
- Alerts are delivered and overdue cases escalated by a loop inside the service (the
  ``watch`` rounds, with the same sinks). SIGTERM: stop accepting, finish in-flight
  requests, flush the audit, exit 0.

Example:
    >>> from sltd import open_index
    >>> app = create_app(open_index(":memory:", create=True))
    >>> [p for p in openapi(app.state.service)["paths"] if p.startswith("/v1/check")]
    ['/v1/check', '/v1/check/batch']
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from sltd import __version__, codes
from sltd.access import ApiKey, Permission, check_token
from sltd.alerts import Router
from sltd.errors import (
    AccessDenied,
    CaseError,
    HitIdError,
    IndexStateError,
    RecordNotFound,
    SltdError,
    SourceError,
    ValidationError,
)
from sltd.index import Index, LoadReport, Pinned
from sltd.model import Hit
from sltd.sources import iter_batches

log = logging.getLogger(__name__)

#: Documents per batch search at most (an airline's passenger list).
MAX_BATCH = 10_000
#: Request body limit, bytes (a larger body: 413); a 1M-record upload fits.
MAX_BODY = 256 << 20
#: Problem type URIs are this plus a slug.
PROBLEM_BASE = "https://sltd.invalid/problems/"


# --- request bodies ---------------------------------------------------------------------

class _Body(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class CheckRequest(_Body):
    """One document: ``number`` (+ ``type``, ``country``, ``expiry``), or ``mrz``."""

    number: str | None = None
    type: str | None = None
    country: str | None = None
    expiry: str | None = None
    mrz: str | None = None
    exact_only: bool = False
    leads: bool = False


class BatchRequest(_Body):
    """Up to :data:`MAX_BATCH` documents; answers come in the same order."""

    documents: list[CheckRequest]
    exact_only: bool = False
    leads: bool = False


class RevealRequest(_Body):
    hit_id: str


class DecisionRequest(_Body):
    case_id: str
    reason: str | None = None


class WithdrawRequest(_Body):
    number: str
    type: str
    country: str
    reason: str | None = None


class KeyRequest(_Body):
    ncb: str
    officer: str
    role: str
    countries: list[str] = []


class RevokeRequest(_Body):
    key_id: str


# --- problems ---------------------------------------------------------------------------

class Problem(SltdError):
    """An RFC 9457 problem answer."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = \
            status, slug, title, detail, extra

    def response(self) -> Response:
        body = {"type": PROBLEM_BASE + self.slug, "title": self.title, "status": self.status,
                "detail": self.detail, **{k: v for k, v in self.extra.items()
                                          if v is not None}}
        headers = {"WWW-Authenticate": 'Bearer realm="sltd"'} if self.status == 401 else None
        return Response(msgspec.json.encode(body), self.status, headers,
                        media_type="application/problem+json")


def problem_of(e: Exception) -> Problem:
    """The problem answer of an sltd error (the client maps ``type`` back to it)."""
    if isinstance(e, Problem):
        return e
    if isinstance(e, ValidationError):
        return Problem(422, type(e).__name__, "invalid value", str(e), field=e.field,
                       value=None if e.value is None else str(e.value), reason=e.reason)
    if isinstance(e, AccessDenied):
        return Problem(403, "AccessDenied", "not allowed", str(e))
    if isinstance(e, RecordNotFound):
        return Problem(404, "RecordNotFound", "no such record", str(e), number=e.number,
                       doc_type=e.doc_type, country=e.country)
    if isinstance(e, HitIdError):
        return Problem(404, "HitIdError", "hit id not valid here", str(e), hit_id=e.hit_id)
    if isinstance(e, CaseError):
        return Problem(404 if e.state is None else 409, "CaseError",
                       "no such case" if e.state is None else "case closed", str(e),
                       case_id=e.case_id, state=e.state)
    if isinstance(e, SourceError):
        return Problem(422, "SourceError", "unreadable records", str(e))
    if isinstance(e, IndexStateError):
        return Problem(503, "IndexStateError", "index unavailable", str(e))
    if isinstance(e, SltdError):
        return Problem(400, "SltdError", "refused", str(e))
    if isinstance(e, ClientDisconnect):  # nobody to answer; not the service's failure
        return Problem(400, "disconnected", "client went away", "the request was cut off")
    return Problem(500, "internal", "internal error", "the service failed on this request; "
                   "it goes on serving others")


# --- metrics ----------------------------------------------------------------------------

@dataclasses.dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    hits: Counter
    reveals: Counter
    loads: Histogram
    overdue: Gauge
    backlog: Gauge

    @classmethod
    def make(cls) -> Metrics:
        r = CollectorRegistry()
        return cls(
            r,
            Counter("sltd_requests", "Requests by endpoint and status", ["endpoint", "status"],
                    registry=r),
            Histogram("sltd_request_seconds", "Request latency by endpoint", ["endpoint"],
                      buckets=(.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .5, 1, 5),
                      registry=r),
            Counter("sltd_hits", "First-level hits answered, by kind", ["kind"], registry=r),
            Counter("sltd_reveals", "Second-level reveals", registry=r),
            Histogram("sltd_load_seconds", "Record loads through the service",
                      buckets=(.01, .1, 1, 5, 10, 30, 60, 300), registry=r),
            Gauge("sltd_overdue_cases", "Hit cases past their validation deadline",
                  registry=r),
            Gauge("sltd_outbox_backlog", "Alerts not yet delivered", registry=r),
        )


# --- the application --------------------------------------------------------------------

Handler = Callable[[Request, ApiKey], Awaitable[Any]]


class Service:
    """The endpoints over one index; see :func:`create_app`."""

    def __init__(self, index: Index, *, router: Router | None = None,
                 alert_interval: float = 5.0, max_body: int = MAX_BODY,
                 max_batch: int = MAX_BATCH, feed: Path | None = None,
                 sync_every: float | None = None, sync_token: str = ""):
        self.index = index
        #: The feed directory served at /v1/feed (sltd publish writes it), if any.
        self.feed = feed
        #: As a replica: seconds between syncs with its feed (None: no sync loop).
        self.sync_every = sync_every
        self.sync_token = sync_token
        self.router = router
        self.alert_interval = alert_interval
        self.max_body = max_body
        self.max_batch = max_batch
        self.metrics = Metrics.make()
        self.ring = index.live_keys()
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._syncing: threading.Thread | None = None
        self._refusals: collections.deque[tuple[Any, ...]] = collections.deque()
        self.started = time.time()

    # --- plumbing

    async def _body(self, request: Request, kind: type[Any]) -> Any:
        raw = await self._raw(request)
        try:
            return msgspec.json.decode(raw, type=kind)
        except msgspec.ValidationError as e:
            raise Problem(422, "ValidationError", "invalid request", str(e)) from None
        except msgspec.DecodeError as e:
            raise Problem(400, "malformed", "malformed JSON", str(e)) from None

    async def _raw(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it is known to exceed the limit: from its
        declared length, or while it streams."""
        declared = _header(request, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise Problem(413, "too-large", "request body too large",
                          f"at most {self.max_body} bytes")
        chunks, size, more = [], 0, True
        while more:  # the ASGI messages themselves: Request.stream costs ~10 µs more
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise Problem(413, "too-large", "request body too large",
                              f"at most {self.max_body} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _key(self, request: Request) -> ApiKey:
        header = _header(request, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        key = check_token(self.ring, token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            self.refused(None, None, request.url.path, "401 missing or bad API key")
            raise Problem(401, "unauthorized", "API key required",
                          "send a valid key: Authorization: Bearer <token>")
        return key

    def endpoint(self, name: str, permission: Permission | None, handler: Handler
                 ) -> Callable[[Request], Awaitable[Response]]:
        latency = self.metrics.latency.labels(name)
        counted: dict[int, Any] = {}  # status -> its counter

        async def run(request: Request) -> Response:
            t = time.perf_counter()
            try:
                key = await self._key(request)
                try:
                    if permission is not None:
                        key.require(permission)
                    result = await handler(request, key)
                except AccessDenied as e:
                    self.refused(key.officer, key.ncb, name, f"403 {e}")
                    raise
                response = result if isinstance(result, Response) else Response(
                    msgspec.json.encode(result), media_type="application/json")
            except Exception as e:  # every error is an answer; the service goes on
                p = problem_of(e)
                if p.status == 500:
                    log.exception("%s failed", name)
                response = p.response()
            status = response.status_code
            counter = counted.get(status)
            if counter is None:
                counter = counted[status] = self.metrics.requests.labels(name, str(status))
            counter.inc()
            latency.observe(time.perf_counter() - t)
            return response
        return run

    # --- search

    def _check_one(self, d: CheckRequest, key: ApiKey, exact_only: bool, leads: bool,
                   pinned: Pinned) -> dict[str, Any]:
        if (d.number is None) == (d.mrz is None):
            raise ValidationError("give either number or mrz", field="number", value=None)
        read = None
        if d.mrz is not None:
            if d.type or d.country or d.expiry:
                raise ValidationError("type, country and expiry come from the MRZ",
                                      field="mrz", value=None)
            result = pinned.check_mrz(d.mrz, exact_only=exact_only, ncb=key.ncb,
                                      officer=key.officer, leads=leads)
            found, read = result.hits, result.mrz
        else:
            assert d.number is not None
            found = pinned.check(d.number, d.type, d.country, exact_only=exact_only,
                                     ncb=key.ncb, officer=key.officer, expiry=d.expiry,
                                     leads=leads)
        return self._answer(found, leads, read)

    def _answer(self, found: list[Hit], leads: bool, read: Any) -> dict[str, Any]:
        hits = [h for h in found if h.match.is_hit]
        out: dict[str, Any] = {"hits": [h.as_dict() for h in hits]}
        for h in hits:
            self.metrics.hits.labels(h.match.value).inc()
        if leads:
            out["leads"] = [h.as_dict() for h in found if not h.match.is_hit]
        if read is not None:
            out["mrz"] = read.as_dict()
        return out

    async def check(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, CheckRequest)
        pinned = self.index.pin()
        return {**self._check_one(d, key, d.exact_only, d.leads, pinned),
                "list_version": pinned.list_version.as_dict()}

    async def check_batch(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, BatchRequest)
        if len(d.documents) > self.max_batch:
            raise Problem(413, "batch-too-large", "too many documents",
                          f"{len(d.documents)} documents; at most {self.max_batch} a request")

        pinned = self.index.pin()  # the whole list answered from one version

        def run() -> list[dict[str, Any]]:
            out: list[dict[str, Any] | None] = [None] * len(d.documents)
            # plain typed documents: one vectorized pass (Index.check_many)
            plain = [i for i, doc in enumerate(d.documents)
                     if doc.mrz is None and doc.number is not None and doc.expiry is None
                     and not doc.exact_only and not doc.leads]
            if plain:
                hits, refused = pinned.check_sparse(
                    [(d.documents[i].number or "", d.documents[i].type,
                      d.documents[i].country) for i in plain],
                    exact_only=d.exact_only, leads=d.leads, ncb=key.ncb, officer=key.officer)
                nothing: dict[str, Any] = {"hits": [], **({"leads": []} if d.leads else {})}
                for i in plain:  # misses, all but a few
                    out[i] = nothing
                for j, found in hits.items():
                    out[plain[j]] = self._answer(found, d.leads, None)
                for j, error in refused.items():
                    out[plain[j]] = _refused(plain[j], error)
            for i, doc in enumerate(d.documents):  # MRZs, expiry dates, own flags
                if out[i] is None:
                    try:
                        out[i] = self._check_one(doc, key, d.exact_only or doc.exact_only,
                                                 d.leads or doc.leads, pinned)
                    except ValidationError as e:
                        out[i] = _refused(i, e)
            return [r for r in out if r is not None]
        return {"results": await run_in_threadpool(run),
                "list_version": pinned.list_version.as_dict()}

    # --- second level

    async def reveal(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, RevealRequest)
        details = await run_in_threadpool(self.index.reveal, d.hit_id, officer=key.officer,
                                          ncb=key.ncb)
        self.metrics.reveals.inc()
        return details.as_dict()

    def _own_case(self, case_id: str, key: ApiKey) -> None:
        case = self.index.case(case_id)
        if key.ncb not in (case.owner, case.searching_ncb):
            raise AccessDenied(f"case {case_id} is between {case.owner} and "
                               f"{case.searching_ncb}, not {key.ncb}")

    async def confirm(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, DecisionRequest)

        def run() -> Any:
            self._own_case(d.case_id, key)
            return self.index.confirm(d.case_id, officer=key.officer, reason=d.reason)
        case = await run_in_threadpool(run)
        return case.as_dict(self.index.clock.now())

    async def reject(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, DecisionRequest)

        def run() -> Any:
            self._own_case(d.case_id, key)
            return self.index.reject(d.case_id, officer=key.officer, reason=d.reason or "")
        case = await run_in_threadpool(run)
        return case.as_dict(self.index.clock.now())

    async def cases(self, request: Request, key: ApiKey) -> Any:
        states = request.query_params.getlist("state") or None
        now = self.index.clock.now()
        found = await run_in_threadpool(self.index.cases, states)
        return {"cases": [c.as_dict(now) for c in found
                          if key.ncb in (c.owner, c.searching_ncb)]}

    async def alerts(self, request: Request, key: ApiKey) -> Any:
        pending = request.query_params.get("pending", "").lower() in ("1", "true", "yes")
        found = await run_in_threadpool(self.index.alerts,
                                        case_id=request.query_params.get("case_id"),
                                        undelivered=pending)
        return {"alerts": [a.as_dict() for a in found  # recipient: owner:FRA, CCC ...
                           if a.recipient.rsplit(":", 1)[-1] == key.ncb]}

    # --- data management

    async def load(self, request: Request, key: ApiKey) -> Any:
        key.require(Permission.MANAGE)
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
        fmt = UPLOADS.get(kind.lower())
        if fmt is None:
            raise Problem(415, "unsupported-media-type", "unsupported Content-Type",
                          f"{kind}: send {', '.join(UPLOADS)}")
        raw = await self._raw(request)

        def run() -> LoadReport:
            # the very readers of `sltd load`: a file of the upload, in a private directory
            with tempfile.TemporaryDirectory(prefix="sltd-upload-") as tmp:
                path = Path(tmp) / f"upload.{fmt}"
                path.write_bytes(_jsonl_of(raw) if kind == "application/json" else raw)
                _require_countries(path, fmt, key)
                return self.index.load(path, format=fmt, officer=key.officer)

        t = time.perf_counter()
        report = await run_in_threadpool(run)
        self.metrics.loads.observe(time.perf_counter() - t)
        out = report.as_dict()
        out["source"] = f"upload ({kind})"
        out["problems"] = [dataclasses.asdict(p) for p in report.problems[:1000]]
        return out

    async def withdraw(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, WithdrawRequest)
        key.require_country(codes.country_code(d.country))
        await run_in_threadpool(self.index.withdraw, d.number, d.type, d.country,
                                reason=d.reason, officer=key.officer)
        return {"withdrawn": {"number": d.number, "type": d.type, "country": d.country}}

    # --- keys

    async def add_key(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, KeyRequest)
        made, token = await run_in_threadpool(
            self.index.add_key, ncb=d.ncb, officer=d.officer, role=d.role,
            countries=d.countries, by=key.officer)
        self.ring = self.index.live_keys()
        return {**made.as_dict(), "token": token}

    async def list_keys(self, request: Request, key: ApiKey) -> Any:
        return {"keys": [k.as_dict() for k in self.index.api_keys()]}

    async def revoke_key(self, request: Request, key: ApiKey) -> Any:
        d = await self._body(request, RevokeRequest)
        revoked = await run_in_threadpool(self.index.revoke_key, d.key_id, by=key.officer)
        self.ring = self.index.live_keys()
        return revoked.as_dict()

    # --- operations

    async def status(self, request: Request, key: ApiKey) -> Any:
        def run() -> dict[str, Any]:
            now = self.index.clock.now()
            open_cases = self.index.cases(["open"])
            backlog = len(self.index.alerts(undelivered=True))
            oldest = min((c.revealed_at for c in open_cases), default=None)
            listed = self.index.list_version
            return {"version": __version__, "records": len(self.index),
                    "list_version": listed.as_dict(),
                    "list_age_seconds": round((now - listed.committed_at).total_seconds())
                    if listed.committed_at else None,
                    "key_set_bytes": self.index.key_set_bytes,
                    "alert_backlog": backlog,
                    "open_cases": len(open_cases),
                    "oldest_open_case": oldest.isoformat() if oldest else None,
                    "uptime_seconds": round(time.time() - self.started, 1),
                    "now": now.isoformat()}
        return await run_in_threadpool(run)

    async def metrics_text(self, request: Request, key: ApiKey) -> Any:
        return Response(generate_latest(self.metrics.registry),
                        media_type="text/plain; version=0.0.4")

    def refused(self, officer: str | None, ncb: str | None, subject: str, result: str
                ) -> None:
        """Audit a refusal. Gathered in memory and written once a round (and at stop),
        like the checks' audit buffer: a flood of bad keys costs an append each, not a
        write transaction each."""
        self._refusals.append((self.index.clock.now(), "refused", officer, ncb, subject,
                               result))

    def write_refusals(self) -> None:
        taken = []
        while self._refusals:
            taken.append(self._refusals.popleft())
        try:
            self.index.record_events(taken)
        except Exception:
            self._refusals.extendleft(reversed(taken))  # kept for the next round
            raise

    # --- the feed

    async def feed_file(self, request: Request, key: ApiKey) -> Any:
        """A file of the feed this service publishes (``--feed``): ``feed.json`` or a
        unit's file; replicas fetch them (:func:`sltd.feed.sync` with a URL) and check
        them against the publisher's key, so the files are served as they are."""
        from starlette.responses import FileResponse

        from sltd.feed import UNIT_FILES

        name = str(request.path_params.get("name", ""))
        if self.feed is None:
            raise Problem(404, "no-feed", "no feed", "this service publishes no feed "
                          "(sltd serve --feed DIR)")
        unit, _, file = name.partition("/")
        if not (name == "feed.json" or (re.fullmatch(r"v[0-9]{10}", unit)
                                         and file in UNIT_FILES)):
            raise Problem(404, "http-404", "not a feed file", name)
        path = self.feed / name
        if not path.is_file():
            raise Problem(404, "http-404", "no such feed file", name)
        return FileResponse(path, media_type="application/json" if name.endswith(".json")
                            else "application/octet-stream")

    # --- the alert loop (and, on a replica, the sync loop)

    def start_alerts(self) -> None:
        self._loop = threading.Thread(target=self._alert_rounds, name="sltd-alerts",
                                      daemon=True)
        self._loop.start()
        if self.sync_every is not None and self.index.replica_of:
            self._syncing = threading.Thread(target=self._sync_rounds, name="sltd-sync",
                                             daemon=True)
            self._syncing.start()

    def stop_alerts(self) -> None:
        self._stop.set()
        if self._loop is not None:
            self._loop.join(timeout=30)
        if self._syncing is not None:
            self._syncing.join(timeout=60)
        self.write_refusals()

    def _sync_rounds(self) -> None:
        """A replica's service keeps its list up to its feed; a refused unit is logged
        and tried again next round, and checks go on from the version it has."""
        from sltd.feed import sync

        assert self.sync_every is not None
        while not self._stop.is_set():
            try:
                report = sync(self.index, token=self.sync_token)
                if report.applied:
                    log.warning("synced %s: %s", ", ".join(report.applied), report.version)
            except Exception as e:  # noqa: BLE001 - reported; the next round tries again
                log.warning("sync failed: %s", e)
            self._stop.wait(self.sync_every)

    def _alert_rounds(self) -> None:
        while not self._stop.is_set():
            try:
                self.write_refusals()
                at = self.index.clock.now().timestamp()
                self.index._s.keys.refresh_reviews(at)  # here, not in a check
                if not self.index.replica_of and self.index._s.keys.lapsed(at):
                    self.index.expire(officer="sltd serve")  # review dates that came
                self.index.escalate_overdue()
                if self.router is not None:
                    self.index.deliver_alerts(self.router)
                self.metrics.overdue.set(len(self.index.cases(["overdue"])))
                self.metrics.backlog.set(len(self.index.alerts(undelivered=True)))
            except Exception:  # a round that fails is retried next round
                log.exception("alert round failed")
            self._stop.wait(self.alert_interval)


def _header(request: Request, name: bytes) -> str | None:
    """One request header (lower-case ``name``), read from the ASGI scope: cheaper than
    building Starlette's Headers for the one or two a request needs."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _refused(i: int, e: ValidationError) -> dict[str, Any]:
    """A batch document's answer when it was refused: its place and the problem."""
    p = problem_of(e)
    return {"error": {"index": i, "detail": p.detail, **p.extra}}


#: Upload Content-Types and the `sltd load` format each is read as.
UPLOADS = {"application/json": "jsonl", "application/x-ndjson": "jsonl",
           "application/jsonl": "jsonl", "text/csv": "csv",
           "application/vnd.apache.parquet": "parquet",
           "application/vnd.apache.arrow.file": "arrow"}


def _jsonl_of(raw: bytes) -> bytes:
    """A JSON array of records as JSON Lines (what the loader reads)."""
    try:
        rows = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise Problem(400, "malformed", "malformed JSON", str(e)) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise Problem(422, "SourceError", "unreadable records",
                      "a JSON body of records is an array of objects")
    return b"".join(msgspec.json.encode(r) + b"\n" for r in rows)


def _require_countries(path: Path, fmt: str, key: ApiKey) -> None:
    """A manage key loads records of its own issuing countries only (403 otherwise):
    every issuing country of the upload is read first."""
    try:
        batches = iter_batches(path, format=fmt, columns=["issuing_country"],
                               batch_rows=1 << 20)
        seen: set[str] = set()
        for batch, _, _ in batches:
            seen.update(str(v) for v in batch.column(0).unique().to_pylist()
                        if v is not None)
    except (SourceError, KeyError, pa.ArrowException):
        return  # the loader names a missing column or an unreadable file
    for value in sorted(seen):
        try:
            country = codes.country_code(value)
        except ValidationError:
            continue  # rejected row by row by the loader
        key.require_country(country)


def openapi(service: Service) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service (schemas from the request types)."""
    bodies = (CheckRequest, BatchRequest, RevealRequest, DecisionRequest, WithdrawRequest,
              KeyRequest, RevokeRequest)
    _, components = msgspec.json.schema_components(bodies,
                                                   ref_template="#/components/schemas/{name}")
    problem = {"description": "RFC 9457 problem (field, value, reason for bad input)",
               "content": {"application/problem+json": {"schema": {"type": "object"}}}}

    def op(summary: str, body: str | None = None, role: str = "search") -> dict[str, Any]:
        o: dict[str, Any] = {
            "summary": summary, "description": f"Role: {role}.",
            "security": [{"apiKey": []}],
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": {"type": "object"}}}},
                "401": problem, "403": problem, "422": problem}}
        if body:
            o["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{body}"}}}}
        return o

    paths = {
        "/v1/check": {"post": op("First-level check of one document (number or MRZ)",
                                 "CheckRequest")},
        "/v1/check/batch": {"post": op(f"First-level check of up to {service.max_batch} "
                                       "documents, answered in input order", "BatchRequest")},
        "/v1/reveal": {"post": op("Second-level details of a hit id: opens the case, "
                                  "queues the three alerts", "RevealRequest", "reveal")},
        "/v1/cases/confirm": {"post": op("The owner NCB confirms", "DecisionRequest",
                                         "reveal")},
        "/v1/cases/reject": {"post": op("Not confirmed", "DecisionRequest", "reveal")},
        "/v1/cases": {"get": op("Hit cases of the key's NCB (?state=...)", None, "reveal")},
        "/v1/alerts": {"get": op("Alerts to the key's NCB (?pending=1, ?case_id=)", None,
                                 "reveal")},
        "/v1/records": {"post": {**op("Add or update records: JSON array, JSON Lines, CSV, "
                                      "Parquet or Arrow body, read as `sltd load` reads "
                                      "files; one transaction", None, "manage"),
                                 "requestBody": {"required": True, "content": {
                                     t: {} for t in UPLOADS}}}},
        "/v1/records/withdraw": {"post": op("Withdraw a record (document recovered)",
                                            "WithdrawRequest", "manage")},
        "/v1/keys": {"get": op("API keys (never their tokens)", None, "admin"),
                     "post": op("Make an API key; the token is in this answer only",
                                "KeyRequest", "admin")},
        "/v1/keys/revoke": {"post": op("Revoke an API key", "RevokeRequest", "admin")},
        "/v1/status": {"get": op("Records, memory, alert backlog, oldest pending case")},
        "/v1/feed/{name}": {"get": {**op("A file of the signed feed (sltd serve --feed): "
                                         "feed.json or a unit's file, for replicas"),
                                    "parameters": [{"name": "name", "in": "path",
                                                    "required": True,
                                                    "schema": {"type": "string"}}]}},
        "/metrics": {"get": op("Prometheus metrics")},
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {
            "description": "alive"}}}},
        "/ready": {"get": {"summary": "Readiness: the index is open and its keys loaded",
                           "responses": {"200": {"description": "ready"}}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "sltd", "version": __version__,
                     "description": "Stolen and lost travel document checks. Document "
                     "numbers travel only in request bodies."},
            "paths": paths,
            "components": {"schemas": components, "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"}}}}


def _docs_page(doc: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{method.upper()} {path}</code></td><td>{op['summary']}</td>"
        f"<td>{op.get('description', '')}</td></tr>"
        for path, ops in doc["paths"].items() for method, op in ops.items())
    return ("<!doctype html><meta charset=utf-8><title>sltd API</title>"
            "<h1>sltd API</h1><p>Send <code>Authorization: Bearer &lt;token&gt;</code>; "
            "bodies are JSON; errors are <code>application/problem+json</code>. The "
            "machine-readable document: <a href=/openapi.json>/openapi.json</a>.</p>"
            f"<table border=1 cellpadding=4>{rows}</table>")


def create_app(index: Index, *, router: Router | None = None, alert_interval: float = 5.0,
               max_body: int = MAX_BODY, max_batch: int = MAX_BATCH,
               feed: Path | None = None, sync_every: float | None = None,
               sync_token: str = "") -> Starlette:
    """The ASGI application over ``index`` (which it closes, audit flushed, on
    shutdown); ``feed``: a feed directory to serve at ``/v1/feed``; ``sync_every``: on a
    replica, seconds between syncs with its feed."""
    s = Service(index, router=router, alert_interval=alert_interval, max_body=max_body,
                max_batch=max_batch, feed=feed, sync_every=sync_every, sync_token=sync_token)
    P = Permission
    routes = [
        Route("/v1/check", s.endpoint("check", P.SEARCH, s.check), methods=["POST"]),
        Route("/v1/check/batch", s.endpoint("check_batch", P.SEARCH, s.check_batch),
              methods=["POST"]),
        Route("/v1/reveal", s.endpoint("reveal", P.REVEAL, s.reveal), methods=["POST"]),
        Route("/v1/cases/confirm", s.endpoint("confirm", P.REVEAL, s.confirm),
              methods=["POST"]),
        Route("/v1/cases/reject", s.endpoint("reject", P.REVEAL, s.reject),
              methods=["POST"]),
        Route("/v1/cases", s.endpoint("cases", P.REVEAL, s.cases), methods=["GET"]),
        Route("/v1/alerts", s.endpoint("alerts", P.REVEAL, s.alerts), methods=["GET"]),
        Route("/v1/records", s.endpoint("load", P.MANAGE, s.load), methods=["POST"]),
        Route("/v1/records/withdraw", s.endpoint("withdraw", P.MANAGE, s.withdraw),
              methods=["POST"]),
        Route("/v1/keys", s.endpoint("keys", P.ADMIN, s.list_keys), methods=["GET"]),
        Route("/v1/keys", s.endpoint("add_key", P.ADMIN, s.add_key), methods=["POST"]),
        Route("/v1/keys/revoke", s.endpoint("revoke_key", P.ADMIN, s.revoke_key),
              methods=["POST"]),
        Route("/v1/status", s.endpoint("status", None, s.status), methods=["GET"]),
        Route("/v1/feed/{name:path}", s.endpoint("feed", P.SEARCH, s.feed_file),
              methods=["GET"]),
        Route("/metrics", s.endpoint("metrics", None, s.metrics_text), methods=["GET"]),
    ]
    doc = openapi(s)
    encoded = msgspec.json.encode(doc)

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def ready(request: Request) -> Response:
        index._s.keys.snapshot()  # opened (or built) before the first check needs it
        return Response(b'{"status":"ready"}', media_type="application/json")

    async def spec(request: Request) -> Response:
        return Response(encoded, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(_docs_page(doc))

    routes += [Route("/health", health), Route("/ready", ready),
               Route("/openapi.json", spec), Route("/docs", docs)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        await asyncio.get_running_loop().run_in_executor(None, index._s.keys.snapshot)
        await asyncio.get_running_loop().run_in_executor(  # review dates, before checks
            None, index._s.keys.refresh_reviews, index.clock.now().timestamp())
        s.start_alerts()
        try:
            yield
        finally:
            s.stop_alerts()
            index.close()  # flushes the audit

    async def http_problem(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no such path: 404; wrong method: 405) as problems."""
        status = getattr(exc, "status_code", 500)
        return Problem(status, f"http-{status}", str(getattr(exc, "detail", "")) or "error",
                       f"{request.method} {request.url.path}").response()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_problem})
    app.state.service = s
    return app


def _note_path(db: str) -> Path:
    return Path(f"{db}.serve")


def served_url(db: str, pid: int | None) -> str | None:
    """The URL of the ``sltd serve`` process ``pid`` holding ``db``, from the note it
    leaves beside the file while it runs (None if there is no such note)."""
    try:
        note = json.loads(_note_path(db).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or note.get("sltd_serve") != 1 or note.get("pid") != pid:
        return None
    return str(note.get("url"))


def _leave_note(db: str, url: str) -> Path | None:
    """Write the note that tells other commands where the service is (never over a file
    that is not such a note)."""
    path = _note_path(db)
    if path.exists() and served_url(db, None) is None:
        try:
            if json.loads(path.read_text()).get("sltd_serve") != 1:
                return None
        except (OSError, ValueError, AttributeError):
            return None
    path.write_text(json.dumps({"sltd_serve": 1, "pid": os.getpid(), "url": url}))
    return path


def serve(index: Index, *, host: str = "127.0.0.1", port: int = 8300,
          router: Router | None = None, alert_interval: float = 5.0,
          certfile: str | None = None, keyfile: str | None = None,
          max_body: int = MAX_BODY, feed: Path | None = None,
          sync_every: float | None = None, sync_token: str = "") -> None:
    """Run the service until SIGINT/SIGTERM (in-flight requests finish, the audit is
    flushed)."""
    import uvicorn

    app = create_app(index, router=router, alert_interval=alert_interval, max_body=max_body,
                     feed=feed, sync_every=sync_every, sync_token=sync_token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, ssl_certfile=certfile, ssl_keyfile=keyfile,
                            timeout_graceful_shutdown=30, lifespan="on")

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """SIGINT/SIGTERM stop the service gracefully, and then it exits 0 (uvicorn
            would raise the signal again once stopped)."""
            previous = {sig: signal.signal(sig, self.handle_exit)
                        for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    scheme = "https" if certfile else "http"
    note = _leave_note(index.path, f"{scheme}://{host}:{port}") \
        if index.path != ":memory:" else None
    try:
        Server(config).run()
    finally:
        if note is not None:
            note.unlink(missing_ok=True)

