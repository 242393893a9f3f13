"""First-level checks: exact, partial and near hits, explanations, hit ids."""

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sltd import HitIdError, InvalidNumber, MatchKind, Record, UnknownCountry, open_index
from sltd.errors import InvalidDate, ValidationError
from sltd.model import ErrorClass, Evidence, Reading
from sltd.mrz import check_digit
from sltd.normalize import fold_number
from sltd.search import (
    HitIds,
    classify,
    classify_table,
    edit1_variants,
    explain,
    near_tier,
)
from sltd.synth import ERROR_KINDS, inject_error, synth_records


@pytest.fixture
def listed(index):
    index.upsert([
        Record("X1234567", "P", "FRA", "stolen", owner_ncb="FRA", place_of_loss="Paris"),
        Record("X1234567", "I", "DEU", "lost"),
        Record("AB0012345", "P", "ITA", "stolen_blank"),
    ])
    return index


def kinds(hits):
    return [(h.match.value, h.number, str(h.doc_type), h.country) for h in hits]


def test_exact_needs_all_three_fields_equal(listed):
    assert kinds(listed.check("X1234567", "P", "FRA")) == [
        ("exact", "X1234567", "P", "FRA"), ("partial", "X1234567", "I", "DEU")]


def test_number_alone_gives_partial_hits_in_every_country(listed):
    assert kinds(listed.check("x123-4567", exact_only=True)) == [
        ("partial", "X1234567", "I", "DEU"), ("partial", "X1234567", "P", "FRA")]


def test_a_miss_is_empty(listed):
    assert listed.check("Q9999999", "P", "FRA") == []
    assert listed.check("Q9999999", exact_only=True) == []


def test_bad_input_is_refused_even_on_a_miss(listed):
    with pytest.raises(UnknownCountry):
        listed.check("Q9999999", "P", "XYZ", exact_only=True)
    with pytest.raises(InvalidNumber):
        listed.check("??", exact_only=True)


@pytest.mark.parametrize(("query", "why", "kind", "error"), [
    ("AB0O12345", "'0' read as 'O' at position 4", "near", "ocr_confusion"),
    ("A8OO12345", "'B' read as '8' at position 2", "near", "ocr_confusion"),
    ("AB0021345", "characters 5-6 transposed", "lead", "transposition"),
    ("AB00123456", "extra '6' at position 10", "lead", "insertion"),
    ("AB001245", "missing '3' before position 7", "lead", "deletion"),
    ("AB0012346", "'6' at position 9 where the record has '5'", "lead", "substitution"),
])
def test_near_misses_are_found_classified_and_explained(listed, query, why, kind, error):
    """Typed: look-alike characters are near hits; one edit is a lead, shown on request."""
    hits = listed.check(query, "P", "ITA", leads=True)
    assert [(h.match.value, h.number) for h in hits] == [(kind, "AB0012345")]
    assert why in hits[0].explanation
    assert hits[0].error.value == error
    assert 0 < hits[0].score < 100
    assert hits[0].as_dict()["error"] == error
    if kind == "lead":  # not a hit: left out unless asked for
        assert listed.check(query, "P", "ITA") == []


def test_a_lead_is_promoted_to_a_near_hit_by_a_matching_expiry_date(index):
    index.upsert([Record("X1234567", "P", "FRA", "stolen", date_of_expiry="2031-05-02")])
    assert index.check("X1234568", "P", "FRA") == []
    same = index.check("X1234568", "P", "FRA", expiry="2031-05-02")
    assert [(h.match, h.evidence) for h in same] == [(MatchKind.NEAR,
                                                      (Evidence.EXPIRY_MATCHES,))]
    other = index.check("X1234568", "P", "FRA", expiry=dt.date(2030, 1, 1), leads=True)
    assert [(h.match, h.evidence) for h in other] == [(MatchKind.LEAD,
                                                       (Evidence.EXPIRY_DIFFERS,))]
    with pytest.raises(InvalidDate, match="date_of_expiry"):
        index.check("X1234568", "P", "FRA", expiry="02/05/2031")


def test_near_misses_stay_in_the_queried_country_and_can_be_switched_off(listed):
    assert listed.check("AB0O12345", "P", "FRA") == []
    assert listed.check("AB0O12345", "P", "ITA", exact_only=True) == []


