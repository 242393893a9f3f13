"""Sealed replicas: a national copy of the list in which no document number is stored in
plaintext, for posts whose devices may be lost or stolen.

``sltd publish DIR --sealed SEAL_KEY`` writes a feed (:mod:`sltd.feed`, same signing,
units, versions and checks) whose records are sealed under a 32-byte *seal key* that the
publisher shares with its sealed replicas (the device key; never in the feed):

- ``tag``: a keyed 64-bit pseudo-random function of the record's folded number
  (:meth:`SealKey.tags`: AES-256 as a fixed-length CBC-MAC over the fold zero-padded to
  32 bytes, truncated). First-level lookups work on tags: a check tags the folded query
  and each of its edit-1 variants the same way (one vectorized AES call for ~500 of
  them), so exact hits, look-alike near hits and one-edit near misses are found as on a
  plain replica.
- ``number``: the record's number, AES-GCM encrypted under a key derived from its fold
  (the same construction under another sub-key): opened only for a record whose fold
  the query, or one of its variants, has.
- ``details``: the second-level fields (status, owner NCB, place and dates), AES-GCM
  encrypted under a key derived from the record's number, type and country: opened only
  for a hit, with the document's number, type and country (:meth:`SealedReplica.reveal`,
  which opens its case and queues its alerts as on any replica).
- ``doc_type``, ``country`` and ``review_date`` in plaintext (a first-level answer
  carries the first two; a record past its review date must stop hitting without
  being opened), and a ``rid`` (a keyed hash of number, type and country) by which a
  delta replaces or withdraws a record.

Each unit also carries the issuers' alphabets (which characters their listed numbers
carry at each position, :mod:`sltd.alphabets`), as sets of characters and not counts:
the near-miss policy needs them, and they are what the sealed list tells of its numbers'
formats.

Threat model (README, "Sealed replicas"): a copy of the sealed feed or replica *without
the seal key* shows record counts per country and type, review dates and the
alphabets, and nothing of any number. A thief *with the seal key* (the replica's device
and its key file) can test a candidate number at the cost of one AES tag (~0.1 µs a
candidate in bulk), so enumerating a country's number format is a brute force over its
space: 10^9 for nine digits, 26 x 10^7 for a letter and seven digits; the README gives
the times measured here. Sealing protects against casual reading of a lost device, and
makes listed numbers cost a search over their format, not a read.

Example:
    >>> key = SealKey(bytes(32))
    >>> key.tag(b"X1234567") == int(key.tags(np.frombuffer(b"X1234567", np.uint8)
    ...                                      .reshape(1, 8))[0])
    True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sltd import alerts, codes, store, workflow
from sltd.alphabets import MIN_COUNT, MIN_SHARE
from sltd.audit import AuditLog
from sltd.clock import Clock, SystemClock, timestamp_of
from sltd.database import Database
from sltd.errors import FeedError, IndexStateError, ValidationError
from sltd.index import _expiry, _ncb, _summary
from sltd.keyset import KeySet, Reviews, day_of
from sltd.model import TYPED, Alert, Hit, HitCase, HitDetails, ListVersion, Reading
from sltd.normalize import canonical_number, fold_number

if TYPE_CHECKING:
    from sltd.feed import _Unit
    from sltd.mrz import MRZCheck

#: Meta keys of a sealed replica.
SEALED_FEED, SEAL_KEY_PATH = "sealed_feed_id", "seal_key_path"
_NONCE = 12
_DETAILS = ("status", "owner_ncb", "place_of_loss", "date_of_loss", "date_of_issue",
            "date_of_expiry")
#: The columns of a sealed records file.
SEALED_SCHEMA = pa.schema([("rid", pa.binary(16)), ("tag", pa.int64()),
                           ("doc_type", pa.string()), ("country", pa.string()),
                           ("review_date", pa.date32()), ("number", pa.binary()),
                           ("details", pa.binary())])
#: The columns of a sealed delta's withdrawals.
RIDS_SCHEMA = pa.schema([("rid", pa.binary(16))])
_SEALED_TABLES = """
CREATE TABLE IF NOT EXISTS sealed_records (
    record_id BIGINT PRIMARY KEY, rid BLOB NOT NULL, tag BIGINT NOT NULL,
    doc_type VARCHAR NOT NULL, country VARCHAR NOT NULL, review_date DATE,
    number BLOB NOT NULL, details BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sealed_alphabets (
    country VARCHAR, doc_type VARCHAR, position INTEGER, chars VARCHAR);
"""


@functools.cache
def _aead() -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM


@functools.cache
def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def new_seal_key(path: str | os.PathLike[str]) -> Path:
    """Make a seal key (32 random bytes, hex) at ``path``, mode 0600; never overwrites.

    Raises:
        FeedError: the file exists.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FeedError(f"{path} exists; a key is never overwritten (choose another "
                        "path)") from None
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return Path(path)


def read_seal_key(path: str | os.PathLike[str]) -> SealKey:
    """The seal key in the file ``path`` (made by :func:`new_seal_key`).

    Raises:
        FeedError: the file cannot be read or holds no seal key.
    """
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        master = bytes.fromhex(text)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise FeedError(f"cannot read the seal key {path}: {e}") from None
    if len(master) != 32:
        raise FeedError(f"{path} is not a seal key (32 bytes, hex; make one with "
                        "sltd publish --new-seal-key)")
    return SealKey(master)


class SealKey:
    """The sub-keys of a seal key (HKDF-SHA256, one per use) and what is computed with
    them: the tag of a fold, the key of a record's number (from its fold), the key of its
    details and its rid (from its number, type and country).

    Each is AES-256 used as a two-block CBC-MAC over the input zero-padded to 32 bytes,
    E(E(b0) xor b1), a pseudo-random function of fixed-length inputs (a fold is at most
    24 characters, and "number, type, country" at most 31; none has a NUL, so the padding
    is unambiguous). Computed in bulk with one AES-ECB call per block for a whole column
    (~0.05 µs a row), or for one input with two (~1 µs).
    """

    _USES = ("tag", "number", "details", "rid")

    def __init__(self, master: bytes):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        def derive(use: str) -> bytes:
            return HKDF(hashes.SHA256(), 32, salt=None, info=b"sltd seal " + use.encode()) \
                .derive(master)

        #: The key's id (in each sealed manifest: a replica refuses another key's feed).
        self.id = derive("id")[:8].hex()
        self._keys = {use: derive(use) for use in self._USES}
        self._local = threading.local()

    def _ecb(self, use: str) -> Any:
        """This thread's AES-256-ECB context of a sub-key (a context is not shared between
        threads; ECB keeps no state between calls, so one serves every call)."""
        contexts = getattr(self._local, "ecb", None)
        if contexts is None:
            contexts = self._local.ecb = {}
        enc = contexts.get(use)
        if enc is None:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            enc = contexts[use] = Cipher(algorithms.AES(self._keys[use]),
                                         modes.ECB()).encryptor()
        return enc

    def _macs(self, use: str, matrix: np.ndarray) -> np.ndarray:
        """The MAC of each row of a zero-padded uint8 matrix (at most 32 wide): (n, 16)."""
        n = len(matrix)
        padded = np.zeros((n, 32), np.uint8)
        padded[:, :matrix.shape[1]] = matrix
        enc = self._ecb(use)
        first = np.frombuffer(enc.update(padded[:, :16].tobytes()), np.uint8).reshape(n, 16)
        return np.frombuffer(enc.update((first ^ padded[:, 16:]).tobytes()),
                             np.uint8).reshape(n, 16)

    def _mac(self, use: str, data: bytes) -> bytes:
        padded = data.ljust(32, b"\0")
        enc = self._ecb(use)
        first = int.from_bytes(enc.update(padded[:16]), "little") ^ int.from_bytes(
            padded[16:], "little")
        return bytes(enc.update(first.to_bytes(16, "little")))

    def tags(self, matrix: np.ndarray) -> np.ndarray:
        """The tags (int64: the first 8 bytes of the MAC) of folded keys given as a
        zero-padded uint8 matrix, one key a row, at most 32 bytes wide."""
        if not len(matrix):
            return np.zeros(0, np.int64)
        return self._macs("tag", matrix)[:, :8].copy().view(np.int64).ravel()

    def tag(self, folded: bytes) -> int:
        """:meth:`tags` of one folded key (ASCII bytes): the path of every check."""
        return int.from_bytes(self._mac("tag", folded)[:8], "little", signed=True)

    def number_key(self, fold: bytes) -> bytes:
        """The AES-128 key of the number of the records with this fold."""
        return self._mac("number", fold)

    def details_key(self, number: str, doc_type: str, country: str) -> bytes:
        """The AES-128 key of the details of the record with this key."""
        return self._mac("details", f"{number}\x1f{doc_type}\x1f{country}".encode())

    def rid(self, number: str, doc_type: str, country: str) -> bytes:
        """The id by which a delta replaces or withdraws the record with this key."""
        return self._mac("rid", f"{number}\x1f{doc_type}\x1f{country}".encode())


def _seal(aead: Any, key: bytes, nonce: bytes, plain: bytes) -> bytes:
    return nonce + aead(key).encrypt(nonce, plain, None)


def _open_sealed(opener: Any, sealed: bytes | memoryview) -> bytes | None:
    """What ``opener`` (an AESGCM of the right key) finds sealed in ``sealed`` (nonce,
    then ciphertext); None if it does not open (another key, or a changed byte)."""
    try:
        return bytes(opener.decrypt(sealed[:_NONCE], sealed[_NONCE:], None))
    except _invalid_tag():
        return None


def _matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A string column (ASCII, at most 32 bytes a value) as an (n, 32) zero-padded uint8
    matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.string())
    if len(column) and (pc.max(pc.binary_length(column)).as_py() or 0) > 32:
        raise ValueError("a sealed key is at most 32 bytes")  # the loader allows 31
    padded = pc.ascii_rpad(column.cast(pa.large_string()), width=32, padding="\0")
    offsets = np.frombuffer(padded.buffers()[1], np.int64)[padded.offset:]
    data = np.frombuffer(padded.buffers()[2], np.uint8)
    return data[int(offsets[0]):int(offsets[0]) + 32 * len(padded)].reshape(-1, 32)


