"""Issuers' document number formats: a serial to a document number and back, vectorized.

An issuer (a country and a document type) prints its numbers in one format: an optional
fixed prefix (:data:`PREFIXES`), then its shape (:func:`sltd.synth.shape_for`: ``D``
digit, ``L`` letter, ``A`` letter or digit, ``C`` the alphabet of German documents), read
as an odometer: serial 0 is the first number, and counting up turns the rightmost
character fastest, each through its class's alphabet in order. Both directions work on
arrays that mix issuers, one NumPy pass per character position.

Example:
    >>> f = number_formats([("CHN", "P"), ("FRA", "P")])
    >>> f.numbers(np.array([0, 1, 1]), np.array([12345678, 26 * 100000, 26 * 100000 - 1])
    ...           ).to_pylist()
    ['E12345678', '00BA00000', '00AZ99999']
    >>> f.serials(pa.array(["E12345678", "E1234567", "00AZ99999"]), np.array([0, 0, 1]))
    array([12345678,       -1,  2599999])
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd.synth import ALPHABETS, shape_for

#: Fixed first characters of an issuer's numbers (German passports begin with C, German
#: identity cards with L, Chinese e-passports with E). ``None``: any type of the country.
PREFIXES: dict[tuple[str, str | None], str] = {
    ("CHN", "P"): "E", ("DEU", "P"): "C", ("DEU", "I"): "L", ("XXA", None): "X",
}
_CLASSES = "DLAC"


def prefix_for(country: str, doc_type: str) -> str:
    """The fixed prefix of a (country, type)'s numbers ('' when it has none)."""
    return PREFIXES.get((country, doc_type)) or PREFIXES.get((country, None)) or ""