def test_exact_ranks_before_partial_before_near_before_leads(index):
    index.upsert([Record("X1234567", "P", "FRA", "lost"), Record("X1234567", "P", "DEU", "lost"),
                  Record("X1234568", "P", "FRA", "lost"), Record("X12345G7", "P", "FRA", "lost")])
    assert [h.match.value for h in index.check("X1234567", "P", "FRA", leads=True)] == [
        "exact", "partial", "near", "lead"]


def test_hit_is_first_level_only(listed):
    hit = listed.check("X1234567", "P", "FRA")[0]
    assert set(hit.as_dict()) == {"hit_id", "number", "type", "country", "match"}
    assert "stolen" not in repr(hit)
    assert "Paris" not in repr(hit)


def test_hit_ids_are_bound_to_the_searching_ncb_and_unforgeable():
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ids = HitIds(b"secret")
    h = ids.mint(7, t.timestamp(), "FRA")
    assert ids.verify(h, "FRA", now=t).record_id == 7
    for other, hit_id, ncb in ((ids, h, "DEU"), (HitIds(b"other"), h, "FRA"),
                               (ids, h[:-2] + "aa", "FRA"), (ids, "garbage!", "FRA")):
        with pytest.raises(HitIdError, match="not issued"):
            other.verify(hit_id, ncb, now=t)


@pytest.mark.parametrize(("later", "message"), [
    (dt.timedelta(seconds=-1), "issued in the future"),
    (dt.timedelta(minutes=31), "older than"),
])
def test_hit_ids_from_the_future_or_too_old_are_refused(later, message):
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ids = HitIds(b"secret")
    with pytest.raises(HitIdError, match=message):
        ids.verify(ids.mint(7, t.timestamp(), "FRA"), "FRA", now=t + later)


def test_a_hit_id_minted_without_an_ncb_says_how_to_get_a_revealable_one():
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ids = HitIds(b"secret")
    with pytest.raises(HitIdError, match="without a searching NCB.*init --ncb"):
        ids.verify(ids.mint(7, t.timestamp(), ""), "DEU", now=t)


@given(st.lists(st.integers(0, 2**63 - 1), max_size=20), st.sampled_from(["FRA", "GS", ""]))
def test_batch_hit_ids_equal_single_ones_and_verify(record_ids, ncb):
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    minter = HitIds(b"secret")
    ids = minter.mint_many(record_ids, t.timestamp(), ncb).to_pylist()
    assert ids == [minter.mint(r, t.timestamp(), ncb) for r in record_ids]
    assert [minter.verify(h, ncb, now=t).record_id for h in ids] == record_ids


_codes = st.sampled_from(["AB1234", "AB1243", "A81234", "AB12345", "XB1234"])


@given(st.lists(st.tuples(_codes, st.sampled_from(["P", "I", None]),
                          st.sampled_from(["FRA", "DEU", None]), _codes,
                          st.sampled_from(["P", "I"]), st.sampled_from(["FRA", "DEU"])),
                min_size=1, max_size=30), st.booleans())
def test_classify_table_agrees_with_classify_row_by_row(pairs, exact_only):
    names = ["number", "type", "country", "record_number", "record_type", "record_country"]
    table = pa.table({"row": list(range(len(pairs))),
                      **{n: [p[i] for p in pairs] for i, n in enumerate(names)}})
    got = {(r["row"], r["match"], r["score"], r["explanation"])
           for r in classify_table(table, exact_only=exact_only).to_pylist()}
    want = set()
    for i, p in enumerate(pairs):
        m = classify(*p, exact_only=exact_only)
        if m is not None:
            want.add((i, m[0].value, m[1], m[2]))
    assert got == want


def test_edit1_variants_cover_every_edit_kind():
    v = set(edit1_variants("A1C"))
    assert {"1C", "1AC", "A1CX", "AXC", "AC"} <= v
    assert "A1C" not in v


def test_explain_combines_confusion_and_edit():
    assert explain("X12O4567", "X1204567")[1] == "'0' read as 'O' at position 4"


# --- properties against a loaded synthetic index ---------------------------------------

RECORDS = synth_records(2000, seed=11)
_IX = None


def synthetic_index():
    global _IX
    if _IX is None:
        _IX = open_index(":memory:", create=True)
        _IX.load(RECORDS)
    return _IX


