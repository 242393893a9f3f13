"""First-level search: exact and partial hits, near misses, and the hit ids they carry.

A query's number is canonicalized and folded (:mod:`sltd.normalize`). The folded key's
hash is looked up in the in-memory :class:`~sltd.keyset.KeySet`; when it is absent, and
near-miss search is off or finds no variant either, the answer is "not listed" without
touching DuckDB. Otherwise DuckDB returns the candidate rows by folded key (one indexed
column) and each is classified:

- **exact**: number, type and country all equal (type and country given);
- **partial**: number equal, type or country different or not given;
- **near**: folded key equal (any number of OCR confusions such as O/0, I/1, B/8) or one
  edit apart in folded space (one substitution, insertion, deletion, or transposition of
  neighbours). Near misses are only reported for the queried country (and type, if given):
  a one-character neighbour in another country is noise, not a lead.

Near-miss search probes the key set with every edit-1 variant of the folded query (a few
hundred hashes, one vectorized ``searchsorted``) instead of scanning records.

A hit id is a token (record id, issue time, searching NCB) signed with keyed BLAKE2b
under a per-index secret (:class:`HitIds`): minting one costs no write on the hot path,
and it cannot be forged to fish for a record by number or reused by another NCB.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import operator
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd import codes
from sltd.errors import HitIdError
from sltd.keyhash import matrix_hashes
from sltd.keyset import Keys, KeySnapshot
from sltd.model import TYPED, DocType, ErrorClass, Evidence, Hit, MatchKind, Reading
from sltd.mrz import check_digit
from sltd.normalize import CONFUSIONS, MAX_LENGTH, canonical_number, fold_bytes, fold_number

if TYPE_CHECKING:
    from sltd.mrz import MRZ

#: Alphabet of folded keys: what a variant character may be.
FOLDED_ALPHABET = "".join(sorted(set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") - set(CONFUSIONS)))


_ALPHABET_BYTES = np.frombuffer(FOLDED_ALPHABET.encode("ascii"), np.uint8)


@functools.lru_cache(maxsize=MAX_LENGTH + 1)
def _edit_index(n: int) -> np.ndarray:
    """For a key of length ``n``: a (variants, width) matrix of indices into the key's
    bytes followed by :data:`FOLDED_ALPHABET` and a zero, one row per single edit
    (deletions, neighbour transpositions, substitutions, insertions), zero-padded to
    ``width`` (the longest variant rounded up to 8 bytes, as the key hash reads words)."""
    alphabet = range(n, n + len(FOLDED_ALPHABET))
    pos = list(range(n))
    rows = [pos[:i] + pos[i + 1:] for i in range(n)]
    rows += [pos[:i] + [i + 1, i] + pos[i + 2:] for i in range(n - 1)]
    rows += [pos[:i] + [c] + pos[i + 1:] for i in range(n) for c in alphabet]
    if n < MAX_LENGTH:
        rows += [pos[:i] + [c] + pos[i:] for i in range(n + 1) for c in alphabet]
    width = min(MAX_LENGTH, -(-(n + 1) // 8) * 8)
    out = np.full((len(rows), width), n + len(FOLDED_ALPHABET), np.intp)
    for r, p in enumerate(rows):
        out[r, :len(p)] = p
    return out


def edit1_matrix(folded: bytes) -> np.ndarray:
    """Every single edit of a folded key (see :func:`edit1_variants`) as a zero-padded
    uint8 matrix, one row per edit, built with one gather (~10 µs; repeats, and rows
    equal to the key itself, are left in: a probe masks them by hash).

    Example:
        >>> m = edit1_matrix(b"A1C")
        >>> m.shape[1], {b"1AC", b"AC", b"A1CX"} <= {bytes(r).rstrip(b"\\0") for r in m}
        (8, True)
    """
    src = np.concatenate([np.frombuffer(folded, np.uint8), _ALPHABET_BYTES,
                          np.zeros(1, np.uint8)])
    return src[_edit_index(len(folded))]


def edit1_variants(folded: str) -> list[str]:
    """Every folded key one edit away: deletions, neighbour transpositions, substitutions,
    insertions (over :data:`FOLDED_ALPHABET`), without the key itself.

    Example:
        >>> v = edit1_variants("A1")
        >>> "1A" in v and "A" in v and "A1X" in v and "A1" not in v
        True
    """
    out = {bytes(r).rstrip(b"\0").decode("ascii") for r in edit1_matrix(folded.encode())}
    out.discard(folded)
    return sorted(v for v in out if v)


def explain(query: str, listed: str) -> tuple[float, str]:
    """Score (0-100) and a plain explanation of how ``listed`` differs from ``query``.

    The score is rapidfuzz's normalized optimal-string-alignment similarity (a
    transposition counts as one edit); positions in the explanation are 1-based in the
    queried number.

    Example:
        >>> explain("X12045", "X12O45")[1]
        "'O' read as '0' at position 4"
        >>> explain("X12345", "X13245")[1]
        'characters 3-4 transposed'
    """
    from rapidfuzz.distance import OSA, Levenshtein  # on a near-miss candidate only:
    # 8 ms of every process's start otherwise

    score = OSA.normalized_similarity(query, listed) * 100.0
    if len(query) == len(listed):
        parts = _explain_same_length(query, listed)
    else:
        parts = []
        for op in Levenshtein.editops(query, listed):
            if op.tag == "replace":
                parts.append(_replaced(query[op.src_pos], listed[op.dest_pos], op.src_pos + 1))
            elif op.tag == "delete":
                parts.append(f"extra '{query[op.src_pos]}' at position {op.src_pos + 1}")
            else:
                parts.append(f"missing '{listed[op.dest_pos]}' before position "
                             f"{op.src_pos + 1}")
    return score, "; ".join(parts) or "same number"


_FOLD = str.maketrans(CONFUSIONS)


def _replaced(query_ch: str, listed_ch: str, pos: int) -> str:
    if query_ch.translate(_FOLD) == listed_ch.translate(_FOLD):
        return f"'{listed_ch}' read as '{query_ch}' at position {pos}"
    return f"'{query_ch}' at position {pos} where the record has '{listed_ch}'"


def _explain_same_length(query: str, listed: str) -> list[str]:
    diff = [i for i, (a, b) in enumerate(zip(query, listed, strict=True)) if a != b]
    parts: list[str] = []
    k = 0
    while k < len(diff):
        i = diff[k]
        if (k + 1 < len(diff) and diff[k + 1] == i + 1
                and query[i] == listed[i + 1] and query[i + 1] == listed[i]):
            parts.append(f"characters {i + 1}-{i + 2} transposed")
            k += 2
            continue
        parts.append(_replaced(query[i], listed[i], i + 1))
        k += 1
    return parts


# --- the matching rule ----------------------------------------------------------------------

#: Order of an answer: exact hits first, then partial, then near hits, then leads.
RANK = {MatchKind.EXACT: 0, MatchKind.PARTIAL: 1, MatchKind.NEAR: 2, MatchKind.LEAD: 3}


def error_class(query: str, listed: str) -> ErrorClass:
    """The reading error between a query and a listed number that near-miss search found
    for it (equal folds, or folds one edit apart).

    Example:
        >>> [str(error_class("X1O34", n)) for n in ("X1034", "X1035", "X0134", "X134",
        ...                                         "X10345")]
        ['ocr_confusion', 'substitution', 'transposition', 'insertion', 'deletion']
    """
    q, r = fold_number(query), fold_number(listed)
    if q == r:
        return ErrorClass.OCR_CONFUSION
    if len(q) > len(r):
        return ErrorClass.INSERTION
    if len(q) < len(r):
        return ErrorClass.DELETION
    diff = [i for i, (a, b) in enumerate(zip(q, r, strict=True)) if a != b]
    if len(diff) == 2 and diff[1] == diff[0] + 1 and q[diff[0]] == r[diff[1]] \
            and q[diff[1]] == r[diff[0]]:
        return ErrorClass.TRANSPOSITION
    return ErrorClass.SUBSTITUTION


#: Whether the listed numbers of a record's issuer carry a character at a position
#: (0-based) as part of their format (:meth:`sltd.keyset.KeySnapshot.carries`).
Carries = Callable[[int, str], bool]


def misreading(query: str, listed: str, carries: Carries | None) -> bool:
    """Whether a look-alike difference (equal folds) is evidence of a misreading: at some
    place where they differ, the issuer's numbers do not carry the query's character or
    the record's (without ``carries``, always)."""
    return carries is None or any(
        a != b and not (carries(i, a) and carries(i, b))
        for i, (a, b) in enumerate(zip(query, listed, strict=True)))