def _exact(records: pa.Table, names: tuple[str, str, str]) -> pa.Array:
    return pc.binary_join_element_wise(*(records.column(c) for c in names), "\x1f")


def seal_records(records: pa.Table, key: SealKey) -> pa.Table:
    """Records (loader columns, as a feed unit holds them, plus ``fold``) as sealed rows
    (:data:`SEALED_SCHEMA`). The tags and the keys of each record are computed for the
    whole batch at once; each record's number and details are sealed with AES-GCM (a
    random 96-bit nonce each), ~3 µs a record."""
    aead = _aead()
    n = records.num_rows
    if not n:
        return SEALED_SCHEMA.empty_table()
    folds = _matrix(records.column("fold"))
    tags = key.tags(folds)
    number_keys = key._macs("number", folds).tobytes()
    exact = _matrix(_exact(records, ("document_number", "document_type", "issuing_country")))
    details_keys = key._macs("details", exact).tobytes()
    rids = key._macs("rid", exact).tobytes()
    details = [records.column(c).cast(pa.string()).to_pylist() for c in _DETAILS]
    nonces = os.urandom(2 * _NONCE * n)
    encode = msgspec.json.encode
    sealed_numbers, sealed_details = [], []
    for i, (number, *fields) in enumerate(zip(
            records.column("document_number").to_pylist(), *details, strict=True)):
        k, at = 16 * i, 2 * _NONCE * i
        sealed_numbers.append(_seal(aead, number_keys[k:k + 16], nonces[at:at + _NONCE],
                                    number.encode()))
        sealed_details.append(_seal(aead, details_keys[k:k + 16],
                                    nonces[at + _NONCE:at + 2 * _NONCE], encode(fields)))
    return pa.table({"rid": pa.FixedSizeBinaryArray.from_buffers(
                         pa.binary(16), n, [None, pa.py_buffer(rids)]),
                     "tag": pa.array(tags),
                     "doc_type": records.column("document_type"),
                     "country": records.column("issuing_country"),
                     "review_date": records.column("review_date").cast(pa.date32()),
                     "number": pa.array(sealed_numbers, pa.binary()),
                     "details": pa.array(sealed_details, pa.binary())},
                    schema=SEALED_SCHEMA)