rows = st.integers(0, RECORDS.num_rows - 1).map(lambda i: RECORDS.slice(i, 1).to_pylist()[0])


@given(rows, st.sampled_from(["", " ", "-", "."]), st.booleans())
def test_every_loaded_record_is_an_exact_hit_of_its_own_fields(row, sep, lower):
    n = row["document_number"]
    q = n[:3] + sep + n[3:]
    q = q.lower() if lower else q
    hits = synthetic_index().check(q, row["document_type"], row["issuing_country"],
                                   exact_only=True)
    assert hits[0].match is MatchKind.EXACT
    assert hits[0].number == n


@given(st.text(alphabet="ABCDEFGHJKMNPRTUVWXY0123456789", min_size=6, max_size=12))
def test_numbers_not_loaded_are_never_exact_hits(number):
    listed = set(RECORDS.column("document_number").to_pylist())
    assume(number not in listed)
    hits = synthetic_index().check(number, "P", "FRA", leads=True)
    assert all(h.match in (MatchKind.NEAR, MatchKind.LEAD) for h in hits)


EDITS = st.sampled_from(ERROR_KINDS)


@given(rows, EDITS, st.integers(0, 30), st.sampled_from("ABCXYZ0123456789"))
def test_every_single_error_of_each_kind_finds_the_record(row, kind, pos, ch):
    n = row["document_number"]
    q = inject_error(n, kind, pos, ch)
    assume(q is not None and len(q) >= 3)
    hits = synthetic_index().check(q, row["document_type"], row["issuing_country"],
                                   leads=True)
    assert (n, row["issuing_country"]) in {(h.number, h.country) for h in hits}


DOCUMENTS = st.lists(st.one_of(
    rows.map(lambda r: (r["document_number"], r["document_type"], r["issuing_country"])),
    st.tuples(rows, EDITS, st.integers(0, 12), st.sampled_from("ABC0O1I8")).map(
        lambda t: (inject_error(t[0]["document_number"], t[1], t[2], t[3]) or "X1",
                   t[0]["document_type"], t[0]["issuing_country"])),
    st.tuples(st.text("ABCXYZ0123456789-? ", min_size=1, max_size=12),
              st.sampled_from([None, "P", "I", "ZZ"]),
              st.sampled_from([None, "FRA", "DEU", "XYZ"]))), max_size=30)


@given(DOCUMENTS, st.booleans(), st.booleans())
def test_a_batch_check_answers_each_document_as_a_single_check(documents, exact_only, leads):
    ix = synthetic_index()

    def plain(hits):
        return [(h.number, str(h.doc_type), h.country, h.match, round(h.score, 6),
                 h.explanation, h.error, h.evidence) for h in hits]

    many = ix.check_many(documents, exact_only=exact_only, leads=leads, ncb="DEU")
    assert len(many) == len(documents)
    for doc, got in zip(documents, many, strict=True):
        try:
            want: list | ValidationError = ix.check(*doc, exact_only=exact_only,
                                                    leads=leads, ncb="DEU")
        except ValidationError as e:
            want = e
        if isinstance(want, ValidationError):
            assert isinstance(got, ValidationError), doc
            assert got.field == want.field
        else:
            assert isinstance(got, list), (doc, got)
            assert plain(got) == plain(want), doc


def test_load_accepts_arrow_tables_directly():
    t = pa.table({"document_number": ["X1234567"], "document_type": ["P"],
                  "issuing_country": ["FRA"], "status": ["lost"]})
    with open_index(":memory:", create=True) as ix:
        assert ix.load(t).inserted == 1


# --- MRZ input: the number's check digit as evidence ------------------------------------

MRZ_ROWS = rows.filter(lambda r: r["document_type"] in ("P", "I", "R", "V", "PD", "PS", "O")
                       and len(r["document_number"]) <= 9)