def near_tier(query: str, listed: str, reading: Reading, record_expiry: dt.date | None,
              carries: Carries | None = None
              ) -> tuple[MatchKind, ErrorClass, tuple[Evidence, ...]] | None:
    """The near-miss policy: whether a listed number that is not the query's is a near
    hit, a lead, or nothing, given what the query's channel says (``reading``), the
    record's expiry date and what its issuer's numbers carry (``carries``,
    :mod:`sltd.alphabets`).

    - Look-alike characters only (``O``/``0``...) where the issuer's numbers cannot carry
      one of the two (:func:`misreading`): a near hit (the query, or the record itself,
      was misread), unless the document's expiry date contradicts the record's and no
      failed MRZ digit points to the record: then a lead.
    - Look-alikes the issuer's numbers carry both of (``issuer_uses_both``): another
      valid number. Dropped when the MRZ's printed digit rules the record out; a near
      hit when a failed digit points to it; a lead when the digit verified but cannot
      tell them apart (``L``/``1`` and ``G``/``6`` never change it); typed, a lead
      promoted to a near hit when the document's expiry date equals the record's.
    - MRZ whose number digit verified: nothing (the reading is confirmed).
    - MRZ whose digit failed: a near hit if the listed number has the printed digit,
      else nothing (the MRZ's expiry date, compared with the record's, is evidence
      either way; it demotes nothing: a record's date may be wrong).
    - Typed (or no digit): a lead, promoted to a near hit when the document's expiry
      date equals the record's.

    Returns:
        (tier, error class, evidence), or None when the candidate is dropped.

    Example:
        >>> near_tier("X1234567", "X1234568", TYPED, None)[0]
        <MatchKind.LEAD: 'lead'>
        >>> near_tier("X1234567", "X1234568", Reading(expiry=dt.date(2030, 1, 1)),
        ...           dt.date(2030, 1, 1))[::2]
        (<MatchKind.NEAR: 'near'>, (<Evidence.EXPIRY_MATCHES: 'expiry_matches'>,))
        >>> near_tier("X12O4567", "X1204567", TYPED, None, lambda i, ch: True)[::2]
        (<MatchKind.LEAD: 'lead'>, (<Evidence.ISSUER_USES_BOTH: 'issuer_uses_both'>,))
    """
    error = error_class(query, listed)
    dated = reading.expiry is not None and record_expiry is not None
    expiry = () if not dated else (Evidence.EXPIRY_MATCHES,) \
        if reading.expiry == record_expiry else (Evidence.EXPIRY_DIFFERS,)
    failed_digit = reading.check_digit is not None and not reading.verified
    if error is ErrorClass.OCR_CONFUSION:
        plain = misreading(query, listed, carries)
        look = Evidence.LOOK_ALIKE if plain else Evidence.ISSUER_USES_BOTH
        consistent = reading.check_digit is not None \
            and check_digit(listed) == reading.check_digit
        digit = (Evidence.CHECK_DIGIT_CONSISTENT,) if consistent else ()
        if failed_digit and consistent:
            return MatchKind.NEAR, error, (look, *digit, *expiry)
        if plain:
            kind = MatchKind.LEAD if Evidence.EXPIRY_DIFFERS in expiry else MatchKind.NEAR
            return kind, error, (look, *expiry)
        if reading.check_digit is not None and not consistent:
            return None  # the printed digit rules the record out
        if reading.verified:  # nothing points to the record: same-day neighbours share
            return MatchKind.LEAD, error, (look, *digit, *expiry)  # the expiry date
        kind = MatchKind.NEAR if Evidence.EXPIRY_MATCHES in expiry else MatchKind.LEAD
        return kind, error, (look, *digit, *expiry)
    if reading.check_digit is not None:
        if reading.verified or check_digit(listed) != reading.check_digit:
            return None
        return MatchKind.NEAR, error, (Evidence.CHECK_DIGIT_CONSISTENT, *expiry)
    kind = MatchKind.NEAR if Evidence.EXPIRY_MATCHES in expiry else MatchKind.LEAD
    return kind, error, expiry