@dataclasses.dataclass(frozen=True, eq=False)
class NumberFormats:
    """The formats of a list of issuers; ``g`` arrays index ``issuers``. Per issuer and
    character position counted from the right: ``radix`` (1 for a fixed character or
    beyond the number's ``width``) and ``alpha``, a row of ``alphabets``. Make with
    :func:`number_formats`."""

    issuers: tuple[tuple[str, str], ...]  # (country, type)
    width: np.ndarray
    radix: np.ndarray
    alpha: np.ndarray
    alphabets: np.ndarray  # (row, digit) -> character

    @property
    def capacity(self) -> np.ndarray:
        """How many numbers each issuer's format has."""
        return np.prod(self.radix, axis=1)

    @functools.cached_property
    def _by_position(self) -> tuple[np.ndarray, np.ndarray]:
        """Per position: each issuer's radix, and its characters as one flat table
        (issuer * alphabet width + digit): 1-D gathers are ~3x faster than 2-D ones."""
        chars = self.alphabets[self.alpha.T]  # (position, issuer, digit)
        return np.ascontiguousarray(self.radix.T), chars.reshape(len(chars), -1)

    @functools.cached_property
    def _digits(self) -> np.ndarray:
        """Per position, each issuer's digit of each byte as one flat table (issuer * 256
        + byte): -1 for a byte its format cannot have there, 0 for any byte beyond its
        width (so one loop reads every format)."""
        table = np.full((len(self.alphabets), 256), -1, np.int8)
        for row, alphabet in enumerate(self.alphabets):
            table[row, alphabet] = np.arange(len(alphabet))  # padding: >= radix, refused
        digits = table[self.alpha.T]  # (position, issuer, byte)
        digits[digits >= self.radix.T[:, :, None]] = -1
        digits[np.arange(len(digits))[:, None] >= self.width[None, :]] = 0
        return digits.reshape(len(digits), -1)

    def numbers(self, g: np.ndarray, serial: np.ndarray) -> pa.Array:
        """The document numbers of ``serial`` (each below its issuer's capacity) in the
        formats of issuers ``g``, as a string array."""
        width = self.width[g]
        radix, table = self._by_position
        cols = len(radix)
        chars = np.empty((len(g), cols), np.uint8)
        rest = np.array(serial, np.int64)
        row = g * self.alphabets.shape[1]
        for p in range(cols):
            rest, digit = np.divmod(rest, radix[p][g])
            chars[:, cols - 1 - p] = table[p][row + digit]
        used = (cols - 1 - np.arange(cols))[None, :] < width[:, None]
        offsets = np.concatenate([[0], np.cumsum(width)]).astype(np.int32)
        return pa.StringArray.from_buffers(len(g), pa.py_buffer(offsets),
                                           pa.py_buffer(chars[used].tobytes()))

    def serials(self, numbers: pa.Array | pa.ChunkedArray, g: np.ndarray) -> np.ndarray:
        """The serial of each number in the format of its issuer ``g``; -1 where it is not
        a number of that format (or ``g`` is -1)."""
        arr = as_strings(numbers)
        ends = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
        data = np.frombuffer(arr.buffers()[2] or b"\0", np.uint8)
        gg = np.maximum(g, 0)
        ok = (g >= 0) & (np.diff(ends) == self.width[gg])
        if arr.null_count:
            ok &= arr.is_valid().to_numpy(zero_copy_only=False)
        radix, _ = self._by_position
        row = gg * 256
        last = ends[1:].astype(np.int64) - 1
        serial, scale = np.zeros(len(arr), np.int64), np.ones(len(arr), np.int64)
        for p, digits in enumerate(self._digits):
            digit = digits[row + data[np.maximum(last - p, 0)]].astype(np.int64)
            ok &= digit >= 0
            serial += digit * scale
            scale *= radix[p][gg]
        return np.where(ok, serial, -1)

    def index(self, doc_types: pa.Array | pa.ChunkedArray,
              countries: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The issuer of each (type, country): its index, -1 where there is none."""
        where = {(c, t): i for i, (c, t) in enumerate(self.issuers)}
        t = pc.dictionary_encode(pc.fill_null(as_strings(doc_types), ""))
        c = pc.dictionary_encode(pc.fill_null(as_strings(countries), ""))
        table = np.array([[where.get((cv, tv), -1) for tv in t.dictionary.to_pylist()]
                          for cv in c.dictionary.to_pylist()], np.int64)
        if not table.size:
            return np.full(len(t), -1, np.int64)
        return table[c.indices.to_numpy(zero_copy_only=False),
                     t.indices.to_numpy(zero_copy_only=False)]


def number_formats(issuers: Sequence[tuple[str, str]]) -> NumberFormats:
    """The formats of ``issuers``, (country, type) pairs: :func:`prefix_for` then
    :func:`sltd.synth.shape_for`."""
    rows: list[bytes] = [ALPHABETS[c] for c in _CLASSES]  # then each fixed character
    cols = max((len(shape_for(c, t)) for c, t in issuers), default=1)
    radix = np.ones((len(issuers), cols), np.int64)
    alpha = np.zeros((len(issuers), cols), np.int64)
    for g, (country, doc_type) in enumerate(issuers):
        prefix, shape = prefix_for(country, doc_type), shape_for(country, doc_type)
        for p, (i, cls) in enumerate(reversed(list(enumerate(shape)))):
            if i >= len(prefix):
                radix[g, p], alpha[g, p] = len(ALPHABETS[cls]), _CLASSES.index(cls)
                continue
            fixed = prefix[i].encode()
            if fixed not in ALPHABETS[cls]:
                raise ValueError(f"prefix {prefix!r} does not fit shape {shape!r}")
            if fixed not in rows:
                rows.append(fixed)
            alpha[g, p] = rows.index(fixed)
    alphabets = np.zeros((len(rows), max(map(len, rows))), np.uint8)
    for i, row in enumerate(rows):
        alphabets[i, :len(row)] = np.frombuffer(row, np.uint8)
    width = np.array([len(shape_for(c, t)) for c, t in issuers], np.int64)
    return NumberFormats(tuple(issuers), width, radix, alpha, alphabets)


def as_strings(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One string array (dictionaries decoded, chunks combined)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(pa.string())