@given(MRZ_ROWS, EDITS, st.integers(0, 30), st.sampled_from("ABCXYZ0123456789"))
def test_every_single_misreading_of_an_mrz_finds_the_record(row, kind, pos, ch):
    from sltd.synth import synth_mrz

    n = row["document_number"]
    q = inject_error(n, kind, pos, ch)
    assume(q is not None and 3 <= len(q) <= 9)
    # the misreadings a check digit detects, and look-alikes (which it need not)
    detected = check_digit(q) != check_digit(n)
    assume(detected or fold_number(q) == fold_number(n))
    expiry = row["date_of_expiry"].strftime("%y%m%d") if row["date_of_expiry"] else "310415"
    mrz = synth_mrz(n, row["document_type"], row["issuing_country"], read_as=q,
                    expiry=expiry)  # as printed on the listed document
    result = synthetic_index().check_mrz(mrz, leads=True)
    found = {(h.number, h.country): h.match for h in result.hits}
    # a detected misreading is a hit; an undetected look-alike that the issuer's numbers
    # carry both ways (G/6, L/1 never change the digit) may be a lead
    assert found[n, row["issuing_country"]].is_hit or not detected


def test_a_verified_mrz_number_keeps_only_its_look_alikes(index):
    from sltd.synth import synth_mrz

    assert check_digit("N1234567") == check_digit("X1234567")  # N and X are 10 apart
    index.upsert([Record(n, "P", "FRA", "stolen")
                  for n in ("X1234568", "X1Z34567", "N1234567")])
    typed = {(h.number, h.match.value) for h in index.check("X1234567", "P", "FRA",
                                                            leads=True)}
    assert typed == {("X1Z34567", "near"), ("X1234568", "lead"), ("N1234567", "lead")}
    read = index.check_mrz(synth_mrz("X1234567", "P", "FRA"), leads=True)
    assert read.mrz.consistent
    # the reading is confirmed: no edit-distance candidate, not even as a lead; the
    # record that differs by a look-alike (2/Z) stays a near hit
    assert [(h.number, h.match, h.evidence) for h in read.hits] == [
        ("X1Z34567", MatchKind.NEAR, (Evidence.LOOK_ALIKE,))]


def test_a_look_alike_the_issuer_also_issues_is_another_number_not_a_misreading(index):
    """Where the issuer's listed numbers carry both characters (German serials: G and 6,
    L and 1), a look-alike difference is ruled as an edit; where they cannot (a letter
    where the issuer has only digits), it stays a near hit."""
    from sltd.synth import synth_mrz

    serials = [f"C0{c}X{d}4567" for c in "G6L1" for d in "0123456789"]
    index.upsert([Record(n, "P", "DEU", "stolen", date_of_expiry="2031-05-02"
                         if n == "C06X94567" else "2029-01-01") for n in serials])
    index.upsert([Record("X1204567", "P", "FRA", "stolen"),
                  Record("X1234567", "P", "FRA", "stolen")])
    hits = index.check("C0GX94567", "P", "DEU", leads=True)
    assert hits[0].number == "C0GX94567"
    assert hits[0].match is MatchKind.EXACT
    assert ("C06X94567", MatchKind.LEAD, (Evidence.ISSUER_USES_BOTH,)) in {
        (h.number, h.match, h.evidence) for h in hits}
    # typed, not listed: the G/6 look-alike is a lead, promoted by the expiry date
    index.withdraw("C0GX94567", "P", "DEU")
    assert index.check("C0GX94567", "P", "DEU") == []
    dated = index.check("C0GX94567", "P", "DEU", expiry="2031-05-02")
    assert [(h.number, h.match, h.evidence) for h in dated] == [
        ("C06X94567", MatchKind.NEAR, (Evidence.ISSUER_USES_BOTH, Evidence.EXPIRY_MATCHES))]
    # a verified MRZ: the digit cannot tell G from 6; a lead, whatever the expiry date
    read = index.check_mrz(synth_mrz("C0GX94567", "P", "DEU", expiry="310502"))
    assert read.mrz.consistent
    assert read.hits == []
    read = index.check_mrz(synth_mrz("C0GX94567", "P", "DEU", expiry="310502"), leads=True)
    assert [(h.number, h.match, h.evidence) for h in read.hits] == [
        ("C06X94567", MatchKind.LEAD, (Evidence.ISSUER_USES_BOTH,
                                       Evidence.CHECK_DIGIT_CONSISTENT,
                                       Evidence.EXPIRY_MATCHES))]
    # misread (6 read as O: the printed digit fails and points to the record): near
    misread = index.check_mrz(synth_mrz("C06X94567", "P", "DEU", read_as="C0OX94567",
                                        expiry="310502"))
    assert [(h.number, h.match) for h in misread.hits] == [("C06X94567", MatchKind.NEAR)]
    # a letter where the issuer has only digits: a misreading (typed or read)
    assert [(h.number, h.match, h.evidence) for h in index.check("X12O4567", "P", "FRA")
            ] == [("X1204567", MatchKind.NEAR, (Evidence.LOOK_ALIKE,))]


