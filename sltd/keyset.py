"""The in-memory structures that answer a check without DuckDB: key sets, the first-level
table, and the snapshot that publishes them together.

Almost every check is a miss, so the hot path must not touch DuckDB (a DuckDB query costs
~0.3 ms even for ``SELECT 1``). A :class:`KeySet` is a sorted NumPy array of the 64-bit
hashes (:mod:`sltd.keyhash`) of the folded keys (:func:`sltd.normalize.fold_number`) of all
active records: 8 bytes a record (plus, for big sets, a bucket filter of 2-4 bytes a record
that bulk probes go through). A hash that is absent proves the folded key is not listed;
a present one is confirmed against the :class:`FirstLevel` table, so a hash collision
costs a lookup, never a wrong answer. :class:`Keys` publishes both as one immutable
:class:`KeySnapshot`, swapped whole after each committed change.

Example:
    >>> from sltd.keyhash import key_hashes, key_hashes_from_strings
    >>> ks = KeySet.from_hashes(key_hashes_from_strings(["X1234567", "A7654321"]))
    >>> key_hash("X1234567") in ks, key_hash("X0000000") in ks
    (True, False)
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd.codes import DOC_TYPES
from sltd.keyhash import country_key_hashes, key_hash
from sltd.normalize import fold_number


def _filter_bits(size: int) -> int:
    """log2 of the bucket filter's bit count for a set of ``size``: >= 16 bits a key."""
    return min(32, max(16, int(size * 16 - 1).bit_length()))