def classify(query: str, qtype: str | None, qcountry: str | None, listed: str,
             rtype: str, rcountry: str, *, exact_only: bool = False
             ) -> tuple[MatchKind, float, str | None] | None:
    """How a candidate record (same folded key, or one edit away) matches a query.

    The one rule shared by single checks and bulk screening: same number -> exact when
    type and country are both given and equal, else partial; another number -> near, but
    only in the queried country and type (when given) and unless ``exact_only``.

    Returns:
        (kind, score, explanation), or None when the candidate is no hit.

    Example:
        >>> classify("X1234567", "P", "FRA", "X1234567", "P", "DEU")
        (<MatchKind.PARTIAL: 'partial'>, 100.0, None)
        >>> classify("X1Z34567", "P", "FRA", "X1234567", "P", "DEU") is None
        True
    """
    if listed == query:
        exact = qtype == rtype and qcountry == rcountry
        return (MatchKind.EXACT if exact else MatchKind.PARTIAL), 100.0, None
    if exact_only or (qcountry is not None and rcountry != qcountry) or (
            qtype is not None and rtype != qtype):
        return None
    score, why = explain(query, listed)
    return MatchKind.NEAR, score, why


def rank_key(kind: MatchKind, score: float, number: str, country: str, doc_type: str
             ) -> tuple[int, float, str, str, str]:
    """Sort key of hits: kind, then best score, then the record's key (deterministic)."""
    return RANK[kind], -score, number, country, doc_type


