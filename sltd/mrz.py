"""ICAO Doc 9303 machine-readable zones: TD1, TD2, TD3 and machine-readable visas.

:func:`parse_mrz` reads the MRZ of a passport (TD3, 2x44), an ID card (TD1, 3x30; TD2,
2x36) or a visa (MRV-A 2x44, MRV-B 2x36), verifies every check digit (weights 7-3-1; the
composite digit where the format has one) and maps the document code and issuing state to
sltd's type and country codes (``D`` -> ``DEU``). It reads no names: SLTD holds none, and
sltd keeps none.

A failed check digit does not stop a search: a misread MRZ of a listed document must still
find it. The result says which digits failed (:attr:`MRZ.failed_checks`), and the check
reports the MRZ as inconsistent. A matching number digit is evidence too: it rules out
the near misses a reader could not have produced (:func:`plausible_misreading`).

:func:`mrz_fields` slices the same fields column-wise, for screening.

Example:
    >>> m = parse_mrz(
    ...     "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\\n"
    ...     "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
    >>> (m.format, m.number, m.doc_type, m.country, m.consistent)
    ('TD3', 'L898902C3', 'P', 'UTO', True)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sltd import codes
from sltd.errors import MRZError, ValidationError
from sltd.model import Hit, Reading

_VALUES = {**{str(d): d for d in range(10)},
           **{chr(ord("A") + i): 10 + i for i in range(26)}, "<": 0}
_WEIGHTS = (7, 3, 1)
_CHARSET = re.compile(r"[A-Z0-9<]*")

#: (lines, length) -> format, for documents whose code starts with anything but V.
_SHAPES = {(2, 44): "TD3", (2, 36): "TD2", (3, 30): "TD1"}


def check_digit(field: str) -> int:
    """The ICAO 9303 check digit of a field (7-3-1 weights, ``<`` counts 0).

    Example:
        >>> check_digit("L898902C3"), check_digit("740812"), check_digit("<<<")
        (6, 2, 0)
    """
    return sum(_VALUES[c] * _WEIGHTS[i % 3] for i, c in enumerate(field)) % 10


@dataclasses.dataclass(frozen=True)
class MRZ:
    """What sltd reads from an MRZ (no names).

    Attributes:
        format: TD1, TD2, TD3, MRV-A or MRV-B.
        document_code: the one- or two-letter ICAO document code (``P``, ``I``, ``V``...).
        number: the document number, fillers removed (TD1 overflow joined).
        doc_type: sltd document type code.
        country: issuing state, canonical code.
        nationality: holder's nationality code as printed (fillers removed).
        birth_date, expiry_date: dates when the digits form one (century inferred).
        failed_checks: names of the check digits that do not match, e.g.
            ``("document number", "composite")``; empty when the MRZ is consistent.
        number_check_digit: the document number's check digit as printed (None when the
            MRZ carries no digit there).
    """

    format: str
    document_code: str
    number: str
    doc_type: str
    country: str
    nationality: str
    birth_date: dt.date | None
    expiry_date: dt.date | None
    failed_checks: tuple[str, ...]
    number_check_digit: int | None = None

    @property
    def consistent(self) -> bool:
        """All check digits match."""
        return not self.failed_checks

    @property
    def reading(self) -> Reading:
        """What this MRZ says about its number: the printed check digit, whether it
        matched, and the expiry date if its own check digit matched."""
        return Reading(self.number_check_digit, "document number" not in self.failed_checks,
                       self.expiry_date if "expiry date" not in self.failed_checks else None)

    def could_be_misread(self, listed: str) -> bool:
        """Whether the listed number ``listed`` could be this document's number, misread
        (:func:`plausible_misreading`).

        Example:
            >>> m = parse_mrz(["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
            ...                "L898902C36UTO7408122F1204159ZE184226B<<<<<10"])
            >>> m.could_be_misread("L898902C4"), m.could_be_misread("L8989O2C3")
            (False, True)
        """
        return plausible_misreading(listed, self.number, self.number_check_digit,
                                    "document number" not in self.failed_checks)

    def as_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["consistent"] = self.consistent
        d["failed_checks"] = list(self.failed_checks)
        for k in ("birth_date", "expiry_date"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def plausible_misreading(listed: str, read: str, printed: int | None,
                         verified: bool) -> bool:
    """Whether an MRZ number ``read``, whose check digit was printed as ``printed``
    (None: no digit) and ``verified`` against it or not, could be a misreading of the
    listed number ``listed`` (the rule of single checks and MRZ screening):

    - numbers equal up to look-alike characters (``O``/``0``, ``I``/``1``...) always
      could: a record can carry that confusion itself;
    - a verified digit confirms the reading: no other number could;
    - a failed digit: only a number whose own check digit is the printed one could (the
      reader misread the number, not the digit);
    - no digit: any could.

    Example:
        >>> check_digit("X1234568"), check_digit("X1234567")
        (0, 7)
        >>> plausible_misreading("X1234568", "X1234567", 7, True), plausible_misreading(
        ...     "X1234568", "X1234567", 0, False), plausible_misreading(
        ...     "X1234568", "X1234567", 3, False), plausible_misreading(
        ...     "X12345G7", "X1234567", 7, True)
        (False, True, False, True)
    """
    from sltd.normalize import fold_number

    if fold_number(listed) == fold_number(read) or printed is None:
        return True
    return not verified and check_digit(listed) == printed


@dataclasses.dataclass(frozen=True)
class MRZCheck:
    """The answer to a check by MRZ: what was read, and the first-level hits."""

    mrz: MRZ
    hits: list[Hit]

    def as_dict(self) -> dict[str, object]:
        return {"hits": [h.as_dict() for h in self.hits], "mrz": self.mrz.as_dict()}


def split_lines(mrz: str | Sequence[str]) -> list[str]:
    """The MRZ's lines: from one string with newlines, a sequence of lines, or one run-on
    line of 88, 72 or 90 characters; surrounding white space is ignored."""
    if isinstance(mrz, str):
        lines = [ln.strip() for ln in mrz.strip().splitlines() if ln.strip()]
    else:
        lines = [str(ln).strip() for ln in mrz if str(ln).strip()]
    if len(lines) == 1:
        one = lines[0].replace(" ", "")
        for count, length in ((2, 44), (2, 36), (3, 30)):
            if len(one) == count * length:
                return [one[i * length:(i + 1) * length] for i in range(count)]
    return lines


def parse_mrz(mrz: str | Sequence[str]) -> MRZ:
    """Parse and verify an MRZ.

    Args:
        mrz: the zone as one string (lines separated by newlines) or a sequence of lines.

    Returns:
        An :class:`MRZ`; check-digit failures are listed in it, not raised.

    Raises:
        MRZError: not 2x44, 2x36 or 3x30 characters of A-Z, 0-9 and ``<``; the message says
            what was found and where.
        UnknownCountry: the issuing state is not an ICAO code.
    """
    lines = split_lines(mrz)
    lines = [ln.upper() for ln in lines]
    for i, ln in enumerate(lines, 1):
        bad = next((j for j, c in enumerate(ln) if not ("A" <= c <= "Z" or "0" <= c <= "9"
                                                        or c == "<")), None)
        if bad is not None:
            raise MRZError(f"line {i}, position {bad + 1}: character {ln[bad]!r} "
                           f"(U+{ord(ln[bad]):04X}) is not allowed in an MRZ (A-Z, 0-9, <)",
                           field="mrz", value=_shown(lines))
    shape = (len(lines), len(lines[0]) if lines else 0)
    if shape not in _SHAPES or any(len(ln) != shape[1] for ln in lines):
        found = " + ".join(str(len(ln)) for ln in lines) or "nothing"
        raise MRZError(f"found {len(lines)} line(s) of {found} characters; an MRZ is 2x44 "
                       "(passport, visa MRV-A), 2x36 (TD2, visa MRV-B) or 3x30 (ID card TD1)",
                       field="mrz", value=_shown(lines))
    fmt = _SHAPES[shape]
    if lines[0][0] == "V" and fmt in ("TD3", "TD2"):
        fmt = "MRV-A" if fmt == "TD3" else "MRV-B"
    if fmt == "TD1":
        return _td1(lines)
    return _two_line(lines, fmt)


def _shown(lines: list[str]) -> str:
    return "\n".join(lines)[:120]


def _two_line(lines: list[str], fmt: str) -> MRZ:
    l1, l2 = lines
    number_f, number_cd = l2[0:9], l2[9]
    birth_f, birth_cd = l2[13:19], l2[19]
    expiry_f, expiry_cd = l2[21:27], l2[27]
    failed = _failures([("document number", number_f, number_cd),
                        ("birth date", birth_f, birth_cd),
                        ("expiry date", expiry_f, expiry_cd)])
    if fmt == "TD3":
        personal_f, personal_cd = l2[28:42], l2[42]
        # a personal number of fillers may carry '<' as its check digit
        if not (personal_cd == "<" and personal_f.strip("<") == ""):
            failed += _failures([("personal number", personal_f, personal_cd)])
        failed += _failures([("composite", l2[0:10] + l2[13:20] + l2[21:43], l2[43])])
    elif fmt == "TD2":
        failed += _failures([("composite", l2[0:10] + l2[13:20] + l2[21:35], l2[35])])
    return _result(fmt, l1[0:2], l1[2:5], number_f.replace("<", ""), number_cd, l2[10:13],
                   birth_f, expiry_f, failed)


def _td1(lines: list[str]) -> MRZ:
    l1, l2 = lines[0], lines[1]
    number_f, number_cd = l1[5:14], l1[14]
    optional = l1[15:30]
    if number_cd == "<" and optional.strip("<"):
        # Long document number: the rest of it and its check digit open the optional data
        # (ICAO 9303 part 5, note j), up to the first filler.
        tail = optional.split("<", 1)[0]
        number_f, number_cd = number_f + tail[:-1], tail[-1:] or "<"
    failed = _failures([("document number", number_f, number_cd),
                        ("birth date", l2[0:6], l2[6]),
                        ("expiry date", l2[8:14], l2[14]),
                        ("composite", l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29])])
    return _result("TD1", l1[0:2], l1[2:5], number_f.replace("<", ""), number_cd,
                   l2[15:18], l2[0:6], l2[8:14], failed)


def _failures(fields: list[tuple[str, str, str]]) -> list[str]:
    return [name for name, value, digit in fields
            if not digit.isdigit() or check_digit(value) != int(digit)]


def _result(fmt: str, code_f: str, state_f: str, number: str, number_cd: str,
            nationality: str, birth: str, expiry: str, failed: list[str]) -> MRZ:
    document_code = code_f.replace("<", "")
    try:
        country = codes.country_code(state_f.replace("<", ""))
    except ValidationError as e:
        raise type(e)(e.reason + " (MRZ issuing state)", field="issuing_country",
                      value=state_f) from None
    if not number:
        raise MRZError("the document number field is empty", field="mrz", value=number)
    return MRZ(fmt, document_code, number, document_type(document_code), country,
               nationality.replace("<", ""), _date(birth, future=False),
               _date(expiry, future=True), tuple(failed),
               int(number_cd) if number_cd.isdigit() else None)


def document_type(code: str) -> str:
    """sltd's type for an ICAO document code (``P``, ``PD``, ``ID``, ``V`` ...).

    Example:
        >>> document_type("PD"), document_type("ID"), document_type("AR"), document_type("V")
        ('PD', 'I', 'R', 'V')
    """
    code = code.upper()
    if code in ("PD", "PS"):
        return code
    if code == "PO":
        return "PS"
    if code in ("IR", "AR", "CR", "RP"):
        return "R"
    head = code[:1]
    return {"P": "P", "I": "I", "A": "I", "C": "I", "V": "V"}.get(head, "O")


def _date(yymmdd: str, *, future: bool, today: dt.date | None = None) -> dt.date | None:
    if not yymmdd.isdigit():
        return None
    today = today or dt.date.today()
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
    century = today.year // 100 * 100
    year = century + yy
    # Birth dates are in the past; expiry dates at most ~20 years ahead.
    if (not future and year > today.year) or (future and year > today.year + 20):
        year -= 100
    try:
        return dt.date(year, mm, dd)
    except ValueError:
        return None


#: Lengths of a whole MRZ (white space removed) -> (format, offset of the number field).
_MRZ_SHAPES = {88: 44, 72: 36, 90: 5}


def mrz_fields(raw: pa.Array) -> tuple[dict[str, pa.Array | None], pa.Array]:
    """Number, type code and issuing state of a column of MRZs, sliced column-wise (for
    screening: no Python per value).

    Returns the fields (as text, fillers kept for the number: canonicalization removes
    them; ``number_check``: the number's check digit as printed, -1 when there is none)
    and a mask of the values that are not an MRZ of a known shape.

    Example:
        >>> f, bad = mrz_fields(pa.array([
        ...     "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\\n"
        ...     "L898902C36UTO7408122F1204159ZE184226B<<<<<10", "garbage"]))
        >>> f["document_number"].to_pylist(), f["issuing_country"].to_pylist(), bad.to_pylist()
        (['L898902C3', None], ['UTO', None], [False, True])
        >>> f["number_check"].to_pylist()
        [6, -1]
    """
    text = pc.utf8_upper(pc.replace_substring_regex(raw.cast(pa.string()), r"\s+", ""))
    length = pc.utf8_length(text)
    is_mrz = pc.and_(pc.is_in(length, pa.array(list(_MRZ_SHAPES), pa.int32())),
                     pc.match_substring_regex(text, "^[A-Z0-9<]+$"))
    is_mrz = pc.fill_null(is_mrz, False)
    null = pa.nulls(len(text), pa.string())
    number = digit = null
    for total, offset in _MRZ_SHAPES.items():
        shape = pc.and_(is_mrz, pc.equal(length, total))
        number = pc.if_else(shape, pc.utf8_slice_codeunits(text, offset, offset + 9), number)
        digit = pc.if_else(shape, pc.utf8_slice_codeunits(text, offset + 9, offset + 10),
                           digit)
    # TD1 numbers longer than 9: the rest and its check digit open the optional data
    long_td1 = pc.extract_regex(
        text, r"^.{5}(?P<head>[A-Z0-9<]{9})<(?P<tail>[A-Z0-9]+)(?P<digit>[0-9])<")
    tail = pc.struct_field(long_td1, "tail")
    td1 = pc.fill_null(pc.and_(pc.equal(length, 90), pc.is_valid(tail)), False)
    number = pc.if_else(td1, pc.binary_join_element_wise(pc.struct_field(long_td1, "head"),
                                                         tail, ""), number)
    digit = pc.if_else(td1, pc.struct_field(long_td1, "digit"), digit)
    # The number's check digit as printed (screening re-reads the few MRZs of near-miss
    # candidates whole for their evidence: sltd.search.near_tier)
    printed = pc.if_else(pc.match_substring_regex(pc.fill_null(digit, ""), "^[0-9]$"),
                         digit, "-1").cast(pa.int8())
    number = pc.replace_substring(number, "<", "")
    code = pc.if_else(is_mrz, pc.replace_substring(pc.utf8_slice_codeunits(text, 0, 2), "<", ""),
                      null)
    enc = code.dictionary_encode()
    types = pa.array([document_type(c) for c in enc.dictionary.to_pylist()], pa.string()
                     ).take(enc.indices) if len(enc.dictionary) else null
    country = pc.if_else(is_mrz, pc.utf8_slice_codeunits(text, 2, 5), null)
    return ({"document_number": number, "document_type": types, "issuing_country": country,
             "number_check": printed}, pc.invert(is_mrz))