def _filter_slots(spread: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each spread value sits in a byte-blocked filter: (byte, two-bit mask). The
    byte is the value's top bits, offset to be non-negative (so a sorted array gives
    sorted bytes); the two bits in it come from the six bits just below (a multiplicative
    hash mixes its middle and top bits well, its low bits poorly). Two bits a key cut
    false positives ~2.5x against one (10M keys: ~1.5% of absent keys pass, not 3.7%)."""
    byte = (spread >> shift) + (1 << (63 - shift))
    six = (spread >> (shift - 6)) & 63
    first = six & 7
    second = (first + 1 + ((six >> 3) & 3)) & 7  # never the first bit
    one = np.uint8(1)
    return byte, (one << first.astype(np.uint8)) | (one << second.astype(np.uint8))


def _test_slots(bitmap: np.ndarray, byte: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (bitmap[byte] & mask) == mask


def _sorted_unique(hashes: Any) -> np.ndarray:
    # np.sort + mask: np.unique is ~50x slower on 10M int64 here (measured, numpy 2.4).
    a = np.sort(np.asarray(hashes, dtype=np.int64))
    if len(a) > 1:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


#: Odd 64-bit constant (2**64 / golden ratio): multiplying by it modulo 2**64 is a bijection
#: that spreads the structured key hashes (ASCII bytes) evenly over the top bits.
_SPREAD = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


def _spread(hashes: np.ndarray) -> np.ndarray:
    """Vectorized twin of the scalar spreading in :meth:`KeySet.__contains__`."""
    return (np.asarray(hashes, dtype=np.int64).view(np.uint64)
            * np.uint64(_SPREAD)).view(np.int64)


#: Candidates past the filter up to which a probe bisects them one by one from Python.
_FEW = 32

#: Sets at least this big probe through the bucket filter (below it, the array is small
#: enough to stay in cache).
_FILTER_MIN = 1 << 16


class KeySet:
    """A set of key hashes with O(log n) membership and a fast vectorized probe.

    Stored as a sorted, deduplicated int64 array of the hashes multiplied by an odd
    constant (mod 2**64): a bijection, so membership is unchanged, but the stored values
    are spread evenly, which lets :meth:`contains_any` put a filter on them: a bitmap of
    ~16 bits a key, addressed by byte with a value's top bits, two bits set per key
    (built in one pass, because the array is sorted, by :meth:`prepare` or the first
    probe; carried over by :meth:`union`). Most probed hashes fail the filter with one
    memory read; only the few that pass are binary-searched. (Spreading costs the
    near-miss variants of one query their locality in the array, so without the filter
    their ~500 searches would each miss the cache.)

    Example:
        >>> ks = KeySet.from_hashes(np.array([3, 1, 2], dtype=np.int64))
        >>> 2 in ks, 5 in ks, len(ks)
        (True, False, 3)
    """

    __slots__ = ("_array", "_size", "_filter", "_lock", "_scalar_filter", "_view")

    def __init__(self, sorted_spread: np.ndarray,
                 bucket_filter: tuple[int, np.ndarray] | None = None):
        self._array = sorted_spread
        self._size = len(sorted_spread)
        # bisect over this view is a C loop that keeps the GIL; searchsorted releases it,
        # and with several checking threads every release is a hand-over
        self._view = sorted_spread.data
        self._filter = bucket_filter
        self._lock = threading.Lock()
        # (shift, offset, bitmap as a memoryview) for the scalar probe, once built
        self._scalar_filter: tuple[int, int, memoryview] | None = None
        if bucket_filter is not None:
            self._set_scalar_filter(bucket_filter)

    def _set_scalar_filter(self, bucket_filter: tuple[int, np.ndarray]) -> None:
        shift, bitmap = bucket_filter
        self._scalar_filter = (shift, 1 << (63 - shift), bitmap.data)

    @classmethod
    def from_hashes(cls, hashes: np.ndarray) -> KeySet:
        return cls(_sorted_unique(_spread(hashes)))

    def __contains__(self, h: int) -> bool:  # the hot path of every check
        m = (h * _SPREAD) & _M64
        m -= (m >> 63) << 64  # as the signed int64 the array holds
        f = self._scalar_filter
        if f is not None:
            # The bucket filter, read from Python (the twin of _filter_slots): ~98% of
            # absent keys stop here without a NumPy call, which would release and retake
            # the GIL (with several checking threads, a hand-over per check).
            shift, offset, bits = f
            six = (m >> (shift - 6)) & 63
            first = six & 7
            mask = (1 << first) | (1 << ((first + 1 + ((six >> 3) & 3)) & 7))
            if bits[(m >> shift) + offset] & mask != mask:
                return False
        i = bisect_left(self._view, m)
        return i < self._size and self._view[i] == m

    def contains_any(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``hashes`` are in the set (vectorized)."""
        if self._size == 0 or len(hashes) == 0:
            return np.zeros(len(hashes), dtype=bool)
        m = _spread(hashes)
        if self._size < _FILTER_MIN:
            return self._contains(m)
        # The bucket filter lets most hashes out with one read of a bitmap of ~2 bytes a
        # key (1M probes in 10M keys: 37 ms, against 126 ms for a binary search of the
        # sorted probes); the few that pass are sorted (cache-friendly search) and searched.
        shift, bits = self._bucket_filter()
        maybe = np.flatnonzero(_test_slots(bits, *_filter_slots(m, shift)))
        if len(maybe) <= _FEW:
            # One check's near-miss probe: ~1.5% of its ~500 variants pass the filter.
            # bisect them from Python: no sort, no searchsorted, no GIL hand-over.
            view, size = self._view, self._size
            found = np.zeros(len(m), bool)
            for j, v in zip(maybe.tolist(), m[maybe].tolist(), strict=True):
                i = bisect_left(view, v)
                found[j] = i < size and view[i] == v
            return found
        cand = m[maybe]
        order = np.argsort(cand)
        result = np.zeros(len(m), bool)
        result[maybe[order[self._contains(cand[order])]]] = True
        return result

    def prepare(self) -> None:
        """Build the probe filter now if the set is big enough to use one (else on the
        first probe)."""
        if self._size >= _FILTER_MIN:
            self._bucket_filter()

    def _bucket_filter(self) -> tuple[int, np.ndarray]:
        """(shift, bitmap): for every stored value v, the bits ``_filter_slots(v, shift)``
        are set. Built once per set (sets are immutable)."""
        with self._lock:
            if self._filter is None:
                shift = 64 - (_filter_bits(self._size) - 3)  # top bits address bytes
                byte, mask = _filter_slots(self._array, shift)  # bytes sorted, as values
                first = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
                bitmap = np.zeros(1 << (64 - shift), np.uint8)
                bitmap[byte[first]] = np.bitwise_or.reduceat(mask, first)
                self._filter = (shift, bitmap)
                self._set_scalar_filter(self._filter)
            return self._filter

    def _contains(self, spread: np.ndarray) -> np.ndarray:
        idx = self._array.searchsorted(spread)
        idx[idx == self._size] = 0
        return self._array[idx] == spread

    def union(self, hashes: Iterable[int] | np.ndarray) -> KeySet:
        """A new set with ``hashes`` added: sorts only the new hashes, then one merge pass.
        A built filter of the same size is copied with the new keys' bits set (an upsert
        does not make the next check rebuild it)."""
        extra = np.asarray(list(hashes) if not isinstance(hashes, np.ndarray) else hashes,
                           dtype=np.int64)
        if self._size == 0:
            return KeySet.from_hashes(extra)
        extra = _sorted_unique(_spread(extra[~self.contains_any(extra)]))
        merged = np.insert(self._array, self._array.searchsorted(extra), extra)
        old = self._filter
        if (old is None or 64 - old[0] != _filter_bits(len(merged)) - 3
                or len(extra) > 1 << 16):
            return KeySet(merged)
        shift, bits = old[0], old[1].copy()
        np.bitwise_or.at(bits, *_filter_slots(extra, shift))
        return KeySet(merged, (shift, bits))

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory held by the set (its bulk-probe filter included once built)."""
        return int(self._array.nbytes) + (0 if self._filter is None else
                                          int(self._filter[1].nbytes))


#: Document type codes, by the uint8 a :class:`FirstLevel` stores.
_TYPE_CODES = tuple(DOC_TYPES)
_TYPE_INDEX = {t: i for i, t in enumerate(_TYPE_CODES)}


class FirstLevel:
    """The first-level fields of every active record (record id, number, type, country),
    sorted by folded-key hash: a first-level hit is answered from memory, in
    microseconds, instead of a DuckDB query (~1 ms). DuckDB serves the second level.

    Immutable like the key sets: a withdrawal gives a new object with the record's id in
    ``withdrawn`` (the arrays are shared); a load gives one with the new records merged in
    and the withdrawn ones dropped.

    Example:
        >>> from sltd.keyhash import key_hashes
        >>> fl = FirstLevel.from_table(pa.table({"record_id": [7], "number": ["X1234567"],
        ...     "doc_type": ["P"], "country": ["FRA"],
        ...     "fold_hash": key_hashes(pa.array(["X1234567"]))}))
        >>> fl.rows(["X1234567"]), fl.without([7]).rows(["X1234567"])
        ([(7, 'X1234567', 'P', 'FRA')], [])
    """

    __slots__ = ("hashes", "ids", "numbers", "types", "countries", "names", "withdrawn",
                 "max_id", "_offsets", "_data", "_hv")

    def __init__(self, hashes: np.ndarray, ids: np.ndarray, numbers: pa.Array,
                 types: np.ndarray, countries: np.ndarray, names: tuple[str, ...],
                 withdrawn: frozenset[int] = frozenset(), max_id: int | None = None):
        self.hashes = hashes  # int64, sorted
        self.ids = ids  # int64
        self.numbers = numbers  # Arrow large_string
        self.types = types  # uint8 index into _TYPE_CODES
        self.countries = countries  # uint16 index into names
        self.names = names
        self.withdrawn = withdrawn
        #: The highest record id this table has seen (ids only grow, loads commit one at a
        #: time): a load whose new ids are not above it is already in the table.
        self.max_id = (int(ids.max()) if len(ids) else 0) if max_id is None else max_id
        # The numbers' Arrow offsets and bytes, as zero-copy views: slicing them is ~10x
        # faster than making Arrow scalars.
        buffers = numbers.buffers()
        self._offsets = np.frombuffer(buffers[1], np.int64)[
            numbers.offset: numbers.offset + len(numbers) + 1]
        self._data = memoryview(buffers[2]) if buffers[2] is not None else memoryview(b"")
        self._hv = np.ascontiguousarray(hashes).data

    @classmethod
    def from_table(cls, records: pa.Table) -> FirstLevel:
        """From ``record_id, number, doc_type, country, fold_hash`` columns."""
        return cls._build(records, ())

    @classmethod
    def _build(cls, records: pa.Table, names: tuple[str, ...]) -> FirstLevel:
        hashes = records.column("fold_hash").to_numpy().astype(np.int64, copy=False)
        order = np.argsort(hashes, kind="stable")
        types = records.column("doc_type").combine_chunks().dictionary_encode()
        type_map = np.array([_TYPE_INDEX[t] for t in types.dictionary.to_pylist()] or [0],
                            np.uint8)
        countries = records.column("country").combine_chunks().dictionary_encode()
        more = [c for c in countries.dictionary.to_pylist() if c not in names]
        names = (*names, *more)
        index = {c: i for i, c in enumerate(names)}
        country_map = np.array([index[c] for c in countries.dictionary.to_pylist()] or [0],
                               np.uint16)
        take = pa.array(order)
        return cls(hashes[order],
                   records.column("record_id").to_numpy().astype(np.int64)[order],
                   records.column("number").combine_chunks().cast(pa.large_string())
                   .take(take),
                   type_map[types.indices.to_numpy(zero_copy_only=False)][order],
                   country_map[countries.indices.to_numpy(zero_copy_only=False)][order],
                   names)

    def merged(self, records: pa.Table) -> FirstLevel:
        """A new table with ``records`` added and the withdrawn ones dropped: the new rows
        are sorted alone, then merged in one pass (no full re-sort)."""
        new = FirstLevel._build(records, self.names)
        keep = (~np.isin(self.ids, np.fromiter(self.withdrawn, np.int64))
                if self.withdrawn else None)
        old = self if keep is None else FirstLevel(
            self.hashes[keep], self.ids[keep], self.numbers.filter(pa.array(keep)),
            self.types[keep], self.countries[keep], self.names)
        at = old.hashes.searchsorted(new.hashes, side="right")
        position = at + np.arange(len(at))  # where each new row lands in the merged arrays
        is_new = np.zeros(len(old.hashes) + len(at), bool)
        is_new[position] = True
        order = np.empty(len(is_new), np.int64)  # merged row -> row of concat(old, new)
        order[~is_new] = np.arange(len(old.hashes))
        order[is_new] = len(old.hashes) + np.arange(len(at))

        def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a, b])[order]

        return FirstLevel(merge(old.hashes, new.hashes), merge(old.ids, new.ids),
                          pa.concat_arrays([old.numbers, new.numbers]).take(pa.array(order)),
                          merge(old.types, new.types), merge(old.countries, new.countries),
                          new.names)

    def without(self, record_ids: Iterable[int]) -> FirstLevel:
        """The same table with these records withdrawn."""
        return FirstLevel(self.hashes, self.ids, self.numbers, self.types, self.countries,
                          self.names, self.withdrawn | frozenset(record_ids), self.max_id)

    def rows(self, folds: Sequence[str], hashes: Sequence[int] | None = None
             ) -> list[tuple[int, str, str, str]]:
        """(record_id, number, doc_type, country) of the active records with these folded
        keys (``hashes``: their :func:`key_hash`, if the caller has them). A hash match is
        confirmed by folding the record's number."""
        out = []
        n = len(self.hashes)
        # memoryviews: Python ints per index without NumPy calls (no GIL hand-over)
        hv, ids, offsets, data = self._hv, self.ids.data, self._offsets.data, self._data
        for k, fold in enumerate(folds):
            h = key_hash(fold) if hashes is None else hashes[k]
            i = bisect_left(hv, h)
            while i < n and hv[i] == h:
                record_id = ids[i]
                if record_id not in self.withdrawn:
                    number = str(data[offsets[i]:offsets[i + 1]], "ascii")
                    if fold_number(number) == fold:
                        out.append((record_id, number, _TYPE_CODES[self.types.item(i)],
                                    self.names[self.countries.item(i)]))
                i += 1
        return out

    def __len__(self) -> int:
        gone = np.fromiter(self.withdrawn, np.int64, len(self.withdrawn))
        return len(self.hashes) - int(np.isin(gone, self.ids).sum())

    @property
    def nbytes(self) -> int:
        return int(self.hashes.nbytes + self.ids.nbytes + self.numbers.nbytes
                   + self.types.nbytes + self.countries.nbytes)