def classify_table(pairs: pa.Table, *, exact_only: bool = False) -> pa.Table:
    """:func:`classify` over a table of (query, candidate record) pairs, for screening.

    ``pairs`` has the query's ``number, type, country`` and the record's
    ``record_number, record_type, record_country``. Same-number pairs (almost all of a
    manifest's candidates) are classified column-wise; the few others go through
    :func:`classify` one by one for their score and explanation. Returns the pairs that
    are hits with ``match``, ``score`` and ``explanation`` added, in :func:`rank_key`
    order within each query ``row``.

    Example:
        >>> t = pa.table({"row": [1, 1], "number": ["X12345", "X12345"],
        ...               "type": ["P", "P"], "country": ["FRA", "FRA"],
        ...               "record_number": ["X12345", "X12354"], "record_type": ["P", "P"],
        ...               "record_country": ["DEU", "FRA"]})
        >>> classify_table(t).select(["match", "score", "explanation"]).to_pylist()[1]
        {'match': 'near', 'score': 83.33333333333334, 'explanation': 'characters 5-6 transposed'}
    """
    same = pc.equal(pairs["number"], pairs["record_number"]).to_numpy(zero_copy_only=False)
    exact = pc.fill_null(pc.and_(pc.equal(pairs["type"], pairs["record_type"]),
                                 pc.equal(pairs["country"], pairs["record_country"])), False)
    n = pairs.num_rows
    kind = np.full(n, None, dtype=object)
    kind[same] = np.where(exact.to_numpy(zero_copy_only=False)[same], MatchKind.EXACT.value,
                          MatchKind.PARTIAL.value)
    score = np.where(same, 100.0, np.nan)
    why: list[str | None] = [None] * n
    keep = same.copy()
    if not exact_only:
        others = np.flatnonzero(~same)
        cols = [pairs[c].take(pa.array(others)).to_pylist() for c in (
            "number", "type", "country", "record_number", "record_type", "record_country")]
        for i, args in zip(others.tolist(), zip(*cols, strict=True), strict=True):
            match = classify(*args)
            if match is not None:
                kind[i], score[i], why[i] = match[0].value, match[1], match[2]
                keep[i] = True
    hits = pairs.append_column("match", pa.array(kind, pa.string())) \
        .append_column("score", pa.array(score, pa.float64())) \
        .append_column("explanation", pa.array(why, pa.string())) \
        .append_column("_rank", pa.array(
            np.select([kind == MatchKind.EXACT.value, kind == MatchKind.PARTIAL.value],
                      [0, 1], 2), pa.int8()))
    hits = hits.filter(pa.array(keep)).sort_by([
        ("row", "ascending"), ("_rank", "ascending"), ("score", "descending"),
        ("record_number", "ascending"), ("record_country", "ascending"),
        ("record_type", "ascending")])
    return hits.drop_columns(["_rank"])