def sealed_rids(keys: pa.Table, key: SealKey) -> pa.Table:
    """The ``rid`` of each (number, doc_type, country) of ``keys`` (a delta's
    withdrawals)."""
    n = keys.num_rows
    rids = key._macs("rid", _matrix(_exact(keys, ("number", "doc_type", "country")))) \
        .tobytes() if n else b""
    return pa.table({"rid": pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(rids)])}, schema=RIDS_SCHEMA)


#: The alphabets of a list, as sets of characters (what :func:`sltd.alphabets.carries`
#: says of each issuer and position), computed by DuckDB over the active records.
ALPHABETS_SQL = f"""
WITH chars AS (
    SELECT country, doc_type, p AS position, substr(number, p + 1, 1) AS ch
    FROM records, unnest(range(length(number))) AS t(p)),
counts AS (
    SELECT country, doc_type, position, ch, count(*) AS n
    FROM chars GROUP BY country, doc_type, position, ch),
totals AS (
    SELECT *, sum(n) OVER (PARTITION BY country, doc_type, position) AS total
    FROM counts)
SELECT country, doc_type, position::INTEGER AS position,
       string_agg(ch, '' ORDER BY ch) AS chars
FROM totals WHERE n >= {MIN_COUNT} AND n >= total * {MIN_SHARE}
GROUP BY country, doc_type, position ORDER BY country, doc_type, position"""


