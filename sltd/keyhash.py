"""The key hash: a well-mixed 64-bit hash of a folded document number, computed the same
way for one key in pure Python (:func:`key_hash`, the hot path of every check) and for a
whole column in NumPy (:func:`key_hashes`, :func:`matrix_hashes`: loads, screening,
near-miss variants). A property test pins the twins together bit for bit.

A key (at most 24 ASCII bytes, no NUL) is read as up to three little-endian 64-bit words,
absorbed one by one through MurmurHash3's fmix64 finalizer: structured absent numbers
(prefix + digits, nine digits ...) collide with listed ones no more often than random
values would, about once per 10^12 checks at 10M keys. (Index schema version 1 used a
linear hash, the key bytes mod 2**61 - 1, under which 0.3-0.7% of such numbers collided;
those files are migrated, see :func:`sltd.store.migrate`.) Hashes are int64, as DuckDB's
BIGINT stores them: NumPy compares a uint64 array with a Python int through float64.

Example:
    >>> key_hash("X1234567") == int(key_hashes(pa.array(["X1234567"]))[0])
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd.normalize import CONFUSIONS, MAX_LENGTH

_WIDTH = 24  # == MAX_LENGTH: three 64-bit words
assert _WIDTH == MAX_LENGTH
_FROM_BYTES = int.from_bytes
_M64 = (1 << 64) - 1
# The 64-bit finalizer of MurmurHash3 (fmix64): a bijection of 64-bit words in which every
# input bit flips each output bit with probability ~1/2.
_C1 = 0xFF51AFD7ED558CCD
_C2 = 0xC4CEB9FE1A85EC53
_SEED = 0x9E3779B97F4A7C15


def _fmix(x: int) -> int:
    x ^= x >> 33
    x = (x * _C1) & _M64
    x ^= x >> 33
    x = (x * _C2) & _M64
    return x ^ (x >> 33)


def key_hash(key: str) -> int:
    """A well-mixed 64-bit hash of a key (ASCII, at most 24 characters, no NUL), as the
    signed int64 the index stores.

    The key's bytes are read as up to three little-endian 64-bit words; the first is
    mixed with a seed, and each further one is absorbed into the running hash through the
    bijective finalizer fmix64. Keys of up to 8 characters never collide (one bijection of
    one word); longer ones collide like random 64-bit values, about once per 10^12 checks
    at 10M keys, with no structure to exploit: structured absent numbers (prefix + digits,
    nine digits ...) collide no more than random ones. A collision costs one lookup,
    never a wrong answer: every caller compares the folded keys. Pure Python, ~0.5 µs.

    Example:
        >>> key_hash("AB12") == key_hash("AB12") != key_hash("AB13")
        True
    """
    return key_hash_bytes(key.encode("ascii"))


def key_hash_bytes(key: bytes) -> int:
    """:func:`key_hash` of a key already encoded as ASCII bytes (the hot path: fmix64
    inlined, each round ~0.15 µs)."""
    x = _FROM_BYTES(key[:8], "little") ^ _SEED
    x ^= x >> 33
    x = x * _C1 & _M64
    x ^= x >> 33
    x = x * _C2 & _M64
    x ^= x >> 33
    if len(key) > 8:  # absorb the words a key has; a missing word is all zeros (no NUL)
        x ^= _FROM_BYTES(key[8:16], "little")
        x ^= x >> 33
        x = x * _C1 & _M64
        x ^= x >> 33
        x = x * _C2 & _M64
        x ^= x >> 33
        if len(key) > 16:
            x = _fmix(x ^ _FROM_BYTES(key[16:], "little"))
    return x if x < _SIGN else x - _TWO64


_SIGN = 1 << 63
_TWO64 = 1 << 64


#: The probe hash's 128-bit odd multiplier (digits of the golden ratio and of pi).
PROBE_MULTIPLIER = 0x9E3779B97F4A7C15_F39CC0605CEDC835
_PROBE_LO = PROBE_MULTIPLIER & _M64
_PROBE_HI = PROBE_MULTIPLIER >> 64


def probe_hash_bytes(key: bytes) -> int:
    """A cheap 64-bit hash of a folded key (ASCII bytes), unsigned: the middle 64 bits of
    the key, read as a little-endian integer, times :data:`PROBE_MULTIPLIER`. One
    multiplication, ~0.2 µs against ~1.2 µs for :func:`key_hash`: the key structures'
    probe filter (:class:`sltd.keyset.KeyTable`) is addressed by it, so most absent keys
    are answered without computing the key hash at all.

    Multiply-shift hashing: the top bits depend on every bit of the first 16 characters
    (characters 17 to 24 do not count; a filter of a superset is still a filter). Not a
    key hash: it only decides which keys are worth one.

    Example:
        >>> probe_hash_bytes(b"X1234567") == int(probe_hashes(
        ...     key_matrix(pa.array(["X1234567"])))[0])
        True
    """
    return (_FROM_BYTES(key, "little") * PROBE_MULTIPLIER >> 64) & _M64


_LOW32 = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


def _mul_high(x: np.ndarray, c: int) -> np.ndarray:
    """The high 64 bits of each 128-bit product ``x * c`` (uint64 array, 64-bit ``c``),
    from four 32-bit partial products (NumPy has no 128-bit integers)."""
    c_lo, c_hi = np.uint64(c & 0xFFFFFFFF), np.uint64(c >> 32)
    x_lo, x_hi = x & _LOW32, x >> _32
    lo_lo, hi_lo, lo_hi = x_lo * c_lo, x_hi * c_lo, x_lo * c_hi
    cross = (lo_lo >> _32) + (hi_lo & _LOW32) + lo_hi  # < 2**64: no carry lost
    return (hi_lo >> _32) + (cross >> _32) + x_hi * c_hi


def probe_hashes(matrix: np.ndarray) -> np.ndarray:
    """:func:`probe_hash_bytes` of every row of an (n, w) zero-padded uint8 key matrix
    (w a multiple of 8): the same middle 64 bits, as ``hi64(w0 * lo) + w0 * hi +
    w1 * lo`` modulo 2**64 over the key's first two 64-bit words (uint64)."""
    words = np.ascontiguousarray(matrix).view("<u8")
    w0 = words[:, 0]
    out = _mul_high(w0, _PROBE_LO)
    out += w0 * np.uint64(_PROBE_HI)
    if words.shape[1] > 1:
        out += words[:, 1] * np.uint64(_PROBE_LO)
    return out


