"""MRZ parsing (ICAO Doc 9303 specimens) and checks by MRZ."""

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sltd import MatchKind, Record, UnknownCountry
from sltd.errors import MRZError
from sltd.mrz import check_digit, document_type, parse_mrz

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mrz"


@pytest.mark.parametrize(("fixture", "fmt", "code", "number", "doc_type", "nationality"), [
    ("td3_specimen.txt", "TD3", "P", "L898902C3", "P", "UTO"),
    ("td2_specimen.txt", "TD2", "I", "D23145890", "I", "UTO"),
    ("td1_specimen.txt", "TD1", "I", "D23145890", "I", "UTO"),
    ("mrva_specimen.txt", "MRV-A", "V", "L8988901C", "V", "XXX"),
    ("mrvb_specimen.txt", "MRV-B", "V", "L8988901C", "V", "XXX"),
])
def test_icao_specimens_parse_to_the_right_fields(fixture, fmt, code, number, doc_type,
                                                  nationality):
    m = parse_mrz((FIXTURES / fixture).read_text())
    assert (m.format, m.document_code, m.number, m.doc_type, m.country, m.nationality) == (
        fmt, code, number, doc_type, "UTO", nationality)
    assert m.consistent
    assert m.failed_checks == ()


def test_specimen_dates():
    m = parse_mrz((FIXTURES / "td3_specimen.txt").read_text())
    assert (m.birth_date, m.expiry_date) == (dt.date(1974, 8, 12), dt.date(2012, 4, 15))


@pytest.mark.parametrize(("field", "value", "digit"), [
    ("number", "L898902C3", 6), ("birth", "740812", 2), ("expiry", "120415", 9),
    ("fillers", "<<<<<", 0), ("letters", "ZE184226B<<<<<", 1),
])
def test_check_digit_values(field, value, digit):
    assert check_digit(value) == digit


def corrupt_line2(pos, ch):
    l1, l2 = (FIXTURES / "td3_specimen.txt").read_text().split()
    return [l1, l2[:pos] + ch + l2[pos + 1:]]


@pytest.mark.parametrize(("pos", "ch", "failed"), [
    (9, "7", ("document number", "composite")),      # number check digit itself
    (3, "X", ("document number", "composite")),      # a number character
    (15, "9", ("birth date", "composite")),
    (23, "5", ("expiry date", "composite")),
    (30, "X", ("personal number", "composite")),
    (43, "9", ("composite",)),
])
def test_each_failed_check_digit_is_named(pos, ch, failed):
    assert parse_mrz(corrupt_line2(pos, ch)).failed_checks == failed


def test_td1_long_document_number_overflows_into_optional_data():
    number = "D23145890AB12"
    head = "I<UTO" + number[:9] + "<" + number[9:] + str(check_digit(number))
    l1 = head.ljust(30, "<")
    l2 = "7408122F1204159UTO<<<<<<<<<<<"
    l2 = l2[:29] + str(check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]))
    m = parse_mrz([l1, l2, "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"])
    assert (m.number, m.consistent) == (number, True)


def test_input_forms_are_tolerated():
    text = (FIXTURES / "td3_specimen.txt").read_text()
    l1, l2 = text.split()
    assert parse_mrz(f"  \n{l1}  \n\n  {l2}\n ").number == "L898902C3"
    assert parse_mrz([l1, l2]).number == "L898902C3"
    assert parse_mrz(l1 + l2).number == "L898902C3"          # one run-on line
    assert parse_mrz(text.lower()).number == "L898902C3"


@pytest.mark.parametrize(("text", "message"), [
    ("", "found 0 line"),
    ("garbage", "found 1 line"),
    ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO74081", "44 + 18"),
    ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10",
     "45 + 44"),
    ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<1Ж",
     "'Ж'"),
    ("P<UTO ERIKSSON", "' '"),
])
def test_garbage_truncated_overlong_and_non_latin_input_is_refused(text, message):
    with pytest.raises(MRZError) as e:
        parse_mrz(text)
    assert message in str(e.value)
    assert e.value.field == "mrz"


def test_unknown_issuing_state_is_named():
    l1, l2 = (FIXTURES / "td3_specimen.txt").read_text().split()
    with pytest.raises(UnknownCountry, match="MRZ issuing state"):
        parse_mrz(["P<QQQ" + l1[5:], l2])


@pytest.mark.parametrize(("code", "doc_type"), [
    ("P", "P"), ("PD", "PD"), ("PS", "PS"), ("PO", "PS"), ("I", "I"), ("ID", "I"),
    ("AC", "I"), ("C", "I"), ("IR", "R"), ("V", "V"), ("X", "O"),
])
def test_document_codes_map_to_sltd_types(code, doc_type):
    assert document_type(code) == doc_type


def test_german_d_maps_to_deu():
    l1 = "P<D<<MUSTERMANN<<ERIKA".ljust(44, "<")
    number = "C01X00T47"
    l2 = number + str(check_digit(number)) + "D<<6408125F2702283<<<<<<<<<<<<<<<"
    l2 = l2[:43] + str(check_digit(l2[0:10] + l2[13:20] + l2[21:43]))
    m = parse_mrz([l1, l2])
    assert (m.country, m.number) == ("DEU", number)


def test_check_by_mrz_finds_a_listed_passport_read_with_an_ocr_error(index):
    index.upsert([Record("L898902C3", "P", "UTO", "stolen")])
    result = index.check_mrz((FIXTURES / "td3_ocr_error.txt").read_text())
    assert not result.mrz.consistent
    assert [(h.match, h.number) for h in result.hits] == [(MatchKind.NEAR, "L898902C3")]
    assert result.hits[0].explanation == "'0' read as 'O' at position 6"
    exact = index.check_mrz((FIXTURES / "td3_specimen.txt").read_text())
    assert exact.mrz.consistent
    assert exact.hits[0].match is MatchKind.EXACT


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=100))
def test_any_text_is_either_an_mrz_or_a_clear_error(text):
    try:
        parse_mrz(text)
    except (MRZError, UnknownCountry):
        pass