# --- hit ids ------------------------------------------------------------------------------

_TOKEN = struct.Struct(">QI")
_blake2b = hashlib.blake2b
_MAC_BYTES = 10
_TOKEN_BYTES = _TOKEN.size + _MAC_BYTES
_ID_CHARS = 1 + 2 * _TOKEN_BYTES  # "h" and the token in hex
#: How long a hit id from a check can be revealed.
HIT_ID_LIFETIME = dt.timedelta(minutes=30)


@dataclasses.dataclass(frozen=True)
class HitToken:
    """What a verified hit id says: which record, and when it was issued."""

    record_id: int
    issued_at: dt.datetime


class HitIds:
    """Mints and verifies the hit ids of one index: tokens (record id, issue time) signed
    with keyed BLAKE2b and bound to the searching NCB, under the index's secret. Minting
    costs no write; an id cannot be forged to fish for a record, nor revealed by another
    NCB.

    Example:
        >>> ids = HitIds(b"k")
        >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        >>> h = ids.mint(42, t.timestamp(), "FRA")
        >>> ids.verify(h, "FRA", now=t).record_id
        42
        >>> ids.mint_many([42, 7], t.timestamp(), "FRA").to_pylist() == [
        ...     h, ids.mint(7, t.timestamp(), "FRA")]
        True
    """

    def __init__(self, secret: bytes, *, lifetime: dt.timedelta = HIT_ID_LIFETIME):
        self._secret = secret
        self.lifetime = lifetime

    def _mac(self, payload: bytes, ncb: str) -> bytes:
        # Keyed BLAKE2b (RFC 7693's MAC mode): 0.9 µs against 2.2 µs for HMAC-SHA256,
        # which hit ids used until this release (ids minted before an upgrade are refused
        # as not issued here; they live 30 minutes).
        return _blake2b(payload + ncb.encode(), key=self._secret,
                        digest_size=_MAC_BYTES).digest()

    def mint(self, record_id: int, issued_at: float, ncb: str) -> str:
        """A hit id for ``record_id``, bound to ``ncb`` and its issue time (seconds since
        the epoch, as :meth:`sltd.clock.SystemClock.timestamp` gives it): "h" and the
        hexadecimal token (record id, issue time, MAC): 45 characters, case-insensitive,
        ~1.2 µs (a table-driven base32 in Python cost 3.6 µs; the stdlib's, 5 µs)."""
        payload = _TOKEN.pack(record_id, int(issued_at))
        return "h" + (payload + self._mac(payload, ncb)).hex()

    def mint_many(self, record_ids: Sequence[int], issued_at: float, ncb: str
                  ) -> pa.Array:
        """:meth:`mint` for many records at once (screening), as an Arrow string array:
        the tokens are hex-encoded together (each 22 bytes, so 44 characters) and "h"
        is put before each in NumPy. A test pins this to :meth:`mint`."""
        ts = int(issued_at)
        pack, mac = _TOKEN.pack, self._mac
        tokens = bytearray()
        for record_id in record_ids:
            payload = pack(record_id, ts)
            tokens += payload
            tokens += mac(payload, ncb)
        n = len(tokens) // _TOKEN_BYTES
        out = np.empty((n, _ID_CHARS), np.uint8)
        out[:, 0] = ord("h")
        out[:, 1:] = np.frombuffer(tokens.hex().encode("ascii"), np.uint8).reshape(
            n, _ID_CHARS - 1)
        return pa.StringArray.from_buffers(n, pa.py_buffer(
            np.arange(0, _ID_CHARS * n + 1, _ID_CHARS, dtype=np.int32)), pa.py_buffer(out))

    def verify(self, hit_id: str, ncb: str, *, now: dt.datetime) -> HitToken:
        """The token of ``hit_id`` if it was minted here for ``ncb``, less than
        :attr:`lifetime` ago and not in the future.

        Raises:
            HitIdError: saying which of those it is not, and what to do.
        """
        text = str(hit_id).strip().lower()
        token = self._open(text, ncb)
        if token is None:
            if ncb and self._open(text, "") is not None:
                raise HitIdError(
                    f"hit id {hit_id!r} was issued to a check made without a searching NCB "
                    "(no --ncb and no home NCB), so no NCB can reveal it: check again with "
                    f"--ncb {ncb}, or set the index's home NCB with `sltd init --ncb CODE`",
                    hit_id=str(hit_id))
            raise HitIdError(f"hit id {hit_id!r} was not issued to NCB {ncb or '(none)'} by "
                             "this index (mistyped, forged, or from another NCB's check): "
                             "check the document again", hit_id=str(hit_id))
        if token.issued_at > now:
            raise HitIdError(f"hit id {hit_id!r} was issued in the future "
                             f"({token.issued_at:%Y-%m-%d %H:%M:%S} UTC): refused; check "
                             "the document again", hit_id=str(hit_id))
        if now - token.issued_at > self.lifetime:
            raise HitIdError(f"hit id {hit_id!r} is older than {self.lifetime} and can no "
                             "longer be revealed: check the document again",
                             hit_id=str(hit_id))
        return token

    def _open(self, text: str, ncb: str) -> HitToken | None:
        if len(text) != _ID_CHARS or not text.startswith("h"):
            return None
        try:
            raw = bytes.fromhex(text[1:])
        except ValueError:
            return None
        payload, mac = raw[: _TOKEN.size], raw[_TOKEN.size :]
        if not hmac.compare_digest(mac, self._mac(payload, ncb)):
            return None
        record_id, ts = _TOKEN.unpack(payload)
        return HitToken(record_id, dt.datetime.fromtimestamp(ts, dt.UTC))