class KeySnapshot:
    """Both key sets of an index at one moment: by folded key (is this number listed?)
    and by (country, folded key) (near-miss probes within a country). Immutable: a change
    of the list makes a new snapshot (:meth:`with_keys`), which :class:`Keys` publishes
    with one assignment, so a reader holding a snapshot never sees half of a load.

    Example:
        >>> from sltd.keyhash import key_hashes
        >>> snap = KeySnapshot.empty().with_keys(pa.table({"record_id": [1],
        ...     "number": ["X1234567"], "doc_type": ["P"], "country": ["FRA"],
        ...     "fold_hash": key_hashes(pa.array(["X1234567"]))}))
        >>> key_hash("X1234567") in snap, key_hash("X7654321") in snap
        (True, False)
        >>> snap.without([1]).records.rows(["X1234567"])
        []
    """

    __slots__ = ("folds", "countries", "records")

    def __init__(self, folds: KeySet, countries: KeySet, records: FirstLevel):
        self.folds = folds
        self.countries = countries
        self.records = records

    @classmethod
    def empty(cls) -> KeySnapshot:
        none = np.empty(0, np.int64)
        return cls(KeySet(none), KeySet(none), FirstLevel._build(pa.table({
            "record_id": pa.array([], pa.int64()), "number": pa.array([], pa.string()),
            "doc_type": pa.array([], pa.string()), "country": pa.array([], pa.string()),
            "fold_hash": pa.array([], pa.int64())}), ()))

    def with_keys(self, keys: pa.Table) -> KeySnapshot:
        """A new snapshot with the records of ``keys`` (``record_id, number, doc_type,
        country, fold_hash``) added. Probe filters are built now (0.2 s a set at 10M
        keys), not by the first near-miss check or screening that probes."""
        fold_hashes = keys.column("fold_hash").to_numpy()
        folds = self.folds.union(fold_hashes)
        countries = self.countries.union(country_key_hashes(fold_hashes,
                                                            keys.column("country")))
        folds.prepare()
        countries.prepare()
        return KeySnapshot(folds, countries, self.records.merged(keys))

    def without(self, record_ids: Iterable[int]) -> KeySnapshot:
        """The same key sets (a superset is harmless) with these records withdrawn from the
        first-level table."""
        return KeySnapshot(self.folds, self.countries, self.records.without(record_ids))

    def __contains__(self, fold_hash: int) -> bool:
        return fold_hash in self.folds

    def present(self, fold_hashes: np.ndarray, country: str | np.ndarray | None = None
                ) -> np.ndarray:
        """Mask of the listed ones among ``fold_hashes``: anywhere, or in ``country``
        (one code for all, or :func:`country_codes` aligned with the hashes)."""
        if country is None:
            return self.folds.contains_any(fold_hashes)
        return self.countries.contains_any(country_key_hashes(fold_hashes, country))

    @property
    def nbytes(self) -> int:
        return self.folds.nbytes + self.countries.nbytes + self.records.nbytes


