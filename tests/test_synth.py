import datetime as dt
import re
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sltd import SourceError, open_index
from sltd.issuance import (
    BLANK_BATCH,
    EPOCH,
    UNIT_RECORDS,
    expiry_days,
    issuance_plan,
    validity_years,
)
from sltd.number_formats import prefix_for
from sltd.synth import (
    ALPHABETS,
    STATUS_WEIGHTS,
    plan_of,
    shape_for,
    synth_manifest,
    synth_records,
    synth_stream,
    write_synth,
)

KEYS = ["document_number", "document_type", "issuing_country"]
LIST = synth_records(30_000, seed=8, numbering="ranges")
PLAN = plan_of(LIST.schema.metadata)
FOUND = PLAN.locate(*LIST.select(KEYS).columns)
TODAY = (PLAN.today - EPOCH).days
SMALL = synth_records(5000, seed=8, numbering="ranges")


def days(column: pa.ChunkedArray) -> np.ndarray:
    """Days since 1970 (-1 for a null)."""
    return np.array([-1 if d is None else (d - EPOCH).days for d in column.to_pylist()])


def keys_of(table: pa.Table) -> set[tuple[str, str, str]]:
    return set(zip(*(table.column(c).to_pylist() for c in KEYS), strict=True))


LISTED = keys_of(LIST)


# --- random numbering ------------------------------------------------------------------

def test_synthetic_records_are_valid_unique_and_reproducible():
    a = synth_records(5000, seed=4)
    b = synth_records(5000, seed=4)
    assert a.equals(b)
    keys = set(zip(a.column("document_number").to_pylist(), a.column("document_type").to_pylist(),
                   a.column("issuing_country").to_pylist(), strict=True))
    assert len(keys) == 5000
    with open_index(":memory:", create=True) as ix:
        rep = ix.load(a)
    assert (rep.inserted, rep.rejected) == (5000, 0)


def test_synthetic_mix_is_realistic():
    t = synth_records(20000, seed=5)
    statuses = set(t.column("status").to_pylist())
    assert statuses == set(STATUS_WEIGHTS)
    countries = t.column("issuing_country").to_pylist()
    top = max(set(countries), key=countries.count)
    assert countries.count(top) > 10 * countries.count("NZL")  # skewed
    blanks = [i for i, s in enumerate(t.column("status").to_pylist()) if s == "stolen_blank"]
    issue = t.column("date_of_issue").to_pylist()
    assert all(issue[i] is None for i in blanks)
    assert 0 < sum(x is None for x in t.column("place_of_loss").to_pylist()) < len(t)


# --- ranges numbering: the list --------------------------------------------------------

def test_a_ranges_list_is_valid_unique_and_has_the_random_lists_columns():
    assert LIST.schema.equals(synth_records(10, seed=1).schema)
    assert len(LISTED) == LIST.num_rows
    assert set(LIST.column("status").to_pylist()) == set(STATUS_WEIGHTS)
    with open_index(":memory:", create=True) as ix:
        rep = ix.load(SMALL)
    assert (rep.inserted, rep.rejected) == (5000, 0)


@pytest.mark.parametrize(("country", "doc_type", "pattern"), [
    ("CHN", "P", r"E\d{8}"),  # a fixed prefix + 8 digits
    ("FRA", "P", r"\d\d[A-Z]{2}\d{5}"),  # two digits, two letters, five digits
    ("GBR", "P", r"\d{9}"),
    ("GBR", "I", r"[A-Z]{2}\d{7}"),
    ("USA", "P", r"[A-Z]\d{8}"),
    ("DEU", "P", r"C[CFGHJKLMNPRTVWXYZ0-9]{8}"),
])
def test_issuers_print_their_own_format(country, doc_type, pattern):
    numbers = [n for n, t, c in LISTED if (c, t) == (country, doc_type)]
    assert numbers
    assert all(re.fullmatch(pattern, n) for n in numbers), numbers[:5]


def test_every_number_is_its_issuers_prefix_then_shape():
    classes = {k: f"[{re.escape(v.decode())}]" for k, v in ALPHABETS.items()}
    for number, doc_type, country in LISTED:
        prefix, shape = prefix_for(country, doc_type), shape_for(country, doc_type)
        pattern = re.escape(prefix) + "".join(classes[c] for c in shape[len(prefix):])
        assert re.fullmatch(pattern, number), (number, doc_type, country)


def test_every_record_sits_in_a_range_of_its_issuer_with_its_dates():
    assert (FOUND.range >= 0).all()
    assert (FOUND.blank == (np.array(LIST.column("status").to_pylist()) == "stolen_blank")).all()
    issue, expiry = days(LIST.column("date_of_issue")), days(LIST.column("date_of_expiry"))
    dated = issue >= 0
    assert ((expiry >= 0) == dated).all()
    assert 0.7 < dated[~FOUND.blank].mean() < 0.95  # optional fields: mostly filled
    assert (issue[dated] == FOUND.issue[dated]).all()
    assert (expiry[dated] == FOUND.expiry[dated]).all()
    assert (FOUND.issue[~FOUND.blank] < TODAY).all()


