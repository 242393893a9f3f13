"""How issuers number documents: the model behind ranges-numbered synthetic lists.

Listed numbers are not spread at random over the number space. Each issuer (a country and
a document type) prints one format (:mod:`sltd.number_formats`: a serial counts up like
an odometer) and issues from sequential ranges, one after another over the years, each at
its own rate per day. So a document's issue date (and its expiry, 5 or 10 years later)
follows its serial, and same-day neighbours share it. Between 1.6% and 5.8% of a range's
documents end up listed (lost, stolen or revoked), at random serials; and batches of 20
to 500 consecutive blanks, stolen before issue, are listed as ``stolen_blank`` (the range
skips their serials, which are never issued).

:func:`issuance_plan` draws the issuers, ranges and batches of a list of ``n`` records from
a seed; no record is made. The plan then makes any slice of the list
(:meth:`IssuancePlan.records`) with vectorized NumPy: the list is cut into units (a block
of a range's serials, or some of a range's blank batches) emitted in a seeded order, and
every random choice inside a unit comes from a counter-based hash of the seed, the unit
and the draw, so a slice is the same whichever way the list is chunked. The plan also
places any document number back in its range (:meth:`IssuancePlan.locate`) and draws
documents that were issued and are still valid (:meth:`IssuancePlan.issued`): that is how
manifests carry every document's true dates (:func:`ranges_manifest`).

Example:
    >>> plan = issuance_plan(1000, seed=1)
    >>> batch = plan.records(0, 1000)
    >>> found = plan.locate(batch.column("document_number"), batch.column("document_type"),
    ...                     batch.column("issuing_country"))
    >>> batch.num_rows, bool((found.range >= 0).all())
    (1000, True)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa

from sltd.errors import SourceError
from sltd.number_formats import NumberFormats, as_strings, number_formats
from sltd.synth import (
    COUNTRY_WEIGHTS,
    DOC_TYPE_WEIGHTS,
    EPOCH,
    PLACES,
    RECORD_SCHEMA,
    STATUS_WEIGHTS,
    passenger_ids,
)

#: Years a document is valid, by type (5 for the types not named) ...
VALIDITY_BY_TYPE: dict[str, int] = {"P": 10, "I": 10}
#: ... and where an issuer differs.
VALIDITY: dict[tuple[str, str], int] = {
    ("CAN", "P"): 5, ("THA", "P"): 5, ("MYS", "P"): 5, ("IDN", "P"): 5, ("USA", "I"): 5,
}
#: Share of a range's issued documents that end up lost, stolen or revoked, drawn
#: uniformly per range: a range of N documents lists round(share * N), 1.5-6% of it.
LISTED_SHARE = (0.016, 0.058)
#: Share of records that are stolen blanks, in batches of BLANK_BATCH consecutive serials
#: (log-uniform lengths).
BLANK_SHARE = 0.05
BLANK_BATCH = (20, 500)
#: Statuses of listed documents that had been issued (in STATUS_WEIGHTS' proportions).
ISSUED_STATUSES = ("lost", "stolen", "revoked")
#: The date a list is drawn on, unless given: its last issue and loss dates are the day
#: before. Fixed, so a seed always gives the same list.
TODAY = dt.date(2026, 1, 1)
#: Places a blank batch is stolen from.
BLANK_PLACES = ("Printing works", "Consulate", "In transit", "Issuing office")

_MAX_RANGES = 6  # ranges per issuer, at most
_FILL = 0.8  # at most this share of a format's serials lies in its ranges
#: A list is made in units of at most UNIT_RECORDS issued records (a block of a range)
#: or UNIT_BATCHES stolen-blank batches (<= 128,000 records): a slice regenerates at most
#: one unit beyond each of its ends.
UNIT_RECORDS = 1 << 16
UNIT_BATCHES = 256
_DATED = 0.85  # issued records that carry their issue and expiry dates
_BLANK_DATED = 0.15  # blanks that carry their batch's issue and expiry dates
_LOSS_DATED = 0.7  # records that carry a date of loss
_OWNED = 0.9  # records that name their owner NCB (never international organisations)
_PLACED = 0.5  # records that name a place of loss
_BLANK_LAG = 60  # days before its serials' issue date a batch may be stolen
_OVERDRAW = 1.08  # clean candidates drawn per clean document needed (<= 6% are listed)
_ORGS = ("UNO", "XXA", "EUE")
_MASK64 = (1 << 64) - 1
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def validity_years(country: str, doc_type: str) -> int:
    """How many years a (country, type)'s documents are valid."""
    return VALIDITY.get((country, doc_type)) or VALIDITY_BY_TYPE.get(doc_type, 5)


