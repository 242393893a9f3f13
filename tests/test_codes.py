import pytest

from sltd import UnknownCountry, UnknownDocType, UnknownStatus
from sltd.codes import (
    COUNTRIES,
    country_code,
    doc_type_code,
    is_international_organisation,
    status_code,
)


@pytest.mark.parametrize(("given", "code"), [
    ("FRA", "FRA"), ("fra", "FRA"), (" deu ", "DEU"), ("D", "DEU"), ("D<<", "DEU"),
    ("UNO", "UNO"), ("XXA", "XXA"), ("GBD", "GBD"), ("RKS", "RKS"),
])
def test_country_codes_accept_icao_forms(given, code):
    assert country_code(given) == code


@pytest.mark.parametrize("bad", ["", "FR", "XYZ", "FRANCE", "123", None])
def test_unknown_country_names_field_and_value(bad):
    with pytest.raises(UnknownCountry) as e:
        country_code(bad)
    assert e.value.field == "issuing_country"
    assert e.value.value == bad


def test_iso_list_is_complete_and_organisations_are_marked():
    assert len([c for c in COUNTRIES if len(c) == 3]) >= 249 + 20
    assert is_international_organisation("UNO")
    assert not is_international_organisation("FRA")


@pytest.mark.parametrize(("given", "code"), [
    ("P", "P"), ("p", "P"), ("passport", "P"), ("Passport", "P"), ("Identity card", "I"),
    ("IDENTITY_CARD", "I"), ("id", "I"), ("diplomatic passport", "PD"), ("PS", "PS"),
    ("visa", "V"), ("residence-permit", "R"), ("refugee travel document", "T"),
    ("other", "O"),
])
def test_doc_type_by_code_or_name_any_case(given, code):
    assert doc_type_code(given) == code


def test_unknown_doc_type_lists_the_valid_ones():
    with pytest.raises(UnknownDocType) as e:
        doc_type_code("driving licence")
    assert "P (passport)" in str(e.value)


@pytest.mark.parametrize(("given", "code"), [
    ("lost", "lost"), ("STOLEN", "stolen"), ("stolen blank", "stolen_blank"),
    ("STOLEN_BLANK", "stolen_blank"), ("Stolen-Blank", "stolen_blank"), ("revoked", "revoked"),
    ("invalid", "revoked"),
])
def test_status_any_spelling(given, code):
    assert status_code(given) == code


def test_unknown_status():
    with pytest.raises(UnknownStatus):
        status_code("misplaced")
