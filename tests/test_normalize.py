import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sltd import InvalidNumber, canonical_number, fold_number
from sltd.normalize import (
    LOOKALIKES,
    MAX_LENGTH,
    SEPARATORS,
    SQL_CLEAN,
    SQL_VALID,
    fold_bytes,
)


@pytest.mark.parametrize(("raw", "canonical"), [
    ("X1234567", "X1234567"),
    ("x123 4567", "X1234567"),
    ("X12-345-67", "X1234567"),
    ("X12.345/67", "X1234567"),
    ("X1234567<<<", "X1234567"),
    ("\tX1234567\n", "X1234567"),
    ("Ｘ１２３４５６７", "X1234567"),        # full-width, NFKC
    ("Х1234567", "X1234567"),                # Cyrillic Ha
    ("АВ12345", "AB12345"),                  # Cyrillic A, Ve
    ("ΟΡ12345", "OP12345"),                  # Greek Omicron, Rho
    ("X12\u201334567", "X1234567"),          # en dash
])
def test_canonical_form(raw, canonical):
    assert canonical_number(raw) == canonical


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("  - ", "empty"),
    ("X1", "at least"),
    ("X" * 25, "at most"),
    ("X12_345", "'_'"),
    ("X12ß45", "'ß'"),                        # upper() would make it SS: refused
    ("中国12345", "'中'"),
    ("X12#45", "'#'"),
    (None, "required"),
])
def test_invalid_numbers_say_why(raw, reason):
    with pytest.raises(InvalidNumber) as e:
        canonical_number(raw)
    assert reason in e.value.reason
    assert e.value.field == "document_number"


def test_fold_collapses_every_confusion_class():
    assert fold_number("OQD0") == "0000"
    assert fold_number("IL1") == "111"
    assert fold_number("B8S5Z2G6") == "88552266"
    assert fold_bytes("SOB12") == b"50812"


numbers = st.text(alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcxyz"),
                  min_size=3, max_size=MAX_LENGTH)
noisy = st.text(alphabet=st.sampled_from(
    "AB0OQ1Il5Sxyz -./<\t" + "".join(LOOKALIKES)[:20] + "ß#_中Ｘ１"), max_size=30)


@given(numbers)
def test_canonical_is_idempotent(raw):
    c = canonical_number(raw)
    assert canonical_number(c) == c


@given(numbers, st.lists(st.sampled_from(SEPARATORS), max_size=4))
def test_separators_and_case_never_change_the_key(raw, seps):
    spaced = raw[:2].lower() + "".join(seps) + raw[2:]
    assert canonical_number(spaced) == canonical_number(raw)


def _sql_canonical(values):
    """The bulk path: Arrow NFKC, then the SQL twin."""
    con = duckdb.connect()
    t = pa.table({"x": pc.utf8_normalize(pa.array(values, pa.string()), "NFKC")})
    con.register("t", t)
    clean = SQL_CLEAN.format(col="x")
    rows = con.execute(f"SELECT CASE WHEN {SQL_VALID.format(col=clean)} THEN upper({clean}) "
                       "END FROM t").fetchall()
    con.close()
    return [r[0] for r in rows]


@given(st.lists(noisy, min_size=1, max_size=20))
def test_sql_twin_agrees_with_python(values):
    expected = []
    for v in values:
        try:
            expected.append(canonical_number(v))
        except InvalidNumber:
            expected.append(None)
    assert _sql_canonical(values) == expected


def _scalar(value):
    try:
        return canonical_number(value)
    except InvalidNumber:
        return None


_clean = st.text(alphabet="ABCXYZabcxyz0123456789", min_size=1, max_size=30)
_any = st.one_of(_clean, st.text(max_size=30), st.none())


@given(st.lists(st.one_of(_clean, _clean, _any), max_size=30), st.integers(0, 3))
def test_column_canonicalization_equals_the_scalar_one(values, cut):
    from sltd.normalize import canonical_numbers

    column = pa.array(values, pa.string())
    expected = [None if v is None else _scalar(v) for v in values]
    assert canonical_numbers(column).to_pylist() == expected
    # a slice (non-zero offset into the buffers) reads only its own values
    assert canonical_numbers(column.slice(cut)).to_pylist() == expected[cut:]
