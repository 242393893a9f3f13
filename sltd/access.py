"""API keys and roles of the network service (:mod:`sltd.service`).

A key names who calls: the NCB (hit ids are bound to it, reveals and refusals are audited
with it), the officer or system, and one role. The token is shown once, when the key is
made; the index keeps only its SHA-256, and compares in constant time.

| role | may |
| --- | --- |
| ``search`` | first-level checks (single and batch) |
| ``reveal`` | also reveal hits (second level), list and decide its NCB's cases, read alerts |
| ``manage`` | checks, and add / withdraw records of the issuing countries on its key |
| ``admin`` | checks, and make, list and revoke keys |

Example:
    >>> import duckdb
    >>> from sltd.store import SCHEMA
    >>> con = duckdb.connect()
    >>> con.execute(SCHEMA)  # doctest: +ELLIPSIS
    <...>
    >>> key, token = add_key(con, ncb="DEU", officer="K. Weber", role="search",
    ...                      now=dt.datetime(2026, 11, 24, tzinfo=dt.UTC))
    >>> authenticate(con, token).role, authenticate(con, token + "x")
    (<Role.SEARCH: 'search'>, None)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

import duckdb

from sltd import codes
from sltd.errors import AccessDenied, ValidationError
from sltd.workflow import ncb_code

#: Tokens look like ``sltd_<key id>_<secret>``; the secret has 192 random bits.
TOKEN_PREFIX = "sltd_"
_SECRET_BYTES = 24


class Role(enum.StrEnum):
    SEARCH = "search"
    REVEAL = "reveal"
    MANAGE = "manage"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    SEARCH = "search"
    REVEAL = "reveal"  # reveal, cases, decisions, alerts
    MANAGE = "manage"  # add and withdraw records (of the key's countries)
    ADMIN = "admin"  # keys


ALLOWED: dict[Role, frozenset[Permission]] = {
    Role.SEARCH: frozenset({Permission.SEARCH}),
    Role.REVEAL: frozenset({Permission.SEARCH, Permission.REVEAL}),
    Role.MANAGE: frozenset({Permission.SEARCH, Permission.MANAGE}),
    Role.ADMIN: frozenset({Permission.SEARCH, Permission.ADMIN}),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the index keeps it (without its token)."""

    key_id: str
    ncb: str
    officer: str
    role: Role
    countries: tuple[str, ...]
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    def may(self, permission: Permission) -> bool:
        return permission in ALLOWED[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise AccessDenied(f"key {self.key_id} has role {self.role}, which may not "
                               f"{permission}")

    def require_country(self, country: str) -> None:
        """A ``manage`` key changes records of its own issuing countries only."""
        self.require(Permission.MANAGE)
        if country not in self.countries:
            raise AccessDenied(f"key {self.key_id} may manage records of "
                               f"{', '.join(self.countries) or 'no country'}, not {country}")

    def as_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "ncb": self.ncb, "officer": self.officer,
                "role": self.role.value, "countries": list(self.countries),
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def role_of(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(f"not a role: {', '.join(r.value for r in Role)}",
                              field="role", value=value) from None


def add_key(con: duckdb.DuckDBPyConnection, *, ncb: str, officer: str, role: str,
            countries: Sequence[str] = (), now: dt.datetime) -> tuple[ApiKey, str]:
    """Make a key; returns it and its token (shown once: only its hash is kept)."""
    r = role_of(role)
    who = ncb_code(ncb)
    if not officer.strip():
        raise ValidationError("name the officer or system the key is for", field="officer",
                              value=officer)
    manage = tuple(sorted({codes.country_code(c) for c in countries}))
    if r is Role.MANAGE and not manage:
        raise ValidationError("a manage key names the issuing countries it may change "
                              "(--country)", field="countries", value="")
    if manage and r is not Role.MANAGE:
        raise ValidationError("only a manage key has countries", field="countries",
                              value=",".join(manage))
    key_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    at = now.astimezone(dt.UTC).replace(tzinfo=None)
    con.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [key_id, _sha256(token), who, officer.strip(), r.value, ",".join(manage), at])
    return ApiKey(key_id, who, officer.strip(), r, manage, now, None), token


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, ncb, officer, role, countries, created, revoked = row
    return ApiKey(key_id, ncb, officer, Role(role), tuple(c for c in countries.split(",") if c),
                  created.replace(tzinfo=dt.UTC),
                  revoked.replace(tzinfo=dt.UTC) if revoked else None)


_FIELDS = "key_id, ncb, officer, role, countries, created_at, revoked_at"


def list_keys(con: duckdb.DuckDBPyConnection) -> list[ApiKey]:
    return [_key(r) for r in con.execute(
        f"SELECT {_FIELDS} FROM api_keys ORDER BY created_at, key_id").fetchall()]


def revoke_key(con: duckdb.DuckDBPyConnection, key_id: str, now: dt.datetime) -> ApiKey:
    """Revoke a key (kept, for the audit trail). Raises ValidationError if unknown."""
    row = con.execute(f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) "
                      f"WHERE key_id = ? RETURNING {_FIELDS}",
                      [now.astimezone(dt.UTC).replace(tzinfo=None), key_id]).fetchone()
    if row is None:
        raise ValidationError("no such key", field="key_id", value=key_id)
    return _key(row)


def live_keys(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ApiKey]]:
    """Every key not revoked, by key id, with its token's SHA-256 (the service's ring)."""
    return {r[0]: (r[-1], _key(r[:-1])) for r in con.execute(
        f"SELECT {_FIELDS}, token_sha256 FROM api_keys WHERE revoked_at IS NULL").fetchall()}


def check_token(ring: dict[str, tuple[str, ApiKey]], token: str) -> ApiKey | None:
    """The key of ``token`` in a ring of :func:`live_keys`, compared in constant time."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    entry = ring.get(token[len(TOKEN_PREFIX):].split("_", 1)[0])
    if entry is None or not hmac.compare_digest(entry[0], _sha256(token)):
        return None
    return entry[1]


def authenticate(con: duckdb.DuckDBPyConnection, token: str) -> ApiKey | None:
    """The live key of ``token``, or None (unknown, malformed or revoked)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id = token[len(TOKEN_PREFIX):].split("_", 1)[0]
    row = con.execute(f"SELECT {_FIELDS}, token_sha256 FROM api_keys WHERE key_id = ?",
                      [key_id]).fetchone()
    if row is None or not hmac.compare_digest(row[-1], _sha256(token)) or row[6] is not None:
        return None
    return _key(row[:-1])