def test_serials_of_a_range_are_issued_in_order_and_neighbours_share_a_day():
    g = PLAN.formats.index(LIST.column("document_type"), LIST.column("issuing_country"))
    key = PLAN.g_base[g] + PLAN.formats.serials(LIST.column("document_number"), g)
    order = np.lexsort((key, FOUND.range))
    same_range = np.diff(FOUND.range[order]) == 0
    assert (np.diff(key[order])[same_range] > 0).all()
    assert (np.diff(FOUND.issue[order])[same_range] >= 0).all()  # issue date follows serial
    assert (np.diff(FOUND.expiry[order])[same_range] >= 0).all()
    # consecutive issued serials of ranges issuing >= 4 a day (a list's size sets the
    # volume: ~30 issued per listed record, so small lists have slow ranges)
    busy = (PLAN.r_issued >= 4 * PLAN.r_days)[FOUND.range[order]][1:]
    neighbours = same_range & busy & (np.diff(key[order]) == 1) & ~FOUND.blank[order][1:] \
        & ~FOUND.blank[order][:-1]
    assert neighbours.sum() > 20
    assert (np.diff(FOUND.issue[order])[neighbours] == 0).mean() > 0.7


@pytest.mark.parametrize("years", [5, 10])
def test_documents_are_valid_5_or_10_years_by_issuer(years):
    g = PLAN.r_group[FOUND.range]
    mine = PLAN.g_years[g] == years
    assert mine.any()
    reference = np.array([_expiry_reference(d, years) for d in FOUND.issue[mine][:500]])
    assert (FOUND.expiry[mine][:500] == reference).all()
    assert {validity_years(c, t) for c, t in PLAN.formats.issuers} == {5, 10}


def test_each_range_lists_1_5_to_6_percent_of_what_it_issued():
    issued_listed = np.bincount(FOUND.range[~FOUND.blank], minlength=len(PLAN.r_key))
    assert (issued_listed == PLAN.r_listed).all()
    share = issued_listed / PLAN.r_issued
    assert share.min() >= 0.015
    assert share.max() <= 0.06


def test_stolen_blanks_are_runs_of_20_to_500_consecutive_serials_with_few_dates():
    g = PLAN.formats.index(LIST.column("document_type"), LIST.column("issuing_country"))
    key = np.sort((PLAN.g_base[g] + PLAN.formats.serials(LIST.column("document_number"), g))
                  [FOUND.blank])
    runs = np.split(key, np.flatnonzero(np.diff(key) != 1) + 1)
    lengths = np.array([len(r) for r in runs])
    assert len(runs) == len(PLAN.b_len) - 1  # one run per batch (the last is a sentinel)
    assert lengths.min() >= BLANK_BATCH[0]
    assert lengths.max() <= BLANK_BATCH[1]
    assert 0.02 < FOUND.blank.mean() < 0.07
    assert (days(LIST.column("date_of_issue"))[FOUND.blank] >= 0).mean() < 0.3


def test_same_seed_same_list_other_seed_other_list():
    again = synth_records(5000, seed=8, numbering="ranges")
    assert again.equals(SMALL)
    assert again.schema.metadata == SMALL.schema.metadata
    other = synth_records(5000, seed=9, numbering="ranges")
    assert len(keys_of(other) & keys_of(SMALL)) < 50


@settings(max_examples=6)
@given(batch_rows=st.integers(400, 5000))
def test_any_batch_size_streams_the_same_list(batch_rows):
    batches = list(synth_stream(5000, seed=8, numbering="ranges", batch_rows=batch_rows))
    assert all(b.num_rows == batch_rows for b in batches[:-1])
    assert pa.Table.from_batches(batches).equals(SMALL)


@settings(max_examples=8)
@given(start=st.integers(0, 29_999), length=st.integers(1, 3000))
def test_any_slice_of_the_plan_is_that_slice_of_the_list(start, length):
    got = pa.Table.from_batches([PLAN.records(start, start + length)])
    assert got.equals(LIST.slice(start, length).cast(got.schema))


def test_writing_in_chunks_gives_the_one_shot_table_and_keeps_the_plan(tmp_path):
    write_synth(tmp_path / "r.parquet", 5000, seed=8, numbering="ranges", batch_rows=1024)
    assert not (tmp_path / "r.parquet.partial").exists()
    written = pq.read_table(tmp_path / "r.parquet")
    assert written.equals(SMALL)
    assert pq.ParquetFile(tmp_path / "r.parquet").metadata.num_row_groups == 5
    assert plan_of(written.schema.metadata) is not None


def test_a_write_that_fails_midway_leaves_no_file_and_no_thread(tmp_path, monkeypatch):
    from sltd.issuance import IssuancePlan

    made = IssuancePlan.records

    def records(self, start, stop):
        if start >= 2000:
            raise OSError("disk full")
        return made(self, start, stop)

    monkeypatch.setattr(IssuancePlan, "records", records)
    with pytest.raises(OSError, match="disk full"):
        write_synth(tmp_path / "r.parquet", 5000, seed=8, numbering="ranges", batch_rows=1000)
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "sltd-synth"]


