import dataclasses
import datetime as dt

import pytest

from sltd import DocType, Hit, InvalidDate, MatchKind, Record, Status, UnknownCountry


def test_record_normalizes_every_field():
    r = Record(" x12-345 67 ", "Passport", "d", "STOLEN_BLANK", owner_ncb="deu",
               place_of_loss="  Frankfurt   Airport ", date_of_loss="2025-03-01")
    assert (r.number, r.doc_type, r.country, r.status) == (
        "X1234567", DocType.PASSPORT, "DEU", Status.STOLEN_BLANK)
    assert r.owner_ncb == "DEU"
    assert r.place_of_loss == "Frankfurt Airport"
    assert r.date_of_loss == dt.date(2025, 3, 1)
    assert r.key == ("X1234567", "P", "DEU")


@pytest.mark.parametrize("bad", ["2025-02-30", "20250101", "01/02/2025", "2025-1-1"])
def test_record_refuses_non_iso_dates(bad):
    with pytest.raises(InvalidDate) as e:
        Record("X1234567", "P", "FRA", "lost", date_of_issue=bad)
    assert e.value.field == "date_of_issue"


def test_record_refuses_expiry_before_issue():
    with pytest.raises(InvalidDate, match="expiry is before issue"):
        Record("X1234567", "P", "FRA", "lost", date_of_issue="2020-01-01",
               date_of_expiry="2019-01-01")


def test_owner_ncb_must_be_a_country_code():
    with pytest.raises(UnknownCountry) as e:
        Record("X1234567", "P", "FRA", "lost", owner_ncb="Interpol Lyon")
    assert e.value.field == "owner_ncb"


def test_first_level_hit_carries_no_second_level_field():
    names = {f.name for f in dataclasses.fields(Hit)}
    assert names == {"hit_id", "number", "doc_type", "country", "match", "score",
                     "explanation", "error", "evidence"}
    h = Hit("h1", "X1234567", "P", "FRA", MatchKind.EXACT)
    assert set(h.as_dict()) == {"hit_id", "number", "type", "country", "match"}