def add_years(days: np.ndarray, years: np.ndarray | int) -> np.ndarray:
    """Days since 1970 plus whole calendar years (29 February goes to 1 March).

    Example:
        >>> d = np.array([(dt.date(2016, 2, 29) - EPOCH).days])
        >>> str(EPOCH + dt.timedelta(days=int(add_years(d, 10)[0])))
        '2026-03-01'
    """
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day_of_month = d - month.astype("datetime64[D]")
    moved = month + (12 * np.asarray(years, dtype=np.int64)).astype("timedelta64[M]")
    return (moved.astype("datetime64[D]") + day_of_month).astype(np.int64)


def expiry_days(issue: np.ndarray, years: np.ndarray | int) -> np.ndarray:
    """Expiry of documents issued on days ``issue`` (since 1970): the day before the
    anniversary ``years`` later.

    Example:
        >>> d = np.array([(dt.date(2019, 5, 2) - EPOCH).days])
        >>> str(EPOCH + dt.timedelta(days=int(expiry_days(d, 10)[0])))
        '2029-05-01'
    """
    issue = np.asarray(issue, np.int64)
    years = np.broadcast_to(np.asarray(years, np.int64), issue.shape)
    if issue.size > 4096:  # calendar arithmetic once per distinct (day, years): ~8x faster
        lo, hi, y0, y1 = issue.min(), issue.max(), years.min(), years.max()
        if (hi - lo + 1) * (y1 - y0 + 1) <= issue.size:
            table = add_years(np.arange(lo, hi + 1)[None, :], np.arange(y0, y1 + 1)[:, None])
            return table[years - y0, issue - lo] - 1
    return add_years(issue, years) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 arrays: a counter-based random source (the same
    input always gives the same well-mixed 64 bits)."""
    x = x + _GOLD
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _salt(seed: int, stream: int) -> np.uint64:
    """The salt of one hash stream of a seed."""
    x = (seed * 0x2545F4914F6CDD1D + stream * 0x9E3779B97F4A7C15) & _MASK64
    return np.uint64(_mix(np.array([x], np.uint64))[0])


def _uniform(h: np.ndarray) -> np.ndarray:
    """Uniform floats in (0, 1], 53 bits of each hash."""
    return ((h >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53


def _field(h: np.ndarray, i: int) -> np.ndarray:
    """Uniform floats in [0, 1) from bits 16i to 16i+15 of each hash (i in 0..3)."""
    return ((h >> np.uint64(16 * i)) & np.uint64(0xFFFF)).astype(np.float64) / 65536.0


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c-1 for each count c, concatenated."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


@dataclasses.dataclass(frozen=True, eq=False)
class Located:
    """Where documents sit in a plan, element-wise. ``range``: the range's index, -1 when
    the number is in none of its issuer's ranges (or the plan has no such issuer);
    ``blank``: a stolen blank's serial; ``issue``, ``expiry``: days since 1970 (for a
    blank, the dates its batch would have been issued with; undefined where ``range`` is
    -1)."""

    range: np.ndarray
    blank: np.ndarray
    issue: np.ndarray
    expiry: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class IssuancePlan:
    """Issuers, ranges, stolen-blank batches and units of a list of ``n`` records (see
    the module docstring); make one with :func:`issuance_plan`.

    Arrays are indexed by issuer (``g_``, as ``formats``), range (``r_``), batch (``b_``,
    with a sentinel batch at the end) or unit in emission order (``u_``). A serial counts
    within an issuer's format; a key is a serial made unique across issuers (``g_base +
    serial``).
    A range's issued documents have offsets 0 .. issued-1; a batch sits before the issued
    offset ``b_offset`` of its range, which skips its serials.
    """

    n: int
    seed: int
    today: dt.date
    formats: NumberFormats
    g_base: np.ndarray
    g_years: np.ndarray  # validity
    r_group: np.ndarray
    r_key: np.ndarray  # key of the first serial
    r_span: np.ndarray  # serials: issued + stolen blank
    r_issued: np.ndarray
    r_listed: np.ndarray  # issued documents that are listed
    r_day0: np.ndarray  # issue date of offset 0 (days since 1970)
    r_days: np.ndarray  # days the range was issued over
    r_batch0: np.ndarray  # first batch of the range (len = ranges + 1)
    r_coord: np.ndarray  # issued documents of the ranges before it
    b_range: np.ndarray
    b_offset: np.ndarray
    b_coord: np.ndarray  # r_coord of its range + b_offset (non-decreasing)
    b_key: np.ndarray  # key of the batch's first serial
    b_len: np.ndarray
    b_day: np.ndarray  # the issue date its serials would have had
    b_cum: np.ndarray  # blank serials in the batches before it (len = batches + 1)
    u_range: np.ndarray
    u_blank: np.ndarray  # False: a block of issued offsets; True: blank batches
    u_lo: np.ndarray  # first issued offset, or first batch
    u_hi: np.ndarray  # end (exclusive)
    u_count: np.ndarray  # records
    u_first: np.ndarray  # position of its first record in the list
    u_id: np.ndarray  # stable id: its hash stream

    # --- the list ---------------------------------------------------------------------

    def records(self, start: int, stop: int) -> pa.RecordBatch:
        """Records ``start`` to ``stop`` (exclusive) of the list, as a batch of
        :data:`sltd.synth.RECORD_SCHEMA`: the same rows whatever slices are asked for."""
        start, stop = max(0, start), min(self.n, stop)
        if start >= stop:
            return pa.RecordBatch.from_pylist([], schema=RECORD_SCHEMA)
        e0 = int(np.searchsorted(self.u_first, start, "right")) - 1
        e1 = int(np.searchsorted(self.u_first, stop, "left"))
        units = np.arange(e0, e1)
        origin = int(self.u_first[e0])
        size = int(self.u_first[e1 - 1] + self.u_count[e1 - 1]) - origin
        r, key = np.empty(size, np.int64), np.empty(size, np.int64)
        day, blank = np.empty(size, np.int64), np.zeros(size, bool)
        issued = units[~self.u_blank[units]]
        if len(issued):
            where, ri, offset = self._listed(issued)
            pos = self.u_first[issued][where] - origin + _ranks(self.u_count[issued])
            r[pos], key[pos], day[pos] = ri, self._issued_key(ri, offset), \
                self._issued_day(ri, offset)
        stolen = units[self.u_blank[units]]
        if len(stolen):
            pos, b, within = self._blanks(stolen)
            pos -= origin
            r[pos], key[pos], day[pos], blank[pos] = self.b_range[b], self.b_key[b] + within, \
                self.b_day[b], True
        cut = slice(start - origin, stop - origin)
        return self._batch(r[cut], key[cut], day[cut], blank[cut])

    def _listed(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The records of issued-block units: which of ``units`` each is in, its range and
        issued offset; by unit, then offset.

        A unit lists ``count`` of the ``size`` offsets of its block, a uniform sample,
        sorted without a sort: ``count`` sorted uniform draws from ``size - count + 1``
        values (normalized cumulative sums of exponential gaps, the last gap closing the
        interval), each plus its rank, are strictly increasing. The gaps are integers (in
        units of 2**-20), so a unit's sums are exact whatever units precede it in a slice.
        """
        count = self.u_count[units]
        size = self.u_hi[units] - self.u_lo[units]
        where = np.repeat(np.arange(len(units)), count + 1)
        draw = _ranks(count + 1)
        stream = _mix(self.u_id[units].astype(np.uint64) ^ _salt(self.seed, 1))
        u = _uniform(_mix(stream[where] ^ (draw.astype(np.uint64) * _GOLD)))
        sums = np.cumsum((-np.log(u) * (1 << 20)).astype(np.int64) + 1)
        last = np.cumsum(count + 1) - 1
        before = np.concatenate([[0], sums[last[:-1]]])
        share = (sums - before[where]) / (sums[last] - before)[where]
        keep = draw < count[where]
        where, draw, share = where[keep], draw[keep], share[keep]
        free = (size - count)[where]
        offset = np.minimum((share * (free + 1)).astype(np.int64), free) + draw
        return where, self.u_range[units][where], self.u_lo[units][where] + offset

    def _blanks(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The records of blank units: position in the list, batch, and serial within
        the batch."""
        per_unit = self.u_hi[units] - self.u_lo[units]
        batch = np.repeat(self.u_lo[units], per_unit) + _ranks(per_unit)
        lengths = self.b_len[batch]
        unit_of = np.repeat(np.repeat(np.arange(len(units)), per_unit), lengths)
        pos = self.u_first[units][unit_of] + _ranks(self.u_count[units])
        return pos, np.repeat(batch, lengths), _ranks(lengths)

    def _issued_key(self, r: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Keys of issued offsets: the batches inserted at or before an offset push it."""
        after = np.searchsorted(self.b_coord, self.r_coord[r] + offset, "right")
        return self.r_key[r] + offset + self.b_cum[after] - self.b_cum[self.r_batch0[r]]

    def _issued_day(self, r: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return self.r_day0[r] + (offset * self.r_days[r]) // self.r_issued[r]

    def _batch(self, r: np.ndarray, key: np.ndarray, issue: np.ndarray, blank: np.ndarray
               ) -> pa.RecordBatch:
        """Records from each one's range, key, issue date (a blank's: its batch's) and
        kind; statuses and optional fields from two hashes of the key."""
        g = self.r_group[r]
        countries = [c for c, _ in self.formats.issuers]
        h1 = _mix(key.astype(np.uint64) ^ _salt(self.seed, 2))
        h2 = _mix(h1 ^ _salt(self.seed, 3))
        statuses = list(STATUS_WEIGHTS)
        issued_weights = np.array([STATUS_WEIGHTS[s] for s in ISSUED_STATUSES])
        bounds = np.cumsum(issued_weights)[:-1] / issued_weights.sum()
        issued_codes = np.array([statuses.index(s) for s in ISSUED_STATUSES])
        status = np.where(blank, statuses.index("stolen_blank"),
                          issued_codes[np.searchsorted(bounds, _field(h1, 0), "right")])
        expiry = expiry_days(issue, self.g_years[g])
        last = (self.today - EPOCH).days - 1
        dated = _field(h1, 1) < np.where(blank, _BLANK_DATED, _DATED)
        span = np.minimum(expiry, last) - issue + 1
        loss = np.where(blank, issue - (_field(h2, 0) * _BLANK_LAG).astype(np.int64),
                        issue + (_field(h2, 1) * span).astype(np.int64))
        owned = ~np.isin(countries, _ORGS)[g] & (_field(h1, 2) < _OWNED)
        places = (*PLACES, *BLANK_PLACES)
        place = np.where(blank, len(PLACES) + (_field(h1, 3) * len(BLANK_PLACES)).astype(int),
                         (_field(h1, 3) * len(PLACES)).astype(int))
        return pa.RecordBatch.from_arrays([
            self.formats.numbers(g, key - self.g_base[g]),
            _strings(g, [t for _, t in self.formats.issuers]),
            _strings(g, countries),
            _strings(status, statuses),
            _strings(g, countries, keep=owned),
            _strings(place, places, keep=_field(h2, 3) < _PLACED),
            _dates(np.minimum(loss, last), _field(h2, 2) < _LOSS_DATED),
            _dates(issue, dated),
            _dates(expiry, dated),
        ], schema=RECORD_SCHEMA)

    # --- where documents sit --------------------------------------------------------

    def locate(self, numbers: pa.Array | pa.ChunkedArray,
               doc_types: pa.Array | pa.ChunkedArray,
               countries: pa.Array | pa.ChunkedArray) -> Located:
        """Where each document (number, type, country) sits in the plan's ranges, with its
        issue and expiry dates (see :class:`Located`)."""
        g = self.formats.index(doc_types, countries)
        if not len(self.r_key):
            nowhere = np.full(len(g), -1, np.int64)
            return Located(nowhere, np.zeros(len(g), bool), nowhere, nowhere)
        serial = self.formats.serials(numbers, g)
        key = np.where(serial >= 0, self.g_base[np.maximum(g, 0)] + serial, -1)
        r = np.maximum(np.searchsorted(self.r_key, key, "right") - 1, 0)
        inside = (serial >= 0) & (key >= self.r_key[r]) & (key < self.r_key[r] + self.r_span[r])
        b = np.searchsorted(self.b_key, key, "right") - 1  # the last batch starting <= key
        bb = np.maximum(b, 0)
        blank = inside & (b >= self.r_batch0[r]) & (key < self.b_key[bb] + self.b_len[bb])
        offset = key - self.r_key[r] - (self.b_cum[b + 1] - self.b_cum[self.r_batch0[r]])
        issue = np.where(blank, self.b_day[bb],
                         self._issued_day(r, np.clip(offset, 0, self.r_issued[r] - 1)))
        return Located(np.where(inside, r, -1), blank, issue,
                       expiry_days(issue, self.g_years[self.r_group[r]]))

    def issued(self, k: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` documents drawn uniformly (with replacement) from those issued and valid
        on ``today``, listed or not: their issuers, serials and issue dates."""
        if not len(self.r_issued):
            raise SourceError("an empty list has no issued documents to draw from")
        today = (self.today - EPOCH).days
        years = self.g_years[self.r_group]
        cut = add_years(np.full(len(years), today), -years)  # issued then: expired today
        for _ in range(3):  # the first day issued valid today, whatever 29 February does
            cut = np.where(expiry_days(cut, years) < today, cut + 1, cut)
            cut = np.where(expiry_days(cut - 1, years) >= today, cut - 1, cut)
        wait = np.maximum(cut - self.r_day0, 0)  # first offset with day0 + o*days//N >= cut
        first = np.minimum(-(-(wait * self.r_issued) // self.r_days), self.r_issued)
        valid = self.r_issued - first
        if not valid.sum():  # nothing valid any more: any issued document
            first, valid = np.zeros_like(first), self.r_issued
        r = rng.choice(len(valid), size=k, p=valid / valid.sum())
        offset = first[r] + np.minimum((rng.random(k) * valid[r]).astype(np.int64),
                                       valid[r] - 1)
        g = self.r_group[r]
        return g, self._issued_key(r, offset) - self.g_base[g], self._issued_day(r, offset)


def issuance_plan(n: int, *, seed: int = 0, today: dt.date | None = None) -> IssuancePlan:
    """The issuers, ranges and stolen-blank batches of a ranges-numbered list of ``n``
    records (the records' country and type mix is :data:`sltd.synth.COUNTRY_WEIGHTS` by
    :data:`sltd.synth.DOC_TYPE_WEIGHTS`, as for random numbering).

    Args:
        n: how many records the list holds.
        seed: the same seed (and ``n`` and ``today``) gives the same plan and list.
        today: the date the list is drawn on (default :data:`TODAY`).

    Raises:
        SourceError: ``n`` is negative, or so large that an issuer's format has too few
            numbers for it.
    """
    if n < 0:
        raise SourceError(f"record count must be >= 0, got {n}")
    today = today or TODAY
    rng = np.random.default_rng([seed & _MASK64, 0x1550E])
    countries, types = list(COUNTRY_WEIGHTS), list(DOC_TYPE_WEIGHTS)
    cw = np.array(list(COUNTRY_WEIGHTS.values()))
    tw = np.array(list(DOC_TYPE_WEIGHTS.values()))
    counts = rng.multinomial(n, np.outer(cw / cw.sum(), tw / tw.sum()).ravel())
    present = np.flatnonzero(counts)
    formats = number_formats([(countries[i // len(types)], types[i % len(types)])
                              for i in present])
    drawn = [_draw_issuer(rng, int(counts[i]), int(capacity), (today - EPOCH).days,
                          f"{country} {doc_type}", n)
             for i, capacity, (country, doc_type) in zip(present, formats.capacity,
                                                          formats.issuers, strict=True)]
    return _assemble(n, seed, today, formats, drawn, rng)


@dataclasses.dataclass(frozen=True)
class _Issuer:
    """One issuer's ranges (serial start, span, issued, listed, first day, days) and
    batches (range, offset, length), as drawn."""

    start: np.ndarray
    span: np.ndarray
    issued: np.ndarray
    listed: np.ndarray
    day0: np.ndarray
    days: np.ndarray
    b_range: np.ndarray
    b_offset: np.ndarray
    b_len: np.ndarray


def _draw_issuer(rng: np.random.Generator, records: int, capacity: int, today: int,
                 name: str, n: int) -> _Issuer:
    # stolen blanks: BLANK_SHARE of the records in expectation, in batches no longer than
    # half the issuer's records (most of an issuer's list was issued)
    lo, hi = BLANK_BATCH[0], min(BLANK_BATCH[1], records // 2)
    lengths = np.zeros(0, np.int64)
    if hi >= lo:
        mean = (hi - lo) / math.log(hi / lo) if hi > lo else lo
        k = rng.poisson(BLANK_SHARE * records / mean)
        lengths = np.exp(rng.uniform(math.log(lo), math.log(hi + 1), k)).astype(np.int64)
        lengths = lengths.clip(lo, hi)
        lengths = lengths[np.cumsum(lengths) <= records // 2]
    listed = records - int(lengths.sum())
    ranges = min(listed, 1 + int(rng.integers(0, min(_MAX_RANGES, 1 + int(math.log10(listed))))))
    per_range = 1 + rng.multinomial(listed - ranges, rng.dirichlet(np.full(ranges, 2.0)))
    room = _FILL * capacity - lengths.sum() - ranges
    least = max(LISTED_SHARE[0], listed / room) if room > 0 else math.inf
    if least > LISTED_SHARE[1]:
        raise SourceError(f"{n} records are too many for ranges-numbered {name} documents: "
                          f"their format has {capacity} numbers")
    share = rng.uniform(least, LISTED_SHARE[1], ranges)
    issued = np.maximum(per_range, np.rint(per_range / share).astype(np.int64))
    # consecutive issue periods (>= 30 days) over 6-14 years, the last ending today
    total = int(rng.integers(6 * 365, 14 * 365))
    days = 30 + np.floor((total - 30 * ranges) * rng.dirichlet(np.ones(ranges))).astype(np.int64)
    day0 = today - np.cumsum(days[::-1])[::-1]
    # batches at distinct insertion points of the issuer's issued documents
    cum = np.cumsum(issued)
    coords = np.sort(rng.choice(int(cum[-1]) + 1, size=len(lengths), replace=False))
    b_range = np.minimum(np.searchsorted(cum, coords, "right"), ranges - 1)
    b_offset = coords - (cum - issued)[b_range]
    span = issued + np.bincount(b_range, lengths, minlength=ranges).astype(np.int64)
    gaps = np.floor(rng.dirichlet(np.ones(ranges + 1))[:ranges] * (capacity - span.sum()))
    start = np.cumsum(gaps.astype(np.int64)) + np.cumsum(span) - span
    return _Issuer(start, span, issued, per_range, day0, days, b_range,
                   b_offset, lengths)


def _assemble(n: int, seed: int, today: dt.date, formats: NumberFormats,
              drawn: list[_Issuer], rng: np.random.Generator) -> IssuancePlan:
    """One plan from the issuers' draws: global keys, batch positions, units."""
    g_base = np.cumsum(formats.capacity) - formats.capacity
    per = np.array([len(d.issued) for d in drawn], np.int64)
    r_group = np.repeat(np.arange(len(drawn)), per)

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(d, field) for d in drawn]) if drawn else \
            np.zeros(0, np.int64)

    r_issued, r_span = cat("issued"), cat("span")
    r_key = g_base[r_group] + cat("start")
    r_coord = np.cumsum(r_issued) - r_issued
    range_base = np.cumsum(per) - per
    b_range = np.concatenate([d.b_range + range_base[i] for i, d in enumerate(drawn)]) \
        if drawn else np.zeros(0, np.int64)
    b_offset, b_len = cat("b_offset"), cat("b_len")
    r_batch0 = np.searchsorted(b_range, np.arange(len(r_issued) + 1))
    b_cum = np.concatenate([[0], np.cumsum(b_len)])
    before = b_cum[:-1] - b_cum[r_batch0[b_range]]  # blank serials of its range before it
    b_key = r_key[b_range] + b_offset + before
    r_day0, r_days = cat("day0"), cat("days")
    last = np.minimum(b_offset, r_issued[b_range] - 1)
    b_day = r_day0[b_range] + (last * r_days[b_range]) // r_issued[b_range]
    sentinel = np.iinfo(np.int64).max // 2  # a batch after every key: arrays never empty
    units = _units(r_issued, cat("listed"), r_batch0, b_cum)
    order = rng.permutation(len(units[0]))
    u_range, u_blank, u_lo, u_hi, u_count = (u[order] for u in units)
    years = np.array([validity_years(c, t) for c, t in formats.issuers], np.int64)
    return IssuancePlan(
        n=n, seed=seed, today=today, formats=formats, g_base=g_base, g_years=years,
        r_group=r_group, r_key=r_key, r_span=r_span, r_issued=r_issued,
        r_listed=cat("listed"), r_day0=r_day0, r_days=r_days, r_batch0=r_batch0,
        r_coord=r_coord, b_range=b_range,
        b_offset=b_offset, b_coord=np.append(r_coord[b_range] + b_offset, sentinel),
        b_key=np.append(b_key, sentinel), b_len=np.append(b_len, 0),
        b_day=np.append(b_day, 0), b_cum=np.append(b_cum, b_cum[-1]),
        u_range=u_range, u_blank=u_blank, u_lo=u_lo, u_hi=u_hi, u_count=u_count,
        u_first=np.cumsum(u_count) - u_count, u_id=order)


def _units(issued: np.ndarray, listed: np.ndarray, batch0: np.ndarray, b_cum: np.ndarray
           ) -> tuple[np.ndarray, ...]:
    """The units of every range, in plan order: blocks of issued offsets listing at most
    UNIT_RECORDS records each (evenly: block [s, e) lists floor(L*e/N) - floor(L*s/N) of
    the range's L), then its blank batches, UNIT_BATCHES at a time."""
    rows: list[tuple[int, bool, int, int, int]] = []
    for r, (n_issued, n_listed) in enumerate(zip(issued.tolist(), listed.tolist(),
                                                 strict=True)):
        blocks = -(-n_listed // UNIT_RECORDS)
        bounds = [j * n_issued // blocks for j in range(blocks + 1)]
        for s, e in zip(bounds, bounds[1:], strict=False):
            rows.append((r, False, s, e, n_listed * e // n_issued - n_listed * s // n_issued))
        b0, b1 = int(batch0[r]), int(batch0[r + 1])
        for s in range(b0, b1, UNIT_BATCHES):
            e = min(s + UNIT_BATCHES, b1)
            rows.append((r, True, s, e, int(b_cum[e] - b_cum[s])))
    if not rows:
        return tuple(np.zeros(0, t) for t in (np.int64, bool, np.int64, np.int64, np.int64))
    r_, blank, lo, hi, count = zip(*rows, strict=True)
    return (np.array(r_, np.int64), np.array(blank, bool), np.array(lo, np.int64),
            np.array(hi, np.int64), np.array(count, np.int64))


def ranges_manifest(plan: IssuancePlan, records: Callable[[], Iterable[pa.RecordBatch]],
                    total: int, n: int, *, listed: float, seed: int) -> pa.Table:
    """A manifest of ``n`` passengers for the list ``plan`` makes: about ``listed`` of
    them carry a document drawn from ``records`` (a function giving its batches of
    document_number, document_type, issuing_country; ``total`` rows), the others a clean
    document: issued from the plan's ranges, valid on its ``today``, and not in
    ``records``. Every row carries the document's true issue and expiry dates (a stolen
    blank, those of its batch) and whether it is listed."""
    rng = np.random.default_rng([seed & _MASK64, 0x3A41])
    k = min(int(round(n * listed)), total)
    picks = np.sort(rng.choice(total, size=k, replace=False)) if k else np.zeros(0, np.int64)
    need = n - k
    g = serial = issue = np.zeros(0, np.int64)
    planted: list[pa.RecordBatch] = []
    first = True
    while first or len(g) < need:  # a second pass only if over 8% were listed
        more = int(math.ceil((need - len(g)) * _OVERDRAW)) + 32 if len(g) < need else 0
        mg, ms, mi = plan.issued(more, rng) if more else (g[:0], g[:0], g[:0])
        hit = _in_records(plan, records, plan.g_base[mg] + ms, picks if first else picks[:0],
                          planted)
        first = False
        g, serial, issue = (np.concatenate([a, b[~hit]])[:need]
                            for a, b in ((g, mg), (serial, ms), (issue, mi)))
    carried = pa.Table.from_batches(planted, schema=_CARRIED) if planted else \
        _CARRIED.empty_table()
    found = plan.locate(*carried.columns)
    clean = pa.table({
        "document_number": plan.formats.numbers(g, serial),
        "document_type": _strings(g, [t for _, t in plan.formats.issuers]),
        "issuing_country": _strings(g, [c for c, _ in plan.formats.issuers]),
        "date_of_issue": _dates(issue, np.ones(len(g), bool)),
        "date_of_expiry": _dates(expiry_days(issue, plan.g_years[g]), np.ones(len(g), bool)),
        "listed": pa.array(np.zeros(len(g), bool)),
    })
    known = found.range >= 0
    dirty = carried.append_column("date_of_issue", _dates(found.issue, known)) \
        .append_column("date_of_expiry", _dates(found.expiry, known)) \
        .append_column("listed", pa.array(np.ones(carried.num_rows, bool)))
    table = pa.concat_tables([clean, dirty.cast(clean.schema)])
    table = table.take(pa.array(rng.permutation(n)))
    return table.add_column(0, "passenger_id", passenger_ids(n))


_CARRIED = pa.schema([("document_number", pa.string()), ("document_type", pa.string()),
                      ("issuing_country", pa.string())])


def _in_records(plan: IssuancePlan, records: Callable[[], Iterable[pa.RecordBatch]],
                keys: np.ndarray, picks: np.ndarray, planted: list[pa.RecordBatch]
                ) -> np.ndarray:
    """Which ``keys`` are keys of documents in ``records`` (one pass over them), taking
    the rows at positions ``picks`` into ``planted`` on the way."""
    order = np.argsort(keys)
    ordered = keys[order]
    marks = np.zeros(len(keys) + 1, np.int64)  # +1 where a listed key's run starts
    row = 0
    for batch in records():
        batch = pa.RecordBatch.from_arrays([as_strings(c) for c in batch.columns],
                                           schema=_CARRIED)
        here = picks[(picks >= row) & (picks < row + batch.num_rows)] - row
        if len(here):
            planted.append(batch.take(pa.array(here)))
        row += batch.num_rows
        g = plan.formats.index(batch.column(1), batch.column(2))
        serial = plan.formats.serials(batch.column(0), g)
        listed = plan.g_base[g[serial >= 0]] + serial[serial >= 0]
        lo = np.searchsorted(ordered, listed, "left")
        found = listed[ordered[np.minimum(lo, len(ordered) - 1)] == listed] if len(ordered) \
            else listed[:0]
        np.add.at(marks, np.searchsorted(ordered, found, "left"), 1)
        np.add.at(marks, np.searchsorted(ordered, found, "right"), -1)
    hit = np.zeros(len(keys), bool)
    hit[order] = np.cumsum(marks)[:-1] > 0
    return hit


def _strings(codes: np.ndarray, values: Iterable[str], keep: np.ndarray | None = None
             ) -> pa.Array:
    """A string array of ``values[codes]`` (null where not ``keep``)."""
    indices = pa.array(codes.astype(np.int32), mask=None if keep is None else ~keep)
    return pa.array(list(values), pa.string()).take(indices)  # 6x a dictionary's cast


def _dates(days: np.ndarray, keep: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.date32(), mask=~keep)
