"""The Python client of ``sltd serve``: the library's method names and return types, over
HTTP (httpx, one keep-alive connection pool per client).

Errors come back as the exceptions the library raises: a problem answer's ``type`` names
the sltd error (``InvalidNumber``, ``RecordNotFound``, ``HitIdError`` ...), with its
``field``, ``value`` and ``reason``; 401 raises :class:`sltd.Unauthorized`, 403
:class:`sltd.AccessDenied`.

Example (against a running service)::

    with sltd.Client("http://127.0.0.1:8300", token) as c:
        for hit in c.check("X12 345 678", "P", "FRA"):
            details = c.reveal(hit.hit_id)
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from sltd import errors
from sltd.errors import AccessDenied, ServiceError, SltdError, Unauthorized
from sltd.model import (
    Alert,
    CaseState,
    ErrorClass,
    Evidence,
    Hit,
    HitCase,
    HitDetails,
    MatchKind,
    Status,
)
from sltd.mrz import MRZCheck, parse_mrz
from sltd.sources import detect_format

_VALIDATION = {name: getattr(errors, name) for name in dir(errors)
               if isinstance(getattr(errors, name), type)
               and issubclass(getattr(errors, name), errors.ValidationError)}


def _raise(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    slug = str(body.get("type", "")).rsplit("/", 1)[-1]
    detail = str(body.get("detail", response.reason_phrase))
    if response.status_code == 401:
        raise Unauthorized(detail)
    if response.status_code == 403:
        raise AccessDenied(detail)
    if slug in _VALIDATION:
        e = _VALIDATION[slug].__new__(_VALIDATION[slug])
        errors.ValidationError.__init__(e, body.get("reason") or detail,
                                        field=body.get("field") or "", value=body.get("value"))
        raise e
    if slug == "RecordNotFound":
        raise errors.RecordNotFound(number=body.get("number", ""),
                                    doc_type=body.get("doc_type", ""),
                                    country=body.get("country", ""))
    if slug == "HitIdError":
        raise errors.HitIdError(detail, hit_id=body.get("hit_id", ""))
    if slug == "CaseError":
        raise errors.CaseError(detail, case_id=body.get("case_id", ""),
                               state=body.get("state"))
    if slug == "SourceError":
        raise errors.SourceError(detail)
    if slug == "IndexStateError":
        raise errors.IndexStateError(detail)
    raise ServiceError(response.status_code, detail)


def hit_of(d: dict[str, Any]) -> Hit:
    """A hit from its JSON form (:meth:`sltd.Hit.as_dict`)."""
    return Hit(d["hit_id"], d["number"], d["type"], d["country"], MatchKind(d["match"]),
               d.get("score", 100.0), d.get("explanation"),
               ErrorClass(d["error"]) if d.get("error") else None,
               tuple(Evidence(e) for e in d.get("evidence", ())))


def _time(v: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(v) if v else None


def _date(v: str | None) -> dt.date | None:
    return dt.date.fromisoformat(v) if v else None


def _case(d: dict[str, Any]) -> HitCase:
    return HitCase(d["case_id"], d["number"], d["doc_type"], d["country"], d["owner"],
                   d["searching_ncb"], d["officer"], CaseState(d["state"]),
                   dt.datetime.fromisoformat(d["revealed_at"]),
                   dt.datetime.fromisoformat(d["deadline"]), _time(d.get("escalated_at")),
                   _time(d.get("decided_at")), d.get("decided_by"), d.get("reason"),
                   int(d.get("list_version") or 0))


class Client:
    """A client of one ``sltd serve`` with one API key (``token``)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0,
                 verify: bool | str | ssl.SSLContext = True):
        """``verify``: check the service's TLS certificate (True), against this CA or
        certificate file (a path), or with this SSL context."""
        self.url = url.rstrip("/")
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, verify=verify,
                                  headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def from_env(cls) -> Client:
        """From ``SLTD_SERVER`` and ``SLTD_TOKEN``."""
        return cls(os.environ["SLTD_SERVER"], os.environ.get("SLTD_TOKEN", ""))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _post(self, path: str, body: Any) -> Any:
        r = self._http.post(path, json=body)
        _raise(r)
        return r.json()

    def _get(self, path: str, **params: Any) -> Any:
        r = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        _raise(r)
        return r.json()

    # --- first level

    def check_json(self, number: str | None = None, doc_type: str | None = None,
                   country: str | None = None, *, mrz: str | None = None,
                   exact_only: bool = False, expiry: str | dt.date | None = None,
                   leads: bool = False) -> dict[str, Any]:
        """The service's answer as JSON (``hits``, with ``leads``: ``leads``, with an
        MRZ: ``mrz``), as ``sltd check --json`` prints it."""
        body = {"number": number, "type": doc_type, "country": country, "mrz": mrz,
                "expiry": str(expiry) if expiry is not None else None,
                "exact_only": exact_only, "leads": leads}
        return self._post("/v1/check", {k: v for k, v in body.items() if v is not None})

    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, expiry: str | dt.date | None = None,
              leads: bool = False) -> list[Hit]:
        """As :meth:`sltd.Index.check` (the searching NCB and officer are the key's)."""
        out = self.check_json(number, doc_type, country, exact_only=exact_only,
                              expiry=expiry, leads=leads)
        return [hit_of(h) for h in out["hits"] + out.get("leads", [])]

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  leads: bool = False) -> MRZCheck:
        """As :meth:`sltd.Index.check_mrz`: what was read (parsed here as the service
        parses it; a bad MRZ raises the same :class:`sltd.MRZError` before any request)
        and the hits."""
        text = mrz if isinstance(mrz, str) else "\n".join(mrz)
        read = parse_mrz(text)
        out = self.check_json(mrz=text, exact_only=exact_only, leads=leads)
        return MRZCheck(read, [hit_of(h) for h in out["hits"] + out.get("leads", [])])

    def check_many(self, documents: Sequence[dict[str, Any]], *, exact_only: bool = False,
                   leads: bool = False) -> list[list[Hit] | SltdError]:
        """Batch check (``number``/``type``/``country`` or ``mrz`` per document), in
        input order; a document that is refused comes back as its error."""
        out = self._post("/v1/check/batch", {"documents": list(documents),
                                              "exact_only": exact_only, "leads": leads})
        results: list[list[Hit] | SltdError] = []
        for r in out["results"]:
            if "error" in r:
                e = r["error"]
                results.append(errors.ValidationError(e.get("reason") or e["detail"],
                                                      field=e.get("field"),
                                                      value=e.get("value")))
            else:
                results.append([hit_of(h) for h in r["hits"] + r.get("leads", [])])
        return results

    # --- second level

    def reveal(self, hit_id: str) -> HitDetails:
        d = self._post("/v1/reveal", {"hit_id": hit_id})
        return HitDetails(d["case_id"], d["number"], d["doc_type"], d["country"],
                          Status(d["status"]), d["owner"], d.get("place_of_loss"),
                          _date(d.get("date_of_loss")), _date(d.get("date_of_issue")),
                          _date(d.get("date_of_expiry")),
                          dt.datetime.fromisoformat(d["revealed_at"]),
                          dt.datetime.fromisoformat(d["deadline"]),
                          int(d.get("list_version") or 0))

    def confirm(self, case_id: str, *, reason: str | None = None) -> HitCase:
        return _case(self._post("/v1/cases/confirm", {"case_id": case_id, "reason": reason}))

    def reject(self, case_id: str, *, reason: str) -> HitCase:
        return _case(self._post("/v1/cases/reject", {"case_id": case_id, "reason": reason}))

    def cases(self, states: Sequence[str] | None = None) -> list[HitCase]:
        r = self._http.get("/v1/cases", params=[("state", s) for s in states or ()])
        _raise(r)
        return [_case(c) for c in r.json()["cases"]]

    def alerts(self, *, case_id: str | None = None, undelivered: bool = False) -> list[Alert]:
        out = self._get("/v1/alerts", case_id=case_id, pending="1" if undelivered else None)
        return [Alert(a["alert_id"], a["case_id"], a["kind"], a["recipient"], a["payload"],
                      dt.datetime.fromisoformat(a["created_at"]), _time(a["delivered_at"]),
                      a["delivered_to"], a["attempts"],
                      dt.datetime.fromisoformat(a["next_attempt_at"]), a["last_error"])
                for a in out["alerts"]]

    # --- data management

    def load(self, source: str | os.PathLike[str] | Sequence[dict[str, Any]]
             ) -> dict[str, Any]:
        """Add or update records: a file (CSV, Parquet, JSON Lines or Arrow, by its name,
        as ``sltd load`` reads it) or a list of records (default column names). Returns
        the load report (with up to 1,000 ``problems``: row, field, value, reason)."""
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            kind = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet",
                    "jsonl": "application/x-ndjson",
                    "arrow": "application/vnd.apache.arrow.file"}[detect_format(path)]
            r = self._http.post("/v1/records", content=path.read_bytes(),
                                headers={"Content-Type": kind})
        else:
            r = self._http.post("/v1/records", json=list(source))
        _raise(r)
        return r.json()  # type: ignore[no-any-return]

    def withdraw(self, number: str, doc_type: str, country: str, *,
                 reason: str | None = None) -> None:
        self._post("/v1/records/withdraw", {"number": number, "type": doc_type,
                                            "country": country, "reason": reason})

    def stats(self) -> dict[str, Any]:
        """The service's status (records, memory, alert backlog, oldest open case)."""
        return self._get("/v1/status")  # type: ignore[no-any-return]