@given(NUMBERS_MRZ := st.text(alphabet="ABCXYZ0123456789", min_size=5, max_size=9),
       st.sampled_from(["O0", "0O", "L1", "1L", "G6", "6G", "Z2", "B8", "S5", "IL"]),
       st.integers(0, 8), st.booleans(), st.sampled_from([None, True, False]))
def test_a_look_alike_the_issuer_carries_survives_only_what_the_digit_allows(
        true, pair, pos, verified, expiry_same):
    """Issuer carrying every character (``carries`` always true): a look-alike read
    survives an MRZ only with the printed digit, and is a near hit then exactly when
    the digit failed (a lead when it verified); typed, it is a lead unless the expiry
    dates match."""
    pos %= len(true)
    read = true[:pos] + pair[0] + true[pos + 1:]
    listed = true[:pos] + pair[1] + true[pos + 1:]
    assume(read != listed)
    printed = check_digit(true)
    day = dt.date(2030, 1, 1)
    record_expiry = None if expiry_same is None else day
    doc_expiry = day if expiry_same else dt.date(2031, 1, 1)
    reading = Reading(printed, verified=check_digit(read) == printed and verified,
                      expiry=doc_expiry)
    tier = near_tier(read, listed, reading, record_expiry, lambda i, ch: True)
    if check_digit(listed) != printed:
        assert tier is None
    else:
        assert tier is not None
        assert Evidence.ISSUER_USES_BOTH in tier[2]
        near = not reading.verified
        assert tier[0] is (MatchKind.NEAR if near else MatchKind.LEAD)
    typed = near_tier(read, listed, Reading(expiry=doc_expiry), record_expiry,
                      lambda i, ch: True)
    assert typed is not None
    assert typed[0] is (MatchKind.NEAR if expiry_same is True else MatchKind.LEAD)


def test_a_failed_mrz_digit_keeps_the_candidates_with_the_printed_digit(index):
    from sltd.synth import synth_mrz

    index.upsert([Record(n, "P", "FRA", "stolen", date_of_expiry="2030-01-01")
                  for n in ("X1234567", "X1234568")])
    # printed for X1234567, read as X1234569: X1234567 has the printed digit, X1234568
    # has not (both one edit away)
    misread = index.check_mrz(synth_mrz("X1234567", "P", "FRA", read_as="X1234569"),
                              leads=True)
    assert "document number" in misread.mrz.failed_checks
    assert [(h.number, h.match) for h in misread.hits] == [("X1234567", MatchKind.NEAR)]
    assert Evidence.CHECK_DIGIT_CONSISTENT in misread.hits[0].evidence
    assert misread.hits[0].error is ErrorClass.SUBSTITUTION


NUMBERS = st.text(alphabet="ABCXYZ0123456789", min_size=5, max_size=9)


@given(NUMBERS, EDITS, st.integers(0, 12), st.sampled_from("ABCXYZ0123456789"),
       st.lists(NUMBERS, max_size=5))
def test_a_failed_digit_keeps_exactly_the_candidates_consistent_with_it(
        true, kind, pos, ch, others):
    """An MRZ printed for ``true`` and read as ``read``: of listed numbers one edit (or
    look-alikes) away from the reading, exactly those with the printed check digit, and
    the look-alikes, survive; a detected misreading always finds ``true``."""
    read = inject_error(true, kind, pos, ch)
    assume(read is not None and len(read) >= 3 and check_digit(read) != check_digit(true))
    printed = check_digit(true)
    reading = Reading(printed, verified=False)
    for listed in [true, *others]:
        tier = near_tier(read, listed, reading, None)
        look_alike = fold_number(listed) == fold_number(read)
        assert (tier is not None) == (look_alike or check_digit(listed) == printed)
        if tier is not None:
            assert tier[0] is MatchKind.NEAR
    assert near_tier(read, true, Reading(printed, verified=True), None) is None or \
        fold_number(read) == fold_number(true)