def country_code(country: str) -> int:
    """A country code's ASCII bytes as a little-endian integer (what the key structures
    compare countries by).

    Example:
        >>> country_code("FRA") == int(country_codes(pa.array(["FRA"]))[0])
        True
    """
    return _FROM_BYTES(country.encode("ascii"), "little")


def _fmix_array(x: np.ndarray) -> np.ndarray:
    """fmix64 of a uint64 array, in place (uint64 products wrap modulo 2**64)."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C1)
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C2)
    x ^= x >> np.uint64(33)
    return x


def _mix(words: np.ndarray) -> np.ndarray:
    """Vectorized twin of :func:`key_hash` on an (n, 1..3) little-endian uint64 word
    matrix (missing words are zero): each further word is absorbed only where it is
    non-zero, exactly as the scalar hash absorbs only the words a key has."""
    h = _fmix_array(words[:, 0] ^ np.uint64(_SEED))
    for k in range(1, words.shape[1]):
        w = words[:, k]
        has = w != 0
        if has.all():  # the usual case (near-miss variants of one query): no fancy indexing
            h = _fmix_array(h ^ w)
        elif has.any():
            h[has] = _fmix_array(h[has] ^ w[has])
    return h.view(np.int64)


def key_matrix(keys: pa.Array | pa.ChunkedArray, *, narrow: bool = False) -> np.ndarray:
    """An Arrow string column of keys (ASCII, at most 24 characters, no nulls) as an
    (n, 24) uint8 matrix, zero-padded: one row per key. With ``narrow``, only as wide as
    the longest key, rounded up to 8 bytes (bulk paths: less to fold and hash)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks() if keys.num_chunks else pa.array([], pa.string())
    if len(keys) == 0:
        return np.zeros((0, _WIDTH), dtype=np.uint8)
    keys = keys.cast(pa.large_string())  # 64-bit offsets: 128M keys x 24 bytes > 2 GiB
    width = _WIDTH
    if narrow:
        longest = pc.max(pc.binary_length(keys)).as_py() or 1
        width = min(_WIDTH, -(-longest // 8) * 8)
    padded = pc.ascii_rpad(keys, width=width, padding="\0")  # 3x faster than utf8_rpad
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int64)[
        padded.offset : padded.offset + len(padded) + 1
    ]
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    # every padded key is exactly `width` bytes, so the data buffer is an (n, width) matrix
    return np.ascontiguousarray(
        data[start : start + len(padded) * width].reshape(len(padded), width))


def matrix_hashes(matrix: np.ndarray) -> np.ndarray:
    """:func:`key_hash` of every row of an (n, w) zero-padded uint8 key matrix (w a
    multiple of 8, at most 24; missing words count as zero)."""
    return _mix(np.ascontiguousarray(matrix).view("<u8"))


def key_hashes(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Hash an Arrow string column of keys (ASCII, at most 24 characters, no nulls).

    Args:
        keys: canonical or folded keys.

    Returns:
        int64 array of the same length, equal element-wise to :func:`key_hash`.
    """
    return matrix_hashes(key_matrix(keys))


#: Byte translation table of :func:`sltd.normalize.fold_number` (identity elsewhere, so
#: the zero padding stays zero).
FOLD_TABLE = bytes(CONFUSIONS.get(chr(b), chr(b)).encode("latin-1")[0] for b in range(256))


def fold_matrix(canonical: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Folded keys of a column of canonical numbers, as an (n, w) uint8 matrix, w the
    longest key rounded up to 8 bytes. (``bytes.translate`` folds 16 MB in ~6 ms, a NumPy
    table lookup takes ~15 ms.)"""
    m = key_matrix(canonical, narrow=True)
    return np.frombuffer(m.tobytes().translate(FOLD_TABLE), np.uint8).reshape(m.shape)


def fold_strings(canonical: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`sltd.normalize.fold_number` over a string column: folding maps a byte to a
    byte, so the folded column keeps the offsets and translates the data buffer (one
    ``bytes.translate``).

    Example:
        >>> fold_strings(pa.array(["GB1O5", None])).to_pylist()
        ['68105', None]
    """
    if isinstance(canonical, pa.ChunkedArray):
        canonical = canonical.combine_chunks() if canonical.num_chunks else \
            pa.array([], canonical.type)
    validity, offsets, data = canonical.buffers()
    folded = pa.py_buffer(data.to_pybytes().translate(FOLD_TABLE)) if data is not None \
        else data
    return pa.Array.from_buffers(canonical.type, len(canonical), [validity, offsets, folded],
                                 canonical.null_count, canonical.offset)


def country_codes(countries: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint64 code of each country (its ASCII bytes as a little-endian integer)."""
    if isinstance(countries, pa.ChunkedArray):
        countries = countries.combine_chunks() if countries.num_chunks else \
            pa.array([], pa.string())
    enc = countries.dictionary_encode()
    table = np.array([country_code(c) for c in enc.dictionary.to_pylist()] or [0],
                     dtype=np.uint64)
    return table[enc.indices.fill_null(0).to_numpy(zero_copy_only=False)] if len(enc) else \
        np.zeros(0, np.uint64)


def key_hashes_from_strings(keys: Sequence[str]) -> np.ndarray:
    """Hash a short Python list of keys at once (e.g. the near-miss variants of a query)."""
    if not keys:
        return np.empty(0, dtype=np.int64)
    buf = b"".join(k.encode("ascii").ljust(_WIDTH, b"\0") for k in keys)
    return _mix(np.frombuffer(buf, dtype="<u8").reshape(len(keys), 3))
