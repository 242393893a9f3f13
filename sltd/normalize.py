"""The canonical form of a document number and its confusable-folded key.

Canonical form (:func:`canonical_number`):

1. Unicode NFKC (full-width digits and letters become ASCII).
2. Latin look-alike letters from Cyrillic and Greek (``А``, ``О``, ``Р``, ``Ο`` ...) are
   mapped to the Latin letter they imitate. A forger or a keyboard layout must not let a
   listed number slip through as a "different" string, and an officer typing on a Cyrillic
   keyboard means the Latin letter. Any other non-Latin character is refused.
3. Spaces, hyphens and dashes, dots, slashes and the MRZ filler ``<`` are removed.
4. Upper case. What remains must be 3 to 24 letters A-Z or digits.

Folded key (:func:`fold_number`): the canonical number with every OCR/typing confusion
class collapsed to one character (O Q D -> 0, I L -> 1, B -> 8, S -> 5, Z -> 2, G -> 6).
Two numbers that differ only by any number of such confusions share one folded key, so
the index looks records up by folded key and near-miss search needs no combinatorial
expansion of confusions.

The bulk loader runs the same rules in DuckDB SQL (:data:`SQL_CLEAN`); a property test
pins the two implementations to each other.

Example:
    >>> canonical_number(" x12-345 678 ")
    'X12345678'
    >>> fold_number("SOB12")
    '50812'
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from sltd.errors import InvalidNumber

if TYPE_CHECKING:  # the bulk twin needs Arrow; single checks do not import it
    import pyarrow as pa

MIN_LENGTH = 3
MAX_LENGTH = 24

#: Cyrillic and Greek letters that look like a Latin letter, both cases, mapped to it.
LOOKALIKES: dict[str, str] = {
    # Cyrillic
    "А": "A", "а": "A", "В": "B", "в": "B", "Е": "E", "е": "E", "К": "K", "к": "K",
    "М": "M", "м": "M", "Н": "H", "н": "H", "О": "O", "о": "O", "Р": "P", "р": "P",
    "С": "C", "с": "C", "Т": "T", "т": "T", "Х": "X", "х": "X", "У": "Y", "у": "Y",
    "І": "I", "і": "I", "Ј": "J", "ј": "J", "Ѕ": "S", "ѕ": "S", "Ү": "Y", "ү": "Y",
    "Ԛ": "Q", "ԛ": "Q", "Ԝ": "W", "ԝ": "W", "Һ": "H", "һ": "H",
    # Greek
    "Α": "A", "α": "A", "Β": "B", "β": "B", "Ε": "E", "ε": "E", "Ζ": "Z", "ζ": "Z",
    "Η": "H", "η": "H", "Ι": "I", "ι": "I", "Κ": "K", "κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "ο": "O", "Ρ": "P", "ρ": "P", "Τ": "T", "τ": "T", "Υ": "Y", "υ": "Y",
    "Χ": "X", "χ": "X",
}

#: Characters removed from a number: separators people type and the MRZ filler.
SEPARATORS = " \t\r\n\u00a0\u2007\u202f-\u2010\u2011\u2012\u2013\u2014\u2212./<"

#: OCR and typing confusion classes: every member maps to the class representative.
CONFUSIONS: dict[str, str] = {
    "O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2", "G": "6",
}

_LOOKALIKE_TABLE = str.maketrans(LOOKALIKES)
_DELETE_TABLE = str.maketrans("", "", SEPARATORS)
_FOLD_TABLE = str.maketrans(CONFUSIONS)
_FOLD_BYTES = bytes.maketrans("".join(CONFUSIONS).encode(), "".join(CONFUSIONS.values()).encode())


def canonical_number(raw: object, *, field: str = "document_number") -> str:
    """Return the canonical form of a document number.

    Args:
        raw: the number as typed, scanned or loaded.
        field: the field name to report in an error.

    Returns:
        3 to 24 characters, A-Z and 0-9 only.

    Raises:
        InvalidNumber: empty, too short or too long, or a character that is neither a
            letter, a digit nor a separator; the message names the character.

    Example:
        >>> canonical_number("ab.123/45<<")
        'AB12345'
    """
    if not isinstance(raw, str):
        if raw is None:
            raise InvalidNumber("a document number is required", field=field, value=raw)
        raw_str = str(raw)
    else:
        raw_str = raw
    if raw_str.isascii() and raw_str.isalnum() and MIN_LENGTH <= len(raw_str) <= MAX_LENGTH:
        return raw_str.upper()  # already clean: the common case, ~0.2 µs
    if raw_str.isascii():  # NFKC and the look-alike map change nothing
        text = raw_str.translate(_DELETE_TABLE)
    else:
        text = unicodedata.normalize("NFKC", raw_str).translate(_LOOKALIKE_TABLE)
        text = text.translate(_DELETE_TABLE)
    # ASCII is checked before upper-casing: 'ß'.upper() is 'SS', which must not pass.
    if not (MIN_LENGTH <= len(text) <= MAX_LENGTH and text.isascii() and text.isalnum()):
        raise InvalidNumber(_why_invalid(text), field=field, value=raw)
    return text.upper()


def _why_invalid(text: str) -> str:
    for ch in text:
        if not (ch.isascii() and ch.isalnum()):
            return (f"character {ch!r} (U+{ord(ch):04X}) is not allowed: a document number "
                    "holds letters A-Z and digits; spaces, - . / and < are ignored")
    if not text:
        return "empty document number"
    if len(text) < MIN_LENGTH:
        return f"{len(text)} characters; a document number has at least {MIN_LENGTH}"
    return f"{len(text)} characters; a document number has at most {MAX_LENGTH}"


def fold_bytes(canonical: str) -> bytes:
    """:func:`fold_number` as ASCII bytes (faster: ``bytes.translate`` is a table lookup).

    Example:
        >>> fold_bytes("SOB12")
        b'50812'
    """
    return canonical.encode("ascii").translate(_FOLD_BYTES)


def fold_number(canonical: str) -> str:
    """Collapse OCR/typing confusions of a canonical number into one key.

    Example:
        >>> fold_number("GB1O5")
        '68105'
    """
    return canonical.translate(_FOLD_TABLE)


def _sql_string(chars: str) -> str:
    return "'" + chars.replace("'", "''") + "'"


_SEPARATOR_CLASS = "".join("\\" + c if c in "-./\\[]^" else c for c in SEPARATORS)

#: DuckDB SQL template of :func:`canonical_number` before upper-casing, for input already
#: in NFKC (Arrow does that step); ``{col}`` is the column.
SQL_CLEAN = (
    "regexp_replace(translate({col}, "
    + _sql_string("".join(LOOKALIKES))
    + ", "
    + _sql_string("".join(LOOKALIKES.values()))
    + "), '["
    + _SEPARATOR_CLASS.replace("'", "''")
    + "]', '', 'g')"
)

#: DuckDB SQL template: the cleaned column ``{col}`` is a valid number (then its canonical
#: form is ``upper({col})``).
SQL_VALID = "regexp_full_match({col}, '[A-Za-z0-9]{{" + f"{MIN_LENGTH},{MAX_LENGTH}" + "}}')"

#: DuckDB SQL template of :func:`fold_number` on a canonical column ``{col}``.
SQL_FOLD = (
    "translate({col}, " + _sql_string("".join(CONFUSIONS)) + ", "
    + _sql_string("".join(CONFUSIONS.values())) + ")"
)


_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _all_clean(raw: pa.Array) -> bool:
    """Whether every value of a string array is non-null ASCII letters and digits of a
    valid length, checked on the data buffer as a whole (``bytes.translate`` deletes the
    letters and digits in one C pass; Arrow's per-value kernels take ~4x longer)."""
    import numpy as np

    if len(raw) == 0:
        return True
    if raw.null_count:
        return False
    offsets = np.frombuffer(raw.buffers()[1], dtype=np.int32)[raw.offset: raw.offset + len(raw) + 1]
    lengths = np.diff(offsets)
    if lengths.min() < MIN_LENGTH or lengths.max() > MAX_LENGTH:
        return False
    data = raw.buffers()[2]
    return not bytes(memoryview(data)[int(offsets[0]): int(offsets[-1])]).translate(None, _ALNUM)


def canonical_numbers(raw: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`canonical_number` over a column: canonical text, or null where invalid.

    Already-clean values (ASCII letters and digits of a valid length: nearly all) take an
    Arrow fast path; the rest go through NFKC (Arrow) and :data:`SQL_CLEAN` (DuckDB), the
    same rules the loader applies.
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks() if raw.num_chunks else pa.array([], pa.string())
    raw = raw.cast(pa.string())
    if _all_clean(raw):
        return pc.ascii_upper(raw)  # the common case, decided on the whole buffer at once
    # Some value is not clean (so not every one is): split clean rows from the rest.
    length = pc.utf8_length(raw)
    fast = pc.fill_null(pc.and_(
        pc.and_(pc.string_is_ascii(raw), pc.ascii_is_alnum(raw)),
        pc.and_(pc.greater_equal(length, MIN_LENGTH), pc.less_equal(length, MAX_LENGTH))),
        False)
    out = pc.if_else(fast, pc.ascii_upper(raw), pa.nulls(len(raw), pa.string()))
    dirty = pc.invert(fast)
    subset = pc.filter(raw, dirty)
    con = duckdb.connect()
    con.register("t", pa.table({"x": pc.utf8_normalize(subset, "NFKC")}))
    clean = SQL_CLEAN.format(col="x")
    fixed = con.sql(f"SELECT CASE WHEN {SQL_VALID.format(col=clean)} THEN upper({clean}) "
                    "END AS v FROM t").to_arrow_table().column("v").combine_chunks()
    con.close()
    return pc.replace_with_mask(out, dirty, fixed.cast(pa.string()))