# --- first-level search -------------------------------------------------------------------

#: Most hits one check returns (exact first, then partial, then near by score).
MAX_HITS = 20

#: Gives the expiry dates of records by id (those without one are left out or None).
Expiries = Callable[[Sequence[int]], dict[int, dt.date | None]]
#: The ids of the records whose review date has come at a time (seconds since 1970).
Lapsed = Callable[[float], frozenset[int]]

_DOC_TYPES = {t.value: t for t in DocType}  # DocType(code) goes through EnumMeta: ~0.5 µs
_first = operator.itemgetter(0)

# Type and country validation runs on every check (a bad value is an error, even on a
# miss); the few distinct spellings a border system sends are cached.
_doc_type = functools.lru_cache(maxsize=4096)(codes.doc_type_code)
_country = functools.lru_cache(maxsize=4096)(codes.country_code)

#: Variants probed per NumPy call. NumPy releases the GIL for loops over 500 elements;
#: a 9-character query has ~510 variants, so with several threads checking, each of the
#: probe's NumPy calls handed the GIL over (28-33 context switches a check at 4 threads,
#: which made 4 threads slower than 1). At most 500 keeps a check's probe in one slice.
_PROBE_CHUNK = 500

class Search:
    """First-level search of one document over an index's published key sets.

    Everything is answered from memory: a miss from the key sets, a hit from the
    first-level table (:class:`sltd.keyset.KeyTable`) of the same snapshot; candidates
    (the folded key, or listed folded keys one edit away in the queried country) are
    classified by :func:`classify`. DuckDB is not touched.

    Example:
        >>> from sltd.keyhash import key_hashes_from_strings
        >>> keys = Keys.of(pa.table({"record_id": [1], "number": ["X1234567"],
        ...     "doc_type": ["P"], "country": ["FRA"],
        ...     "fold_hash": key_hashes_from_strings(["X1234567"])}))
        >>> s = Search(keys, HitIds(b"k"))
        >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
        >>> [h.match.value for h in s.check("X1234567", "P", "FRA", ncb="DEU", now=t)]
        ['exact']
        >>> s.check("Y0000000", "P", "FRA", ncb="DEU", now=t)
        []
    """

    def __init__(self, keys: Keys, hit_ids: HitIds,
                 hashes: Callable[[np.ndarray], np.ndarray] = matrix_hashes):
        self.keys = keys
        self.hit_ids = hit_ids
        #: The hash of folded keys (a uint8 matrix, one a row) that the keys are found
        #: by: the key hash, or a sealed replica's keyed tags (:mod:`sltd.sealed`).
        self.hashes = hashes

    def check(self, number: str, doc_type: str | None, country: str | None, *,
              ncb: str, now: float, exact_only: bool = False, reading: Reading = TYPED,
              leads: bool = False, expiries: Expiries | None = None,
              snapshot: KeySnapshot | None = None, lapsed: Lapsed | None = None
              ) -> list[Hit]:
        """Hits for one document: exact, then partial, then near by score, then (with
        ``leads``) leads; at most :data:`MAX_HITS`. ``now`` (seconds since the epoch) is
        the hit ids' issue time; ``reading`` what the channel says of the number
        (:func:`near_tier`); ``expiries`` gives records' expiry dates by id, read only
        when ``reading`` has an expiry date and there are near-miss candidates;
        ``snapshot`` the list to answer from (default: the one published now);
        ``lapsed`` the records whose review date has come at a time (default: the
        published list's, :meth:`sltd.keyset.Keys.lapsed`), read only when the number
        has candidates. See :meth:`sltd.Index.check`."""
        canonical = canonical_number(number)
        qtype = _doc_type(doc_type) if doc_type is not None else None
        qcountry = _country(country) if country is not None else None
        folded = fold_bytes(canonical)
        # one snapshot for the whole check
        keys = self.keys.snapshot() if snapshot is None else snapshot
        # most checks end here: not listed, from memory (the probe filter)
        rows = keys.lookup(folded)
        if rows:  # a record whose review date has come no longer hits
            rows = self._live(rows, lapsed, now)
        if exact_only:
            return self._hits(keys, canonical, qtype, qcountry, rows, True, ncb, now) \
                if rows else []
        if reading.verified and reading.check_digit is not None:
            # a verified MRZ number: only look-alikes of it (its own fold) can be hits
            return self._hits(keys, canonical, qtype, qcountry, rows, False, ncb, now,
                              reading, leads, expiries) if rows else []
        variants = edit1_matrix(folded)
        found: set[bytes] = set()
        for start in range(0, len(variants), _PROBE_CHUNK):
            chunk = variants[start:start + _PROBE_CHUNK]
            present = keys.present(self.hashes(chunk), qcountry)
            found.update(bytes(r) for r in chunk[np.flatnonzero(present)])
        fold = folded.decode("ascii")
        folds = [f for f in (v.rstrip(b"\0").decode("ascii") for v in found) if f != fold]
        if folds:
            rows += self._live(keys.rows(folds), lapsed, now)
        return self._hits(keys, canonical, qtype, qcountry, rows, False, ncb, now, reading,
                          leads, expiries) if rows else []

    def check_mrz(self, read: MRZ, *, ncb: str, now: float, exact_only: bool = False,
                  leads: bool = False, expiries: Expiries | None = None,
                  snapshot: KeySnapshot | None = None, lapsed: Lapsed | None = None
                  ) -> list[Hit]:
        """Hits for a parsed MRZ: as :meth:`check`, with the evidence the MRZ carries
        (:attr:`sltd.mrz.MRZ.reading`: the number's check digit, the expiry date)."""
        return self.check(read.number, read.doc_type, read.country, ncb=ncb, now=now,
                          exact_only=exact_only, reading=read.reading, leads=leads,
                          expiries=expiries, snapshot=snapshot, lapsed=lapsed)

    def _live(self, rows: list[tuple[int, str, str, str]], lapsed: Lapsed | None,
              now: float) -> list[tuple[int, str, str, str]]:
        """``rows`` without the records whose review date has come at ``now``."""
        gone = (self.keys.lapsed if lapsed is None else lapsed)(now)
        return [r for r in rows if r[0] not in gone] if gone else rows

    def _hits(self, keys: KeySnapshot, canonical: str, qtype: str | None,
              qcountry: str | None,
              rows: list[tuple[int, str, str, str]], exact_only: bool, ncb: str,
              now: float, reading: Reading = TYPED, leads: bool = False,
              expiries: Expiries | None = None) -> list[Hit]:
        if len(rows) == 1:  # the usual hit: one record, nothing to rank
            record_id, number, rtype, rcountry = rows[0]
            match = classify(canonical, qtype, qcountry, number, rtype, rcountry,
                             exact_only=exact_only)
            if match is None:
                return []
            if match[0] is not MatchKind.NEAR:
                return [Hit(self.hit_ids.mint(record_id, now, ncb), number,
                            _DOC_TYPES[rtype], rcountry, *match)]
        candidates = []
        for row in rows:
            match = classify(canonical, qtype, qcountry, *row[1:], exact_only=exact_only)
            if match is not None:
                candidates.append((row, match))
        near = [row[0] for row, (kind, _, _) in candidates if kind is MatchKind.NEAR]
        known = expiries(near) if near and reading.expiry is not None and expiries \
            else {}
        ranked = []
        for (record_id, number, rtype, rcountry), (kind, score, why) in candidates:
            error: ErrorClass | None = None
            evidence: tuple[Evidence, ...] = ()
            if kind is MatchKind.NEAR:
                tier = near_tier(canonical, number, reading, known.get(record_id),
                                 functools.partial(keys.carries, rcountry, rtype))
                if tier is None:
                    continue
                kind, error, evidence = tier
                if kind is MatchKind.LEAD and not leads:
                    continue
            ranked.append((rank_key(kind, score, number, rcountry, rtype), record_id,
                           number, rtype, rcountry, kind, score, why, error, evidence))
        if len(ranked) > 1:
            ranked.sort(key=_first)
        mint = self.hit_ids.mint  # only for the hits returned
        return [Hit(mint(record_id, now, ncb), number, _DOC_TYPES[rtype], rcountry, kind,
                    score, why, error, evidence)
                for _, record_id, number, rtype, rcountry, kind, score, why, error, evidence
                in ranked[:MAX_HITS]]