class Keys:
    """The published key sets and first-level table of one index: built on first use (a
    process that only reveals, decides or delivers alerts never pays for them), then
    replaced whole after each committed load or withdrawal.

    Readers call :meth:`snapshot` once per check and use what it returns throughout;
    writers call :meth:`add` after their COMMIT and before they return, so a check that
    starts after a load returned sees its records. Withdrawn records keep their hashes
    (a superset only costs a DuckDB lookup, never a hit).

    Example:
        >>> from sltd.keyhash import key_hashes
        >>> keys = Keys(lambda: pa.table({"record_id": [1], "number": ["AB123"],
        ...     "doc_type": ["P"], "country": ["FRA"],
        ...     "fold_hash": key_hashes(pa.array(["AB123"]))}))
        >>> key_hash("AB123") in keys.snapshot()
        True
    """

    def __init__(self, load: Callable[[], pa.Table]):
        self._load = load
        self._current: KeySnapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> KeySnapshot:
        current = self._current
        if current is None:
            with self._lock:
                if self._current is None:
                    self._current = KeySnapshot.empty().with_keys(self._load())
                current = self._current
        return current

    def add(self, keys: pa.Table | None) -> None:
        """Publish the records of ``keys`` (call after their transaction committed).

        If the sets were never built, nothing is to do: the first build reads the committed
        table. A build running meanwhile finishes first (same lock), then this adds to it.
        ``None`` means the writer did not read its new records back because the sets were
        not built when it began; if a build happened since, it may have read the table
        before the commit, so the sets are dropped and the next check rebuilds them.
        """
        if keys is not None and keys.num_rows == 0:
            return
        with self._lock:
            current = self._current
            if current is None:
                return
            if keys is None:
                self._current = None
            elif pc.min(keys.column("record_id")).as_py() > current.records.max_id:
                self._current = current.with_keys(keys)
            # else: the sets were built after this load committed and already hold it

    def withdraw(self, record_ids: Iterable[int]) -> None:
        """Publish withdrawals (call after their transaction committed)."""
        with self._lock:
            if self._current is not None:
                self._current = self._current.without(record_ids)

    @property
    def built(self) -> bool:
        return self._current is not None