def is_sealed_replica(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the index file of ``con`` is a sealed replica."""
    try:
        return bool(store.get_meta(con, SEALED_FEED))
    except duckdb.Error:
        return False


@dataclasses.dataclass(frozen=True)
class _Part:
    """Rows of a sealed list in memory, sorted by tag (memoryviews: indexing one gives a
    Python int or slice, ~10x cheaper than a NumPy scalar): the tag, the record id, the
    type and country, where each sealed number starts in ``data``; and the review days
    of the rows that have one."""

    keys: KeySet
    tags: memoryview
    ids: memoryview
    doc_types: _Codes
    countries: _Codes
    offsets: memoryview
    data: memoryview
    reviews: Reviews
    max_id: int

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class _SealedList:
    """One version of a sealed replica's list, in memory: a base part, the rows added
    since it was read (a sync reads only those), and the ids withdrawn since (replaced
    rows included). Immutable: a sync makes a new one, swapped in with one assignment."""

    version: ListVersion
    parts: tuple[_Part, ...]
    withdrawn: frozenset[int]
    count: int
    alphabets: dict[tuple[str, str, int], str]
    _lapsed: dict[int, frozenset[int]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return self.count

    def lapsed(self, day: int) -> frozenset[int]:
        """The ids whose review day is ``day`` or earlier (cached for the day)."""
        found = self._lapsed.get(day)
        if found is None:
            found = frozenset().union(*(p.reviews.lapsed(day) for p in self.parts))
            self._lapsed.clear()
            self._lapsed[day] = found
        return found


class _Codes:
    """A column of few distinct strings (types, countries), dictionary-encoded: an int
    index per row (10M rows: 20-40 MB, against ~600 MB as Python strings)."""

    __slots__ = ("indices", "names")

    def __init__(self, column: pa.ChunkedArray):
        encoded = column.combine_chunks().dictionary_encode() if column.num_chunks else \
            pa.array([], pa.string()).dictionary_encode()
        self.indices = encoded.indices.to_numpy(zero_copy_only=False).data
        self.names: list[str] = encoded.dictionary.to_pylist()

    def __getitem__(self, i: int) -> str:
        return self.names[self.indices[i]]


def _binary_buffers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    arr = column.combine_chunks().cast(pa.large_binary()) if column.num_chunks else \
        pa.array([], pa.large_binary())
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None \
        else np.zeros(0, np.uint8)
    return offsets, data


def _read_part(con: duckdb.DuckDBPyConnection, after_id: int = 0) -> _Part:
    """The rows with a record id above ``after_id``."""
    table = con.sql("""SELECT record_id, tag, doc_type, country, review_date, number
        FROM sealed_records WHERE record_id > $after ORDER BY tag""",
                    params={"after": after_id}).to_arrow_table()
    tags = table.column("tag").to_numpy().astype(np.int64)
    keys = KeySet(tags)
    keys.prepare()
    ids = table.column("record_id").to_numpy().astype(np.int64)
    offsets, data = _binary_buffers(table.column("number"))
    dated = pc.is_valid(table.column("review_date"))
    reviews = Reviews(ids[dated.to_numpy(zero_copy_only=False)],
                      table.column("review_date").filter(dated).cast(pa.int32())
                      .to_numpy().astype(np.int64), until=2**40)
    return _Part(keys, tags.data, ids.data, _Codes(table.column("doc_type")),
                 _Codes(table.column("country")), offsets.data, data.data, reviews,
                 int(ids.max()) if len(ids) else after_id)


def _alphabets(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, int], str]:
    return {(c, t, p): s for c, t, p, s in con.execute(
        "SELECT country, doc_type, position, chars FROM sealed_alphabets").fetchall()}


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM sealed_records").fetchall()[0][0])


def _read_list(con: duckdb.DuckDBPyConnection) -> _SealedList:
    """The whole list, read anew: one part."""
    con.begin()
    try:
        part = _read_part(con)
        return _SealedList(store.current_version(con), (part,), frozenset(), len(part),
                           _alphabets(con))
    finally:
        con.commit()


def _after_sync(con: duckdb.DuckDBPyConnection, old: _SealedList, gone: Sequence[int]
                ) -> _SealedList:
    """The list after a sync that removed the rows ``gone`` and added rows above the
    base's ids: the base kept, the rows since read again (few), the withdrawn grown; or,
    once those outgrow a sixteenth of the base, the whole list read anew."""
    base = old.parts[0]
    withdrawn = old.withdrawn | frozenset(gone)
    con.begin()
    try:
        count = _count(con)
        if count - len(base) + 2 * len(withdrawn) > len(base) // 16:
            part = _read_part(con)
            return _SealedList(store.current_version(con), (part,), frozenset(), count,
                               _alphabets(con))
        since = _read_part(con, base.max_id)
        return _SealedList(store.current_version(con), (base, since), withdrawn, count,
                           _alphabets(con))
    finally:
        con.commit()


class _Check:
    """The key-snapshot face of a sealed list for one check (what
    :class:`sltd.search.Search` reads): rows are opened only for folds the check asks
    about, and remembered for the check's expiry dates."""

    def __init__(self, lst: _SealedList, key: SealKey,
                 sealed_details: Callable[[Sequence[int]], dict[int, bytes]]):
        self._list, self._key, self._sealed_details = lst, key, sealed_details
        self.version = lst.version
        #: The rows this check opened: record id -> (number, doc_type, country).
        self.opened: dict[int, tuple[str, str, str]] = {}

    def _rows_of(self, tag: int, folded: bytes) -> list[tuple[int, str, str, str]]:
        out: list[tuple[int, str, str, str]] = []
        opener = None
        withdrawn = self._list.withdrawn
        for part in self._list.parts:
            i = part.keys.locate(tag)
            if i < 0:
                continue
            if opener is None:
                opener = _aead()(self._key.number_key(folded))
                fold = folded.decode("ascii")
            tags, offsets, data = part.tags, part.offsets, part.data
            while i < len(tags) and tags[i] == tag:
                record_id = part.ids[i]
                if record_id not in withdrawn:
                    plain = _open_sealed(opener, data[offsets[i]:offsets[i + 1]])
                    if plain is not None and fold_number(number := plain.decode()) == fold:
                        row = (record_id, number, part.doc_types[i], part.countries[i])
                        self.opened[record_id] = row[1:]
                        out.append(row)
                i += 1
        return out

    def lookup(self, folded: bytes) -> list[tuple[int, str, str, str]]:
        return self._rows_of(self._key.tag(folded), folded)

    def present(self, tags: np.ndarray, country: str | None = None) -> np.ndarray:
        """Mask of the tags listed (anywhere, or in ``country``): a superset (withdrawn
        rows count), which costs a lookup, never a hit."""
        found = np.zeros(len(tags), bool)
        for part in self._list.parts:
            here = part.keys.contains_any(tags)
            if country is not None and here.any():
                for j in np.flatnonzero(here).tolist():
                    tag = int(tags[j])
                    i = part.keys.locate(tag)
                    ok = False
                    while not ok and i < len(part.tags) and part.tags[i] == tag:
                        ok = part.countries[i] == country
                        i += 1
                    here[j] = ok
            found |= here
        return found

    def rows(self, folds: Sequence[str], hashes: Sequence[int] | None = None
             ) -> list[tuple[int, str, str, str]]:
        out = []
        for fold in folds:
            folded = fold.encode("ascii")
            out += self._rows_of(self._key.tag(folded), folded)
        return out

    def lapsed(self, at: float) -> frozenset[int]:
        """The ids of this list's records whose review date has come at ``at``."""
        return self._list.lapsed(day_of(at))

    def carries(self, country: str, doc_type: str, position: int, ch: str) -> bool:
        return ch in self._list.alphabets.get((country, doc_type, position), "")

    def expiries(self, record_ids: Sequence[int]) -> dict[int, dt.date | None]:
        """The expiry dates of records this check opened (their details opened with
        the key of their number, type and country)."""
        out: dict[int, dt.date | None] = {}
        for record_id, details in _details(self._key, self._sealed_details(record_ids),
                                           self.opened).items():
            out[record_id] = dt.date.fromisoformat(details["date_of_expiry"]) \
                if details.get("date_of_expiry") else None
        return out


def _details(key: SealKey, sealed: dict[int, bytes],
             opened: dict[int, tuple[str, str, str]]) -> dict[int, dict[str, Any]]:
    aead, out = _aead(), {}
    for record_id, blob in sealed.items():
        if record_id not in opened:
            continue
        plain = _open_sealed(aead(key.details_key(*opened[record_id])), blob)
        if plain is not None:
            out[record_id] = dict(zip(_DETAILS, msgspec.json.decode(plain), strict=True))
    return out


class _Holder:
    """What :class:`sltd.search.Search` asks of its keys: the snapshot and the lapsed."""

    def __init__(self, replica: SealedReplica):
        self._replica = replica

    def snapshot(self) -> Any:
        return self._replica._check_view()

    def lapsed(self, at: float) -> frozenset[int]:
        return self._replica._check_view().lapsed(at)


class SealedReplica:
    """A sealed replica (:mod:`sltd.sealed`): checks (exact, partial, near misses, with
    the plain replica's answers), reveals with their cases and alerts, the outbox, its
    feed's sync. Made by
    :func:`sltd.feed.init_replica` with a seal key; opened by :func:`open_sealed`.

    Thread-safe for checks; one sync at a time.
    """

    def __init__(self, path: str | os.PathLike[str], *, seal_key: str | os.PathLike[str]
                 | None = None, clock: Clock | None = None, create: bool = False,
                 wait: float | None = None):
        from sltd.search import HitIds, Search

        self.path = os.fspath(path)
        self.clock = clock or SystemClock()
        self._timestamp = timestamp_of(self.clock)
        self._db = Database.open(self.path, create=create, wait=wait)
        try:
            con = self._db.cursor()
            if create:
                with self._db.write() as wcon:
                    store.create_schema(wcon, self.clock.now())
                    wcon.execute(_SEALED_TABLES)
            elif not is_sealed_replica(con):
                raise IndexStateError(f"{self.path} is not a sealed replica", path=self.path)
            where = seal_key or store.get_meta(con, SEAL_KEY_PATH)
            if not where:
                raise FeedError("a sealed replica needs its seal key (--seal-key)")
            self.key = read_seal_key(where)
            self.seal_key_path = os.fspath(Path(where).resolve())
            self._audit = AuditLog(self._db)
            self.hit_ids = HitIds(bytes.fromhex(store.get_meta(con, "hit_secret") or ""))
            self.home_ncb = store.get_meta(con, "home_ncb") or ""
            self._list = _read_list(con)
            self._search = Search(_Holder(self), self.hit_ids, hashes=self.key.tags)  # type: ignore[arg-type]
        except BaseException:
            self._db.release()
            raise
        self._closed = False

    # --- what feed.sync reads of a replica

    @property
    def replica_of(self) -> str | None:
        return store.get_meta(self._db.cursor(), SEALED_FEED)

    @property
    def list_version(self) -> ListVersion:
        return self._list.version

    def __len__(self) -> int:
        return len(self._list)

    def set_home_ncb(self, ncb: str, *, officer: str = "") -> None:
        """Record the NCB this replica belongs to: the searching NCB of its checks
        (audited)."""
        from sltd.workflow import ncb_code

        code = ncb_code(ncb, "ncb")
        now = self.clock.now()
        with self._db.write(on_rollback=self._audit.invalidate) as con:
            old = store.get_meta(con, "home_ncb")
            store.set_meta(con, "home_ncb", code)
            self._audit.write(con, now, "setting", actor=officer or None,
                              subject="home_ncb", result=f"{old or '(unset)'} -> {code}")
        self.home_ncb = code

    def _searching(self, ncb: str | None) -> str:
        return _ncb(ncb, "ncb") if ncb else self.home_ncb

    def _check_view(self) -> _Check:
        return _Check(self._list, self.key, self._sealed_details)

    def _sealed_details(self, record_ids: Sequence[int]) -> dict[int, bytes]:
        if not record_ids:
            return {}
        return dict(self._db.cursor().execute(
            "SELECT record_id, details FROM sealed_records WHERE record_id = ANY(?)",
            [list(record_ids)]).fetchall())

    # --- checks

    def check(self, number: str, doc_type: str | None = None, country: str | None = None,
              *, exact_only: bool = False, ncb: str | None = None, officer: str = "",
              expiry: dt.date | str | None = None, leads: bool = False) -> list[Hit]:
        """As :meth:`sltd.Index.check`, from the sealed list."""
        who = self._searching(ncb)
        at = self._timestamp()
        view = self._check_view()
        reading = TYPED if expiry is None else Reading(expiry=_expiry(expiry))
        hits = self._search.check(number, doc_type, country, ncb=who, now=at,
                                  exact_only=exact_only, reading=reading, leads=leads,
                                  expiries=view.expiries, snapshot=view,  # type: ignore[arg-type]
                                  lapsed=view.lapsed)
        self._audit.record_check(at, officer, who, number, doc_type, country,
                                 _summary(hits), view.version.version)
        return hits

    def check_mrz(self, mrz: str | Sequence[str], *, exact_only: bool = False,
                  ncb: str | None = None, officer: str = "", leads: bool = False
                  ) -> MRZCheck:
        """As :meth:`sltd.Index.check_mrz`, from the sealed list."""
        from sltd.mrz import MRZCheck, parse_mrz

        read = parse_mrz(mrz)
        who = self._searching(ncb)
        at = self._timestamp()
        view = self._check_view()
        hits = self._search.check_mrz(read, ncb=who, now=at, exact_only=exact_only,
                                      leads=leads, expiries=view.expiries,
                                      snapshot=view,  # type: ignore[arg-type]
                                      lapsed=view.lapsed)
        self._audit.record_check(at, officer, who, read.number, read.doc_type,
                                 read.country, _summary(hits), view.version.version)
        return MRZCheck(read, hits)

    @property
    def validation_window(self) -> dt.timedelta:
        """How long the owner NCB has to confirm a hit (as :attr:`sltd.Index.validation_window`)."""
        minutes = store.get_meta(self._db.cursor(), "validation_window_minutes")
        return dt.timedelta(minutes=float(minutes or workflow.DEFAULT_WINDOW_MINUTES))

    def reveal(self, hit_id: str, *, number: str, doc_type: str, country: str,
               officer: str, ncb: str | None = None) -> HitDetails:
        """Open the second-level details of a hit this replica gave, with the key of its
        number, type and country (the hit's: what the officer has in hand), and its case,
        as :meth:`sltd.Index.reveal` does: the three alerts queued in this replica's
        outbox, the validation deadline, the audit entry.

        Raises:
            HitIdError: forged, another NCB's, stale; or the record is gone, or is not
                this number, type and country.
            ValidationError: unknown NCB or no officer.
        """
        who = self._searching(ncb)
        if not who:
            raise ValidationError("no NCB given and the replica has no home NCB: give the "
                                  "NCB the hit id was issued to (--ncb)", field="ncb",
                                  value="")
        key = (canonical_number(number), codes.doc_type_code(doc_type),
               codes.country_code(country))

        def record_of(con: duckdb.DuckDBPyConnection, record_id: int
                      ) -> dict[str, Any] | None:
            row = con.execute("SELECT details FROM sealed_records WHERE record_id = ?",
                              [record_id]).fetchall()
            found = _details(self.key, {record_id: row[0][0]} if row else {},
                             {record_id: key})
            if record_id not in found:
                return None
            d = found[record_id]
            return {"record_id": record_id, "number": key[0], "doc_type": key[1],
                    "country": key[2], **d, **{
                        f: dt.date.fromisoformat(d[f]) if d[f] else None
                        for f in ("date_of_loss", "date_of_issue", "date_of_expiry")}}

        return workflow.reveal(self._db, self._audit, self.hit_ids, hit_id,
                               officer=officer, ncb=who, now=self.clock.now(),
                               window=self.validation_window, record_of=record_of)

    def confirm(self, case_id: str, *, officer: str, reason: str | None = None) -> HitCase:
        """As :meth:`sltd.Index.confirm`."""
        return workflow.decide(self._db, self._audit, case_id, confirmed=True,
                               officer=officer, reason=reason, now=self.clock.now())

    def reject(self, case_id: str, *, officer: str, reason: str) -> HitCase:
        """As :meth:`sltd.Index.reject`."""
        return workflow.decide(self._db, self._audit, case_id, confirmed=False,
                               officer=officer, reason=reason, now=self.clock.now())

    def cases(self, states: Sequence[str] | None = None) -> list[HitCase]:
        """As :meth:`sltd.Index.cases`."""
        return workflow.list_cases(self._db.cursor(),
                                   [str(s) for s in states] if states else None)

    def escalate_overdue(self) -> list[HitCase]:
        """As :meth:`sltd.Index.escalate_overdue`."""
        return workflow.escalate(self._db, self._audit, self.clock.now())

    def deliver_alerts(self, router: alerts.Router, *, limit: int = 1000
                       ) -> alerts.DeliveryReport:
        """As :meth:`sltd.Index.deliver_alerts`: the outbox, delivered when a sink is
        reachable, with the alerts' original times."""
        return alerts.deliver(self._db, self._audit, router, self.clock.now(), limit=limit)

    def alerts(self, *, case_id: str | None = None, undelivered: bool = False
               ) -> list[Alert]:
        """As :meth:`sltd.Index.alerts`."""
        return alerts.list_alerts(self._db.cursor(), case_id=case_id,
                                  undelivered=undelivered)

    # --- the feed

    def apply(self, unit: _Unit, at_version: int) -> None:
        """Apply a verified sealed unit in one transaction, onto ``at_version``: its
        withdrawals and its records (replacing those with the same rid), its alphabets,
        its list version; then the in-memory list takes the rows it added and drops
        those it removed (:func:`_after_sync`)."""
        files = unit.manifest["files"]
        name = "sealed.parquet" if "sealed.parquet" in files else "sealed-upserts.parquet"
        records = pq.read_table(unit.path / name)
        gone = pq.read_table(unit.path / "sealed-withdrawals.parquet") \
            if "sealed-withdrawals.parquet" in files else None
        alphabets = pq.read_table(unit.path / "alphabets.parquet")
        now = self.clock.now()
        with self._db.write(on_rollback=self._audit.invalidate) as con:
            current = store.current_version(con).version
            if current != at_version:
                raise FeedError(f"the list is at version {current}, not {at_version} as "
                                "the change expects (changed meanwhile); nothing applied")
            con.register("_sealed_in", records)
            removed: list[int] = []
            try:
                if gone is not None and gone.num_rows:
                    con.register("_sealed_gone", gone)
                    removed += [r[0] for r in con.execute(
                        "DELETE FROM sealed_records WHERE rid IN "
                        "(SELECT rid FROM _sealed_gone) RETURNING record_id").fetchall()]
                    con.unregister("_sealed_gone")
                removed += [r[0] for r in con.execute(
                    "DELETE FROM sealed_records WHERE rid IN (SELECT rid FROM _sealed_in) "
                    "RETURNING record_id").fetchall()]
                base = int(store.get_meta(con, "next_record_id") or 1)
                con.execute("""INSERT INTO sealed_records SELECT
                    $base + row_number() OVER () - 1, rid, tag, doc_type, country,
                    review_date, number, details FROM _sealed_in""", {"base": base})
                store.set_meta(con, "next_record_id", str(base + records.num_rows))
            finally:
                con.unregister("_sealed_in")
            con.execute("DELETE FROM sealed_alphabets")
            con.register("_alphabets_in", alphabets)
            con.execute("INSERT INTO sealed_alphabets SELECT * FROM _alphabets_in")
            con.unregister("_alphabets_in")
            version = unit.to_version
            store.new_version(con, version.committed_at or now, "sync",
                              f"feed {unit.manifest['feed_id']}", records.num_rows,
                              version.version)
            self._audit.write(con, now, "sync", actor=f"feed {unit.manifest['feed_id']}",
                              subject=unit.name,
                              result=f"{records.num_rows} sealed records, "
                                     f"{gone.num_rows if gone is not None else 0} "
                                     f"withdrawn; list version {version.version}")
        self._list = _after_sync(self._db.cursor(), self._list, removed)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._audit.close()
            self._db.release()

    def __enter__(self) -> SealedReplica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sealed(path: str | os.PathLike[str], *, seal_key: str | os.PathLike[str] | None
                = None, clock: Clock | None = None, wait: float | None = None
                ) -> SealedReplica:
    """Open a sealed replica (its seal key: ``seal_key``, else the file it was made
    with).

    Raises:
        IndexStateError: the file is not a sealed replica.
        FeedError: the seal key cannot be read.
    """
    return SealedReplica(path, seal_key=seal_key, clock=clock, wait=wait)