def test_a_130m_record_plan_fits_every_format_in_units_that_bound_memory():
    plan = issuance_plan(130_000_000, seed=7)
    assert plan.u_count.sum() == 130_000_000
    assert plan.u_count.max() <= max(UNIT_RECORDS, 256 * BLANK_BATCH[1])
    with pytest.raises(SourceError, match="too many for ranges-numbered"):
        issuance_plan(2_000_000_000, seed=7)


@settings(max_examples=40)
@given(data=st.data())
def test_numbers_and_serials_round_trip_in_every_format(data):
    g = data.draw(st.integers(0, len(PLAN.formats.issuers) - 1))
    capacity = int(np.prod(PLAN.formats.radix[g]))
    serial = np.array(data.draw(st.lists(st.integers(0, capacity - 1), min_size=1,
                                         max_size=20)))
    numbers = PLAN.formats.numbers(np.full(len(serial), g), serial)
    assert numbers.to_pylist() == [_number_reference(g, s) for s in serial.tolist()]
    assert (PLAN.formats.serials(numbers, np.full(len(serial), g)) == serial).all()


def test_numbers_of_no_range_are_located_nowhere():
    found = PLAN.locate(pa.array(["E1234567", "e12345678", None, "ZZ", "123456789"]),
                        pa.array(["P", "P", "P", "P", "Q"]),
                        pa.array(["CHN", "CHN", "CHN", "CHN", "GBR"]))
    assert (found.range == -1).all()


@settings(max_examples=30)
@given(start=st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)), years=st.integers(1, 15))
def test_expiry_is_the_day_before_the_anniversary(start, years):
    first = (start - EPOCH).days
    issue = np.arange(first, first + 5000)  # > 4096 days: the lookup-table path
    expected = [_expiry_reference(int(d), years) for d in issue[::97]]
    assert (expiry_days(issue, years)[::97] == expected).all()
    assert expiry_days(issue[:3], years).tolist() == expected[:1] + \
        [_expiry_reference(int(d), years) for d in issue[1:3]]


# --- ranges numbering: manifests -------------------------------------------------------

MANIFEST = synth_manifest(LIST, 20_000, listed=0.01, seed=3)


def test_a_manifest_plants_listed_documents_and_says_which():
    listed = np.array(MANIFEST.column("listed").to_pylist())
    assert listed.sum() == 200
    carried = list(zip(*(MANIFEST.column(c).to_pylist() for c in KEYS), strict=True))
    assert [k in LISTED for k in carried] == listed.tolist()
    assert MANIFEST.column("passenger_id").to_pylist()[:2] == ["PAX1", "PAX2"]


def test_clean_manifest_documents_were_issued_from_the_ranges_with_their_true_dates():
    clean = MANIFEST.filter(pa.compute.invert(MANIFEST.column("listed")))
    found = PLAN.locate(*clean.select(KEYS).columns)
    assert (found.range >= 0).all()
    assert not found.blank.any()
    issue, expiry = days(clean.column("date_of_issue")), days(clean.column("date_of_expiry"))
    assert (issue == found.issue).all()
    assert (expiry == found.expiry).all()
    assert (expiry >= TODAY).all()  # a passenger travels on a valid document
    assert (issue < TODAY).all()


def test_listed_manifest_documents_carry_their_true_dates_blanks_their_batchs():
    dirty = MANIFEST.filter(MANIFEST.column("listed"))
    found = PLAN.locate(*dirty.select(KEYS).columns)
    assert (days(dirty.column("date_of_expiry")) == found.expiry).all()
    assert (days(dirty.column("date_of_issue")) == found.issue).all()


def test_a_manifest_from_the_records_file_is_the_manifest_from_the_table(tmp_path):
    write_synth(tmp_path / "r.parquet", 5000, seed=8, numbering="ranges", batch_rows=1000)
    from_file = synth_manifest(tmp_path / "r.parquet", 3000, listed=0.01, seed=3)
    assert from_file.equals(synth_manifest(SMALL, 3000, listed=0.01, seed=3))


def test_a_manifest_of_random_records_keeps_its_four_columns():
    m = synth_manifest(synth_records(2000, seed=1), 500, listed=0.02, seed=1)
    assert m.column_names == ["passenger_id", *KEYS]


def _expiry_reference(issue_day: int, years: int) -> int:
    """Slow, obviously correct: the anniversary by datetime (29 February -> 1 March)."""
    d = EPOCH + dt.timedelta(days=int(issue_day))
    try:
        anniversary = d.replace(year=d.year + years)
    except ValueError:
        anniversary = dt.date(d.year + years, 3, 1)
    return (anniversary - dt.timedelta(days=1) - EPOCH).days


def _number_reference(g: int, serial: int) -> str:
    """Slow, obviously correct: the serial written digit by digit from the right."""
    out = []
    for p in range(int(PLAN.formats.width[g])):
        radix = int(PLAN.formats.radix[g, p])
        serial, digit = divmod(serial, radix)
        out.append(chr(PLAN.formats.alphabets[PLAN.formats.alpha[g, p], digit]))
    return "".join(reversed(out))
