"""The in-memory structures that answer a check without DuckDB, and the key file that
persists them next to the index so that a process opens them instead of rebuilding them.

Almost every check is a miss, so the hot path must not touch DuckDB (a DuckDB query costs
~0.3 ms even for ``SELECT 1``). A :class:`KeyTable` holds the first-level fields of every
active record (record id, number, type, country) sorted by the 64-bit hash
(:mod:`sltd.keyhash`) of its folded key (:func:`sltd.normalize.fold_number`), with a
:class:`KeySet` over the hashes: an absent hash proves the folded key is not listed; a
present one is confirmed by folding the record's number, so a hash collision costs a
lookup, never a wrong answer. About 31 bytes a record: hash 8, record id 4, number 4 + its
characters, type 1, country 2, and 2-4 for the probe filter; plus, per issuer, how often
each character occurs at each position (:mod:`sltd.alphabets`, for the near-miss policy).

A :class:`KeySnapshot` is what a check reads: a *base* table (memory-mapped from the key
file ``<index>.keys``), a small in-memory *delta* of the records added since, and the ids
withdrawn since. :class:`Keys` publishes snapshots: it opens the key file, checks it
against the database (a digest of the active records: count, xor of the hashes, sum of the
ids) and brings it up to date from DuckDB (rows added since, ids withdrawn since); a file
that does not match (a crash, a copied file, another index's file) is rebuilt, never
trusted. When the delta outgrows a sixteenth of the base, the base is rebuilt from DuckDB
and the key file rewritten (atomically: a new file renamed over the old one).

Example:
    >>> from sltd.keyhash import key_hashes_from_strings
    >>> ks = KeySet.from_hashes(key_hashes_from_strings(["X1234567", "A7654321"]))
    >>> key_hash("X1234567") in ks, key_hash("X0000000") in ks
    (True, False)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import mmap
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sltd import store
from sltd.alphabets import ALPHABET, AlphabetCounter, Alphabets, carries, character_sets
from sltd.codes import DOC_TYPES
from sltd.errors import IndexStateError
from sltd.keyhash import (
    FOLD_TABLE,
    country_code,
    fold_matrix,
    fold_strings,
    key_hash,
    key_hash_bytes,
    probe_hash_bytes,
    probe_hashes,
)
from sltd.model import NO_VERSION, ListVersion
from sltd.normalize import MAX_LENGTH

log = logging.getLogger(__name__)


def _filter_bits(size: int) -> int:
    """log2 of the bucket filter's bit count for a set of ``size``: >= 16 bits a key."""
    return min(32, max(16, int(size * 16 - 1).bit_length()))


def _filter_shift(size: int) -> int:
    """How far a hash is shifted right to address a byte of the filter of a set of
    ``size`` (its top bits address bytes)."""
    return 64 - (_filter_bits(size) - 3)


def _filter_slots(values: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each hash sits in a byte-blocked filter: (byte, two-bit mask). The byte is
    the hash's top bits, offset to be non-negative for int64 key hashes (so sorted hashes
    give sorted bytes; uint64 probe hashes need no offset); the two bits in it come from
    the six bits just below. Two bits a key cut false positives ~2.5x against one (10M
    keys: ~1.5% of absent keys pass, not 3.7%)."""
    if values.dtype == np.uint64:
        byte = (values >> np.uint64(shift)).astype(np.int64)
        six = ((values >> np.uint64(shift - 6)) & np.uint64(63)).astype(np.int64)
    else:
        byte = (values >> shift) + (1 << (63 - shift))
        six = (values >> (shift - 6)) & 63
    first = six & 7
    second = (first + 1 + ((six >> 3) & 3)) & 7  # never the first bit
    one = np.uint8(1)
    return byte, (one << first.astype(np.uint8)) | (one << second.astype(np.uint8))


def _set_slots(bitmap: np.ndarray, values: np.ndarray, shift: int) -> None:
    """Set the filter bits of sorted ``values`` in ``bitmap`` (one pass, no scatter-or)."""
    if len(values) == 0:
        return
    byte, mask = _filter_slots(values, shift)
    first = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
    bitmap[byte[first]] |= np.bitwise_or.reduceat(mask, first)


def _probe_filter(probes: np.ndarray, size: int) -> tuple[int, np.ndarray]:
    """(shift, bitmap): the probe filter of a table of ``size`` rows whose folded keys
    have these :func:`sltd.keyhash.probe_hashes` (any order)."""
    shift = _filter_shift(size)
    bitmap = np.zeros(1 << (64 - shift), np.uint8)
    _set_slots(bitmap, np.sort(probes), shift)
    return shift, bitmap


def _sorted_unique(hashes: Any) -> np.ndarray:
    # np.sort + mask: np.unique is ~50x slower on 10M int64 here (measured, numpy 2.4).
    a = np.sort(np.asarray(hashes, dtype=np.int64))
    if len(a) > 1:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


#: Candidates past the filter up to which a probe bisects them one by one from Python.
_FEW = 32

#: Sets at least this big probe through the bucket filter (below it, the array is small
#: enough to stay in cache).
_FILTER_MIN = 1 << 16


def _directory_bits(size: int) -> int:
    """log2 of the directory's bucket count for a set of ``size``: ~4-8 keys a bucket."""
    return min(24, max(8, int(size).bit_length() - 3))


def _directory_top(values: np.ndarray, bits: int) -> np.ndarray:
    """The directory bucket of each hash: its top ``bits`` bits, offset to be >= 0."""
    return (values >> (64 - bits)) + (1 << (bits - 1))


def _directory(counts: np.ndarray, size: int) -> np.ndarray:
    """Bucket start offsets (one more than buckets) from the count of keys per bucket."""
    starts = np.zeros(len(counts) + 1, np.uint32 if size < 1 << 32 else np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts


class KeySet:
    """A sorted array of key hashes (repeats allowed) with O(1) membership and a fast
    vectorized probe.

    The hashes are fmix64-mixed (:mod:`sltd.keyhash`), so their top bits are uniform.
    Two small structures use that, for sets of at least 64k keys (built in one pass over
    the sorted array by :meth:`prepare`, or read from the key file): a *filter*, a bitmap
    of ~16 bits a key addressed by byte with a hash's top bits, two bits set per key, that
    most absent hashes fail with one memory read; and a *directory* of where each run of
    hashes with the same top ~21 bits starts (0.4-0.8 bytes a key), so a present one is
    found by searching ~6 neighbours instead of bisecting the whole array (23 steps at
    10M keys, most of them cache misses).

    Example:
        >>> ks = KeySet.from_hashes(np.array([3, 1, 2], dtype=np.int64))
        >>> 2 in ks, 5 in ks, len(ks)
        (True, False, 3)
    """

    __slots__ = ("_array", "_size", "_filter", "_directory", "_lock", "_scalar", "_view")

    def __init__(self, sorted_hashes: np.ndarray,
                 bucket_filter: tuple[int, np.ndarray] | None = None,
                 directory: np.ndarray | None = None):
        self._array = sorted_hashes
        self._size = len(sorted_hashes)
        # bisect over this view is a C loop that keeps the GIL; searchsorted releases it,
        # and with several checking threads every release is a hand-over
        self._view = sorted_hashes.data
        self._filter = bucket_filter
        self._directory = directory
        self._lock = threading.Lock()
        # what the scalar probe reads, as memoryviews: (filter shift, filter offset,
        # bitmap, directory shift, directory offset, directory), once built
        self._scalar: tuple[int, int, memoryview, int, int, memoryview] | None = None
        if bucket_filter is not None and directory is not None:
            self._set_scalar()

    def _set_scalar(self) -> None:
        assert self._filter is not None
        assert self._directory is not None
        shift, bitmap = self._filter
        bits = (len(self._directory) - 1).bit_length() - 1
        self._scalar = (shift, 1 << (63 - shift), bitmap.data, 64 - bits,
                        1 << (bits - 1), self._directory.data)

    @classmethod
    def from_hashes(cls, hashes: np.ndarray) -> KeySet:
        return cls(_sorted_unique(hashes))

    def find(self, h: int) -> int:
        """Index of the first occurrence of hash ``h``, or -1 (the hot path of every
        check: pure Python over memoryviews, no NumPy call, which would release and
        retake the GIL: with several checking threads, a hand-over per check)."""
        f = self._scalar
        if f is None:
            i = bisect_left(self._view, h, 0, self._size)
            return i if i < self._size and self._view[i] == h else -1
        # The filter (the twin of _filter_slots): ~98% of absent keys stop here.
        shift, offset, bits, dshift, doffset, directory = f
        six = (h >> (shift - 6)) & 63
        first = six & 7
        mask = (1 << first) | (1 << ((first + 1 + ((six >> 3) & 3)) & 7))
        if bits[(h >> shift) + offset] & mask != mask:
            return -1
        top = (h >> dshift) + doffset
        hi = directory[top + 1]
        i = bisect_left(self._view, h, directory[top], hi)
        return i if i < hi and self._view[i] == h else -1

    def locate(self, h: int) -> int:
        """:meth:`find` without the filter, for a hash that passed another filter (the
        probe filter of :meth:`KeySnapshot.lookup`): most are present."""
        f = self._scalar
        if f is None:
            i = bisect_left(self._view, h, 0, self._size)
            return i if i < self._size and self._view[i] == h else -1
        top = (h >> f[3]) + f[4]
        directory = f[5]
        hi = directory[top + 1]
        i = bisect_left(self._view, h, directory[top], hi)
        return i if i < hi and self._view[i] == h else -1

    def __contains__(self, h: int) -> bool:
        return self.find(h) >= 0

    def contains_any(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``hashes`` are in the set (vectorized)."""
        m = np.asarray(hashes, dtype=np.int64)
        if self._size == 0 or len(m) == 0:
            return np.zeros(len(m), dtype=bool)
        if self._size < _FILTER_MIN:
            return self._contains(m)
        # The bucket filter lets most hashes out with one read of a bitmap of ~2 bytes a
        # key (1M probes in 10M keys: 37 ms, against 126 ms for a binary search of the
        # sorted probes); the few that pass are sorted (cache-friendly search) and searched.
        shift, bits = self._bucket_filter()
        byte, mask = _filter_slots(m, shift)
        maybe = np.flatnonzero((bits[byte] & mask) == mask)
        if len(maybe) <= _FEW:
            # One check's near-miss probe: ~1.5% of its ~500 variants pass the filter.
            # find them from Python: no sort, no searchsorted, no GIL hand-over.
            found = np.zeros(len(m), bool)
            find = self.find
            for j, v in zip(maybe.tolist(), m[maybe].tolist(), strict=True):
                found[j] = find(v) >= 0
            return found
        cand = m[maybe]
        order = np.argsort(cand)
        result = np.zeros(len(m), bool)
        result[maybe[order[self._contains(cand[order])]]] = True
        return result

    def prepare(self) -> None:
        """Build the filter and directory now if the set is big enough to use them (else
        on the first vectorized probe)."""
        if self._size >= _FILTER_MIN:
            self._bucket_filter()

    def _bucket_filter(self) -> tuple[int, np.ndarray]:
        """(shift, bitmap): for every stored hash h, the bits ``_filter_slots(h, shift)``
        are set. Built once per set (sets are immutable), with the directory."""
        with self._lock:
            if self._filter is None:
                shift = _filter_shift(self._size)
                bitmap = np.zeros(1 << (64 - shift), np.uint8)
                _set_slots(bitmap, self._array, shift)
                self._filter = (shift, bitmap)
            if self._directory is None:
                bits = _directory_bits(self._size)
                self._directory = _directory(np.bincount(
                    _directory_top(self._array, bits), minlength=1 << bits), self._size)
            if self._scalar is None:
                self._set_scalar()
            return self._filter

    def _contains(self, values: np.ndarray) -> np.ndarray:
        idx = self._array.searchsorted(values)
        idx[idx == self._size] = 0
        return self._array[idx] == values

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory held by the set (its probe filter included once built)."""
        return int(self._array.nbytes) + (0 if self._filter is None else int(
            self._filter[1].nbytes)) + (0 if self._directory is None else
                                        int(self._directory.nbytes))


#: Document type codes, by the uint8 a :class:`KeyTable` stores.
_TYPE_CODES = tuple(DOC_TYPES)
_TYPE_INDEX = {t: i for i, t in enumerate(_TYPE_CODES)}

#: A digest of a set of records: (count, xor of fold hashes, sum of ids mod 2**64). The
#: key file's base plus its delta must give the database's, or the file is rebuilt.
Digest = tuple[int, int, int]
_M64 = (1 << 64) - 1


def _digest(hashes: np.ndarray, ids: np.ndarray) -> Digest:
    xor = int(np.bitwise_xor.reduce(hashes)) if len(hashes) else 0
    return (len(hashes), xor & _M64, int(ids.astype(np.uint64).sum(dtype=np.uint64)))


def _combine(a: Digest, b: Digest, sign: int = 1) -> Digest:
    """The digest of a's records plus (or, with ``sign=-1``, less) b's."""
    return (a[0] + sign * b[0], (a[1] ^ b[1]) & _M64, (a[2] + sign * b[2]) & _M64)


class KeyTable:
    """The first-level fields of a set of records, sorted by folded-key hash.

    Columns (NumPy arrays, memory-mapped from the key file or in memory): ``keys`` (a
    :class:`KeySet` over the sorted hashes), ``ids`` (record id, uint32 or int64),
    ``offsets`` + ``data`` (the canonical numbers, Arrow-style), ``types`` (uint8 index
    into the document types), ``countries`` (uint16 index into ``names``). Immutable.

    Example:
        >>> from sltd.keyhash import key_hashes
        >>> t = KeyTable.from_arrow(pa.table({"record_id": [7], "number": ["X1234567"],
        ...     "doc_type": ["P"], "country": ["FRA"],
        ...     "fold_hash": key_hashes(pa.array(["X1234567"]))}))
        >>> t.rows(["X1234567"], None, frozenset())
        [(7, 'X1234567', 'P', 'FRA')]
    """

    __slots__ = ("keys", "hashes", "ids", "offsets", "data", "types", "countries", "names",
                 "codes", "max_id", "digest", "probe", "probe_test", "alphabets", "_iv",
                 "_ov", "_dv", "_tv", "_cv")

    def __init__(self, keys: KeySet, ids: np.ndarray, offsets: np.ndarray, data: np.ndarray,
                 types: np.ndarray, countries: np.ndarray, names: Sequence[str],
                 max_id: int, digest: Digest | None = None,
                 probe: tuple[int, np.ndarray] | None = None,
                 alphabets: Alphabets | None = None):
        self.keys = keys
        self.hashes = keys._array
        self.ids = ids
        self.offsets = offsets
        self.data = data
        self.types = types
        self.countries = countries
        self.names = tuple(names)
        #: Each name's :func:`sltd.keyhash.country_code`, by name index.
        self.codes = np.array([country_code(c) for c in self.names] or [0], np.uint64)
        #: The highest record id in this table or before it (ids only grow).
        self.max_id = max_id
        self.digest = _digest(self.hashes, ids) if digest is None else digest
        #: The probe filter: (shift, bitmap) over the rows' folded keys'
        #: :func:`sltd.keyhash.probe_hash_bytes`, as the key set's filter is over their
        #: key hashes; built from the numbers when not given (in-memory tables).
        self.probe = probe if probe is not None or not len(ids) else _probe_filter(
            probe_hashes(fold_matrix(self._numbers())), len(ids))
        #: What :meth:`KeySnapshot.lookup` reads of it: (shift, bitmap memoryview).
        self.probe_test = None if self.probe is None else (self.probe[0],
                                                           self.probe[1].data)
        #: The characters its numbers carry, per issuer and position (near-miss policy).
        self.alphabets = alphabets if alphabets is not None else Alphabets.of(
            offsets, data, types, countries, len(self.names))
        # memoryviews: Python ints per index without NumPy calls (no GIL hand-over)
        self._iv = ids.data
        self._ov = offsets.data
        self._dv = data.data
        self._tv = types.data
        self._cv = countries.data

    @classmethod
    def empty(cls) -> KeyTable:
        return cls.from_arrow(store.empty_key_columns())

    @classmethod
    def from_arrow(cls, records: pa.Table, names: Sequence[str] = (),
                   max_id: int = 0) -> KeyTable:
        """From :data:`sltd.store.KEY_COLUMNS` (in memory: the delta, small tables)."""
        hashes = records.column("fold_hash").to_numpy().astype(np.int64, copy=False)
        order = np.argsort(hashes, kind="stable")
        names, types, countries = _codes(records, names)
        ids = records.column("record_id").to_numpy().astype(np.int64)[order]
        numbers = records.column("number").combine_chunks().cast(pa.large_string()) \
            .take(pa.array(order))
        offsets, data = _string_buffers(numbers)
        return cls(KeySet(hashes[order]), ids, offsets, data, types[order],
                   countries[order], names, max(max_id, int(ids.max()) if len(ids) else 0))

    def merged(self, records: pa.Table) -> KeyTable:
        """A new table with ``records`` added: the new rows are sorted alone, then merged
        in one pass (no full re-sort)."""
        new = KeyTable.from_arrow(records, self.names, self.max_id)
        at = self.hashes.searchsorted(new.hashes, side="right")
        position = at + np.arange(len(at))  # where each new row lands in the merged arrays
        is_new = np.zeros(len(self) + len(at), bool)
        is_new[position] = True
        order = np.empty(len(is_new), np.int64)  # merged row -> row of concat(old, new)
        order[~is_new] = np.arange(len(self))
        order[is_new] = len(self) + np.arange(len(at))

        def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a, b.astype(a.dtype, copy=False)])[order]

        numbers = pa.concat_arrays([self._numbers(), new._numbers()]).take(pa.array(order))
        offsets, data = _string_buffers(numbers)
        return KeyTable(KeySet(merge(self.hashes, new.hashes)),
                        merge(self.ids.astype(np.int64), new.ids), offsets, data,
                        merge(self.types, new.types), merge(self.countries, new.countries),
                        new.names, new.max_id, _combine(self.digest, new.digest),
                        alphabets=self.alphabets + new.alphabets)

    def _numbers(self) -> pa.Array:
        offsets = self.offsets.astype(np.int64, copy=False)
        return pa.Array.from_buffers(pa.large_string(), len(self.ids), [
            None, pa.py_buffer(offsets), pa.py_buffer(self.data)])

    def rows(self, folds: Sequence[str], hashes: Sequence[int] | None,
             withdrawn: frozenset[int] | set[int]) -> list[tuple[int, str, str, str]]:
        """(record_id, number, doc_type, country) of the records with these folded keys
        (``hashes``: their :func:`key_hash`, if the caller has them), less ``withdrawn``.
        A hash match is confirmed by folding the record's number."""
        out: list[tuple[int, str, str, str]] = []
        for k, fold in enumerate(folds):
            h = key_hash(fold) if hashes is None else hashes[k]
            i = self.keys.find(h)
            if i >= 0:
                self.rows_at(i, h, fold.encode("ascii"), withdrawn, out)
        return out

    def rows_at(self, i: int, h: int, folded: bytes, withdrawn: frozenset[int] | set[int],
                out: list[tuple[int, str, str, str]]) -> None:
        """Append to ``out`` the rows of the folded key ``folded`` (ASCII bytes) from row
        ``i``, the first of hash ``h``."""
        n = len(self.hashes)
        hv, ids, offsets, data = self.keys._view, self._iv, self._ov, self._dv
        while i < n and hv[i] == h:
            record_id = ids[i]
            if record_id not in withdrawn:
                number = bytes(data[offsets[i]:offsets[i + 1]])
                if number.translate(FOLD_TABLE) == folded:  # not a hash collision
                    out.append((record_id, number.decode("ascii"), _TYPE_CODES[self._tv[i]],
                                self.names[self._cv[i]]))
            i += 1

    def matching(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (position in ``hashes``, row) whose row has that hash, vectorized (bulk
        screening). The hashes are looked up in sorted order, so the binary searches walk
        the table (memory-mapped: pages read in order) once."""
        hashes = np.asarray(hashes, np.int64)
        n = len(self.hashes)
        if n == 0 or len(hashes) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.argsort(hashes, kind="stable")
        pos = np.empty(len(hashes), np.int64)
        pos[order] = self.hashes.searchsorted(hashes[order])
        queries, rows = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        live = np.flatnonzero(pos < n)
        while len(live):  # a hash has one row, rarely a few (the same key in countries)
            at = pos[live]
            live = live[self.hashes[at] == hashes[live]]
            queries.append(live)
            rows.append(pos[live])
            pos[live] += 1
            live = live[pos[live] < n]
        return np.concatenate(queries), np.concatenate(rows)

    def fields_at(self, rows: np.ndarray) -> dict[str, pa.Array]:
        """``record_id, record_number, record_type, record_country`` of ``rows``."""
        rows = np.asarray(rows, np.int64)
        starts = self.offsets[rows].astype(np.int64)
        lengths = self.offsets[rows + 1].astype(np.int64) - starts
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        chars = self.data[np.repeat(starts - offsets[:-1], lengths)
                          + np.arange(offsets[-1], dtype=np.int64)]
        numbers = pa.Array.from_buffers(pa.large_string(), len(rows), [
            None, pa.py_buffer(offsets), pa.py_buffer(chars)]).cast(pa.string())
        names = pa.array(self.names or [""], pa.string())
        return {"record_id": pa.array(self.ids[rows].astype(np.int64)),
                "record_number": numbers,
                "record_type": pa.array(_TYPE_CODES, pa.string()).take(
                    pa.array(self.types[rows])),
                "record_country": names.take(pa.array(self.countries[rows]))}

    def in_country(self, hashes: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Mask: which ``hashes`` a record of this table has in the country of the
        aligned :func:`sltd.keyhash.country_codes` (for hashes known to be present;
        cheap for the few that are)."""
        n = len(self.hashes)
        pos = self.hashes.searchsorted(hashes)
        result = np.zeros(len(hashes), bool)
        live = pos < n
        while live.any():
            at = pos[live]
            same = self.hashes[at] == hashes[live]
            idx = np.flatnonzero(live)
            result[idx[same]] |= self.codes[self.countries[at[same]]] == codes[live][same]
            live[idx[~same]] = False
            pos = pos + 1
            live &= pos < n
        return result

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.ids.nbytes + self.offsets.nbytes
                   + self.data.nbytes + self.types.nbytes + self.countries.nbytes
                   + (self.probe[1].nbytes if self.probe is not None else 0)
                   + self.alphabets.nbytes)


def _codes(records: pa.Table, names: Sequence[str]
           ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(names extended with new countries, type codes, country codes) of ``records``."""
    types = records.column("doc_type").combine_chunks().dictionary_encode()
    type_map = np.array([_TYPE_INDEX[t] for t in types.dictionary.to_pylist()] or [0],
                        np.uint8)
    countries = records.column("country").combine_chunks().dictionary_encode()
    more = [c for c in countries.dictionary.to_pylist() if c not in names]
    all_names = (*names, *more)
    index = {c: i for i, c in enumerate(all_names)}
    country_map = np.array([index[c] for c in countries.dictionary.to_pylist()] or [0],
                           np.uint16)
    return (all_names, type_map[types.indices.to_numpy(zero_copy_only=False)],
            country_map[countries.indices.to_numpy(zero_copy_only=False)])


def _string_buffers(numbers: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets from 0, uint8 data) of a large_string array, as NumPy arrays."""
    buffers = numbers.buffers()
    offsets = np.frombuffer(buffers[1], np.int64)[numbers.offset:
                                                  numbers.offset + len(numbers) + 1]
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else \
        np.zeros(0, np.uint8)
    if len(offsets) and offsets[0]:
        data = data[offsets[0]:]
        offsets = offsets - offsets[0]
    return offsets, data


# --- the key file -------------------------------------------------------------------------

#: First bytes of a key file; the header follows as JSON.
MAGIC = b"SLTDKEYS"
#: Layout version of the key file (the hash is :data:`sltd.store.SCHEMA_VERSION`'s).
FORMAT = 4
_ALIGN = 64


def key_file_path(db_path: str) -> str | None:
    """Where the key file of an index lives (None for an in-memory index)."""
    return None if db_path == ":memory:" else f"{db_path}.keys"


class _Layout:
    """Offsets of the sections of a key table of ``n`` rows in one buffer or file."""

    def __init__(self, n: int, max_id: int, header_room: int):
        self.id_dtype = np.dtype(np.uint32 if max_id < 1 << 32 else np.int64)
        self.offset_dtype = np.dtype(np.uint32 if n * MAX_LENGTH < 1 << 32 else np.int64)
        self.filtered = n >= _FILTER_MIN
        self.shift = _filter_shift(n)
        self.bits = _directory_bits(n)
        self.dir_dtype = np.dtype(np.uint32 if n < 1 << 32 else np.int64)
        sizes = {"hashes": n * 8, "ids": n * self.id_dtype.itemsize,
                 "offsets": (n + 1) * self.offset_dtype.itemsize, "types": n,
                 "countries": n * 2,
                 "filter": (1 << (64 - self.shift)) if self.filtered else 0,
                 "probe": (1 << (64 - self.shift)) if n else 0,
                 "directory": ((1 << self.bits) + 1) * self.dir_dtype.itemsize
                 if self.filtered else 0}
        self.at: dict[str, int] = {}
        pos = _aligned(header_room)
        for name, size in sizes.items():
            self.at[name] = pos
            pos = _aligned(pos + size)
        self.data_at = pos  # the numbers' characters, whose total is known at the end


def _aligned(pos: int) -> int:
    return -(-pos // _ALIGN) * _ALIGN


def build_key_file(con: duckdb.DuckDBPyConnection, path: str | None,
                   batch_rows: int = 1 << 20) -> KeyTable:
    """Build the base table of all active records from DuckDB, streamed in hash order
    (memory bounded by one batch, not by the list), into the key file ``path`` (written
    beside it, then renamed over it) or, with ``path=None``, into memory."""
    n, max_id, digest, names = store.key_summary(con)
    header_room = 4096 + sum(len(c) + 4 for c in names)
    lay = _Layout(n, max_id, header_room)
    sink: _Sink = _FileSink(path) if path is not None else _MemorySink()
    try:
        bitmap = np.zeros(1 << (64 - lay.shift) if lay.filtered else 0, np.uint8)
        probe = np.zeros(1 << (64 - lay.shift) if n else 0, np.uint8)
        counts = np.zeros(1 << lay.bits if lay.filtered else 0, np.int64)
        alphabets = AlphabetCounter(len(names))
        row, chars = 0, 0
        offsets_tail = np.zeros(1, lay.offset_dtype)
        sink.write(lay.at["offsets"], offsets_tail.tobytes())
        for batch in store.key_rows(con, ordered=True, batch_rows=batch_rows):
            k = batch.num_rows
            hashes = batch.column("fold_hash").to_numpy().astype(np.int64, copy=False)
            ids = batch.column("record_id").to_numpy()
            numbers = batch.column("number").cast(pa.large_string())
            offsets, data = _string_buffers(numbers)
            _, types, countries = _codes(pa.table(batch), names)  # names has them all
            sink.write(lay.at["hashes"] + row * 8, hashes.tobytes())
            sink.write(lay.at["ids"] + row * lay.id_dtype.itemsize,
                       ids.astype(lay.id_dtype).tobytes())
            sink.write(lay.at["offsets"] + (row + 1) * lay.offset_dtype.itemsize,
                       (offsets[1:] + chars).astype(lay.offset_dtype).tobytes())
            sink.write(lay.at["types"] + row, types.tobytes())
            sink.write(lay.at["countries"] + row * 2, countries.astype(np.uint16).tobytes())
            sink.write(lay.data_at + chars, data.tobytes())
            _set_slots(probe, np.sort(probe_hashes(fold_matrix(numbers))), lay.shift)
            alphabets.add(offsets, data, types, countries)
            if lay.filtered:
                _set_slots(bitmap, hashes, lay.shift)
                counts += np.bincount(_directory_top(hashes, lay.bits), minlength=len(counts))
            row += k
            chars += len(data)
        if row != n:  # the writer lock or a read-only snapshot keeps this from happening
            raise IndexStateError(f"{n} records were expected, {row} were read")
        if n:
            sink.write(lay.at["probe"], probe.tobytes())
        counted = alphabets.result()
        alphabets_at = _aligned(lay.data_at + chars)
        sink.write(alphabets_at, counted.slots.tobytes() + counted.counts.tobytes())
        if lay.filtered:
            sink.write(lay.at["filter"], bitmap.tobytes())
            sink.write(lay.at["directory"], _directory(counts, n).astype(lay.dir_dtype)
                       .tobytes())
        header = {"format": FORMAT, "schema": store.SCHEMA_VERSION, "rows": n,
                  "max_id": max_id, "digest": list(digest), "names": list(names),
                  "chars": chars, "id_dtype": lay.id_dtype.str,
                  "offset_dtype": lay.offset_dtype.str, "shift": lay.shift,
                  "directory_bits": lay.bits, "directory_dtype": lay.dir_dtype.str,
                  "filtered": lay.filtered, "sections": lay.at, "data_at": lay.data_at,
                  "alphabets_at": alphabets_at, "alphabet_slots": len(counted.slots)}
        sink.write(0, _header_bytes(header, header_room))
        return _table_from(sink.finish(), header)
    except BaseException:
        sink.abandon()
        raise


def _header_bytes(header: dict[str, Any], room: int) -> bytes:
    body = json.dumps(header, separators=(",", ":")).encode()
    if len(MAGIC) + 4 + len(body) > room:  # pragma: no cover - room is sized for names
        raise ValueError("key file header too large")
    return MAGIC + len(body).to_bytes(4, "little") + body


class _Sink:
    def write(self, at: int, data: bytes) -> None: ...
    def finish(self) -> Any: ...
    def abandon(self) -> None: ...


class _MemorySink(_Sink):
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, at: int, data: bytes) -> None:
        end = at + len(data)
        if end > len(self.buf):
            self.buf.extend(bytes(end - len(self.buf)))
        self.buf[at:end] = data

    def finish(self) -> Any:
        return self.buf


class _FileSink(_Sink):
    """Writes a new key file beside ``path`` (positioned writes, nothing held in memory),
    then renames it over ``path``: a reader sees the old file or the new one, whole."""

    def __init__(self, path: str):
        self.path = path
        self.tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, at: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, at)
            view, at = view[done:], at + done

    def finish(self) -> Any:
        os.fsync(self.fd)
        os.replace(self.tmp, self.path)
        mapped = _map(self.fd)
        os.close(self.fd)
        return mapped

    def abandon(self) -> None:
        os.close(self.fd)
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:  # pragma: no cover
            pass


def _map(fd: int) -> Any:
    size = os.fstat(fd).st_size
    return mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else bytearray()


def open_key_file(path: str) -> KeyTable | None:
    """The key table in ``path`` (memory-mapped), or None if there is no such file or it
    is not a key file of this version (then it is rebuilt, or left alone if it is not a
    key file at all: see :func:`is_key_file`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        buf = _map(fd)
    finally:
        os.close(fd)
    header = _read_header(buf)
    if header is None or header.get("format") != FORMAT \
            or header.get("schema") != store.SCHEMA_VERSION:
        return None
    if len(buf) < _alphabets_end(header):
        return None  # truncated
    return _table_from(buf, header)


def _alphabets_end(header: dict[str, Any]) -> int:
    slots = header["alphabet_slots"]
    return header["alphabets_at"] + slots * 4 + slots * MAX_LENGTH * len(ALPHABET) * 4


def is_key_file(path: str) -> bool:
    """Whether ``path`` is missing or holds a key file (of any version): one sltd may
    replace. Any other file there is an operator's, and never overwritten."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _read_header(buf: Any) -> dict[str, Any] | None:
    if len(buf) < len(MAGIC) + 4 or bytes(buf[:len(MAGIC)]) != MAGIC:
        return None
    size = int.from_bytes(buf[len(MAGIC):len(MAGIC) + 4], "little")
    try:
        header = json.loads(bytes(buf[len(MAGIC) + 4:len(MAGIC) + 4 + size]))
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _table_from(buf: Any, header: dict[str, Any]) -> KeyTable:
    n, at = header["rows"], header["sections"]

    def section(name: str, dtype: Any, count: int) -> np.ndarray:
        return np.frombuffer(buf, dtype, count, at[name]) if count else np.zeros(0, dtype)

    bucket = directory = None
    if header["filtered"]:
        bucket = (header["shift"], section("filter", np.uint8, 1 << (64 - header["shift"])))
        directory = section("directory", np.dtype(header["directory_dtype"]),
                            (1 << header["directory_bits"]) + 1)
    digest = header["digest"]
    slots, at_slots = header["alphabet_slots"], header["alphabets_at"]
    alphabets = Alphabets(np.frombuffer(buf, np.int32, slots, at_slots),
                          np.frombuffer(buf, np.uint32, slots * MAX_LENGTH * len(ALPHABET),
                                        at_slots + 4 * slots)) if slots \
        else Alphabets.empty()
    return KeyTable(KeySet(section("hashes", np.int64, n), bucket, directory),
                    section("ids", np.dtype(header["id_dtype"]), n),
                    section("offsets", np.dtype(header["offset_dtype"]), n + 1),
                    np.frombuffer(buf, np.uint8, header["chars"], header["data_at"])
                    if header["chars"] else np.zeros(0, np.uint8),
                    section("types", np.uint8, n), section("countries", np.uint16, n),
                    header["names"], header["max_id"], (digest[0], digest[1], digest[2]),
                    (header["shift"], section("probe", np.uint8, 1 << (64 - header["shift"])))
                    if n else None, alphabets)


# --- snapshots ----------------------------------------------------------------------------

class KeySnapshot:
    """The list as a check sees it: a base table, a delta of records added since, and the
    ids withdrawn since. Immutable: a change of the list makes a new snapshot, which
    :class:`Keys` publishes with one assignment, so a reader holding a snapshot never
    sees half of a load.

    Example:
        >>> from sltd.keyhash import key_hashes
        >>> snap = KeySnapshot(KeyTable.empty()).with_keys(pa.table({"record_id": [1],
        ...     "number": ["X1234567"], "doc_type": ["P"], "country": ["FRA"],
        ...     "fold_hash": key_hashes(pa.array(["X1234567"]))}))
        >>> key_hash("X1234567") in snap, key_hash("X7654321") in snap
        (True, False)
        >>> snap.without([1]).rows(["X1234567"])
        []
    """

    __slots__ = ("base", "delta", "withdrawn", "version", "gone", "_base_keys", "_delta_keys",
                 "_probes")

    def __init__(self, base: KeyTable, delta: KeyTable | None = None,
                 withdrawn: frozenset[int] = frozenset(), version: ListVersion = NO_VERSION,
                 gone: Alphabets | None = None):
        self.base = base
        #: The alphabets of the withdrawn records (still in base or delta), so that the
        #: near-miss policy counts exactly the active records, as a snapshot built from
        #: them alone would (a replay's, :func:`snapshot_at`).
        self.gone = gone if gone is not None else Alphabets.empty()
        #: The list version this snapshot holds: the answers made from it are the list's
        #: as of that version.
        self.version = version
        self.delta = delta if delta is not None else KeyTable.from_arrow(
            store.empty_key_columns(), base.names, base.max_id)
        self.withdrawn = withdrawn
        self._base_keys = base.keys
        self._delta_keys = self.delta.keys if len(self.delta) else None
        self._probes = tuple(t.probe_test for t in (base, self.delta)
                             if t.probe_test is not None)

    def with_keys(self, keys: pa.Table) -> KeySnapshot:
        """A new snapshot with the records of ``keys`` (:data:`sltd.store.KEY_COLUMNS`)
        added to the delta."""
        return KeySnapshot(self.base, self.delta.merged(keys), self.withdrawn, self.version,
                           self.gone)

    def without(self, record_ids: Iterable[int], keys: pa.Table | None = None
                ) -> KeySnapshot:
        """The same snapshot with these records withdrawn (their hashes stay in the key
        sets: a superset costs a lookup, never a hit). ``keys``: their number, doc_type
        and country, whose characters the near-miss policy stops counting."""
        gone = self.gone
        if keys is not None and keys.num_rows:
            names, types, countries = _codes(keys, self.delta.names)
            numbers = keys.column("number").combine_chunks().cast(pa.large_string())
            gone = gone + Alphabets.of(*_string_buffers(numbers), types, countries,
                                       len(names))
        return KeySnapshot(self.base, self.delta, self.withdrawn | frozenset(record_ids),
                           self.version, gone)

    def at(self, version: ListVersion | None) -> KeySnapshot:
        """The same records, labelled with ``version`` when it is newer (a publish never
        moves the label back)."""
        if version is None or version <= self.version:
            return self
        return KeySnapshot(self.base, self.delta, self.withdrawn, version, self.gone)

    def alphabet_sets(self) -> pa.Table:
        """The issuers' alphabets as :func:`carries` reads them, as sets: ``country,
        doc_type, position, chars`` (what a sealed feed carries, :mod:`sltd.sealed`)."""
        names = self.delta.names
        rows = character_sets((self.base.alphabets, self.delta.alphabets), self.gone)
        return pa.table({
            "country": pa.array([names[slot // len(_TYPE_CODES)] for slot, _, _ in rows],
                                pa.string()),
            "doc_type": pa.array([_TYPE_CODES[slot % len(_TYPE_CODES)]
                                  for slot, _, _ in rows], pa.string()),
            "position": pa.array([p for _, p, _ in rows], pa.int32()),
            "chars": pa.array([c for _, _, c in rows], pa.string())})

    @property
    def max_id(self) -> int:
        return self.delta.max_id

    @property
    def backlog(self) -> int:
        """Rows held outside the base (added or withdrawn since it was built)."""
        return len(self.delta) + len(self.withdrawn)

    def __contains__(self, fold_hash: int) -> bool:
        return fold_hash in self._base_keys or (
            self._delta_keys is not None and fold_hash in self._delta_keys)

    def present(self, fold_hashes: np.ndarray, country: str | np.ndarray | None = None
                ) -> np.ndarray:
        """Mask of the listed ones among ``fold_hashes``: anywhere, or in ``country``
        (one code for all, or :func:`sltd.keyhash.country_codes` aligned with the
        hashes)."""
        found = self._base_keys.contains_any(fold_hashes)
        if self._delta_keys is not None:
            found |= self._delta_keys.contains_any(fold_hashes)
        if country is None or not found.any():
            return found
        idx = np.flatnonzero(found)
        hashes = np.asarray(fold_hashes, np.int64)[idx]
        codes = (np.full(len(idx), country_code(country), np.uint64)
                 if isinstance(country, str) else np.asarray(country, np.uint64)[idx])
        keep = self.base.in_country(hashes, codes)
        if self._delta_keys is not None:
            keep |= self.delta.in_country(hashes, codes)
        found[idx[~keep]] = False
        return found

    def rows(self, folds: Sequence[str], hashes: Sequence[int] | None = None
             ) -> list[tuple[int, str, str, str]]:
        """(record_id, number, doc_type, country) of the active records with these folded
        keys (``hashes``: their :func:`key_hash`, if the caller has them)."""
        out = self.base.rows(folds, hashes, self.withdrawn)
        if self._delta_keys is not None:
            out += self.delta.rows(folds, hashes, self.withdrawn)
        return out

    def pairs(self, candidates: pa.Table, carried: Sequence[str] = ()) -> pa.Table:
        """Screening's join, from memory: each candidate (``row, number, type, country,
        fold, fold_hash`` and the ``carried`` columns) with every active record of the
        same folded key: ``record_id, record_number, record_type, record_country`` added,
        one row per (candidate row, record). The twin of
        :func:`sltd.store.candidate_pairs` (which screening uses only with ``--since``,
        for the records' change times), without a scan of the records.
        """
        hashes = candidates.column("fold_hash").to_numpy()
        parts = []
        for table in (self.base, self.delta):
            query, rows = table.matching(hashes)
            if len(query):
                fields = table.fields_at(rows)
                if self.withdrawn:
                    live = ~np.isin(fields["record_id"].to_numpy(),
                                    np.fromiter(self.withdrawn, np.int64))
                    query, fields = query[live], {k: v.filter(pa.array(live))
                                                  for k, v in fields.items()}
                parts.append((query, fields))
        columns = ["row", "number", "type", "country", *carried]
        if not parts:
            return pa.table({**{c: candidates.column(c).slice(0, 0) for c in columns},
                             **store.empty_pairs_fields()})
        query = np.concatenate([q for q, _ in parts])
        fields = {k: pa.concat_arrays([f[k] for _, f in parts]) for k in parts[0][1]}
        taken = candidates.select([*columns, "fold"]).take(pa.array(query))
        same = pc.equal(taken.column("fold"), fold_strings(fields["record_number"]))
        pairs = pa.table({**{c: taken.column(c) for c in columns}, **fields}).filter(same)
        # one row per (candidate row, record): near-miss probes of one row can repeat
        key = np.stack([pairs.column("row").to_numpy(),
                        pairs.column("record_id").to_numpy()], axis=1)
        _, first = np.unique(key, axis=0, return_index=True)
        return pairs.take(pa.array(np.sort(first))) if len(first) < pairs.num_rows \
            else pairs

    def lookup(self, folded: bytes) -> list[tuple[int, str, str, str]]:
        """:meth:`rows` of one folded key (ASCII bytes): the path of every check. Most
        end at the probe filters, on the cheap probe hash; the key hash is computed only
        for the few keys that pass one."""
        g = probe_hash_bytes(folded)
        # the filter test (the twin of _filter_slots), inlined: one read of a bitmap
        for test in self._probes:
            shift, bits = test
            six = (g >> (shift - 6)) & 63
            first = six & 7
            mask = (1 << first) | (1 << ((first + 1 + ((six >> 3) & 3)) & 7))
            if bits[g >> shift] & mask == mask:
                break
        else:
            return []
        h = key_hash_bytes(folded)
        out: list[tuple[int, str, str, str]] = []
        i = self._base_keys.locate(h)
        if i >= 0:
            self.base.rows_at(i, h, folded, self.withdrawn, out)
        if self._delta_keys is not None:
            i = self._delta_keys.locate(h)
            if i >= 0:
                self.delta.rows_at(i, h, folded, self.withdrawn, out)
        return out

    def carries(self, country: str, doc_type: str, position: int, ch: str) -> bool:
        """Whether the listed numbers of an issuer (the country and type of a listed
        record) carry ``ch`` at ``position`` often enough to make it part of their
        format (:mod:`sltd.alphabets`)."""
        names = self.delta.names  # the base's, then any the delta added
        if country not in names:
            return False
        return carries((self.base.alphabets, self.delta.alphabets), names.index(country),
                       _TYPE_INDEX[doc_type], position, ch, self.gone)

    def __len__(self) -> int:
        return len(self.base) + len(self.delta) - len(self.withdrawn)

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.delta.nbytes + 8 * len(self.withdrawn)


def snapshot_at(con: duckdb.DuckDBPyConnection, version: ListVersion) -> KeySnapshot:
    """The list as it stood at ``version``: every record version in force then (from the
    version spans of records and history), in memory. What a replay checks against; built
    per call (10M records: ~12 s), never published.

    Example:
        >>> from sltd import open_index, Record
        >>> ix = open_index(":memory:", create=True)
        >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        >>> ix.withdraw("X1234567", "P", "FRA")
        >>> [len(snapshot_at(ix._db.cursor(), ListVersion(v))) for v in (0, 1, 2)]
        [0, 1, 0]
    """
    return KeySnapshot(KeyTable.from_arrow(store.key_columns_at(con, version.version)),
                       version=version)


#: How far ahead (days) :class:`Reviews` reads review dates: records reviewed within it
#: are known in memory, so a record stops hitting the moment its day comes, and the
#: database is read again only when the window is used up or the records change.
REVIEW_WINDOW_DAYS = 31


class Reviews:
    """The records reviewed on or before day ``until`` (days since 1970), by day: which
    of them have lapsed on a given day (from its 00:00 UTC on, a record no longer hits).

    Example:
        >>> r = Reviews(np.array([7, 9]), np.array([20000, 20002]), until=20030)
        >>> sorted(r.lapsed(20001)), sorted(r.lapsed(20002))
        ([7], [7, 9])
    """

    __slots__ = ("ids", "days", "until", "_cached")

    def __init__(self, ids: np.ndarray, days: np.ndarray, until: int):
        order = np.argsort(days, kind="stable")
        self.ids, self.days, self.until = ids[order], days[order], until
        # (day, its lapsed ids) in one attribute: threads checking either side of
        # midnight replace it whole, so none reads one day's set under another's label
        self._cached: tuple[int, frozenset[int]] = (-1, frozenset())

    @classmethod
    def of(cls, table: pa.Table, until: int) -> Reviews:
        """From (record_id, review_date) rows."""
        return cls(table.column("record_id").to_numpy().astype(np.int64),
                   table.column("review_date").cast(pa.int32()).to_numpy().astype(np.int64),
                   until)

    def lapsed(self, day: int) -> frozenset[int]:
        """The ids whose review day is ``day`` or earlier (cached for the day)."""
        cached_day, found = self._cached
        if day != cached_day:
            n = int(np.searchsorted(self.days, day, side="right"))
            found = frozenset(self.ids[:n].tolist())
            self._cached = (day, found)
        return found


def day_of(at: float) -> int:
    """The UTC day (days since 1970) of a time in seconds since the epoch."""
    return int(at // 86400)


class Keys:
    """The published key snapshot of one index: opened from the key file (or built) on
    first use, so a process that only reveals, decides or delivers alerts never pays for
    it; then replaced whole after each committed load or withdrawal.

    Readers call :meth:`snapshot` once per check and use what it returns throughout;
    writers call :meth:`add` / :meth:`withdraw` after their COMMIT and before they return,
    under the database's writer lock, so a check that starts after a load returned sees
    its records, and changes are published in commit order.

    Args:
        cursor: gives a DuckDB cursor of the index for the calling thread.
        path: the key file (None: in memory only).
        writable: whether this process may write the key file (a read-only process
            uses a stale one with its delta, or builds in memory).
    """

    #: The delta is folded into a new base once it holds this share of the base's rows.
    COMPACT_SHARE = 16
    #: ... but never for fewer rows than this.
    COMPACT_MIN = 1 << 16

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection] | None,
                 path: str | None = None, *, writable: bool = True):
        self._cursor = cursor
        self.path = path
        self.writable = writable and cursor is not None
        self._current: KeySnapshot | None = None
        self._lock = threading.Lock()
        self._reviews: Reviews | None = None  # read when a check first needs it
        self._review_generation = 0

    @classmethod
    def of(cls, records: pa.Table) -> Keys:
        """Keys over a fixed table of :data:`sltd.store.KEY_COLUMNS`, with no database
        behind them (examples, tests); :meth:`add` with a table still adds to them."""
        keys = cls(None)
        keys._current = KeySnapshot(KeyTable.from_arrow(records))
        return keys

    def snapshot(self) -> KeySnapshot:
        current = self._current
        if current is None:
            with self._lock:
                if self._current is None:
                    self._current = self._open()
                current = self._current
        return current

    def _open(self) -> KeySnapshot:
        """The key file brought up to date, if it matches the database; else a new base.
        Read in one transaction: a load committing meanwhile is published after this
        (by :meth:`add`, which waits for the lock)."""
        assert self._cursor is not None  # Keys.of() are built at creation
        con = self._cursor()
        con.begin()
        try:
            base = open_key_file(self.path) if self.path is not None else None
            snap = self._catch_up(con, base) if base is not None else None
            if base is not None and snap is None:
                log.info("key file %s does not match the index: rebuilding it", self.path)
            if snap is None or (self.writable and self._due(snap)):
                snap = KeySnapshot(self._build(con))
            snap = snap.at(store.current_version(con))
        finally:
            con.commit()
        return snap

    def _catch_up(self, con: duckdb.DuckDBPyConnection, base: KeyTable) -> KeySnapshot | None:
        """``base`` with the records added since it was built and those withdrawn since,
        or None if that does not give the database's active records (by digest)."""
        snap = KeySnapshot(base).with_keys(store.key_columns(con, after_id=base.max_id))
        gone = store.withdrawn_keys(con, up_to_id=base.max_id)
        ids = gone.column("record_id").to_numpy()
        hashes = gone.column("fold_hash").to_numpy()
        in_base = _in_table(base, hashes, ids)  # not those withdrawn before it was built
        ids, hashes = ids[in_base], hashes[in_base]
        expected = _combine(_combine(base.digest, snap.delta.digest),
                            _digest(hashes, ids), -1)
        if expected != store.key_digest(con):
            return None
        return snap.without(ids.tolist(), gone.filter(pa.array(in_base))) if len(ids) \
            else snap

    def _due(self, snap: KeySnapshot) -> bool:
        return snap.backlog >= max(self.COMPACT_MIN, len(snap.base) // self.COMPACT_SHARE)

    def _build(self, con: duckdb.DuckDBPyConnection) -> KeyTable:
        path = self.path if self.writable and self.path is not None and is_key_file(
            self.path) else None
        with store.memory_limit(con, store.KEY_BUILD_MEMORY):  # the sort spills past it
            try:
                return build_key_file(con, path)
            except OSError as e:  # a full disk or a read-only directory: keep going
                log.warning("cannot write the key file %s (%s): keys kept in memory",
                            path, e)
                return build_key_file(con, None)

    def _maybe_compacted(self, snap: KeySnapshot) -> KeySnapshot:
        """``snap``, or once its delta is due, a new base from the database (the caller
        holds the writer lock, so the database holds exactly the records ``snap`` has)."""
        if self._cursor is None or not self.writable or not self._due(snap):
            return snap
        return KeySnapshot(self._build(self._cursor()), version=snap.version)

    def add(self, keys: pa.Table | None = None, version: ListVersion | None = None) -> None:
        """Publish the records committed since the last publish (call after COMMIT, under
        the writer lock). ``keys``: those records' :data:`sltd.store.KEY_COLUMNS`, if the
        writer read them back; else they are read from the database (ids above the
        snapshot's highest). ``version``: the list version the commit made.

        If the keys were never built, nothing is to do: the first use reads the committed
        table. A build running meanwhile finishes first (same lock), then this adds to it.
        """
        with self._lock:
            current = self._current
            if current is None:
                return
            if keys is None:
                if self._cursor is None:
                    self._current = current.at(version)
                    return
                keys = store.key_columns(self._cursor(), after_id=current.max_id)
            if keys.num_rows == 0 or pc.min(keys.column("record_id")).as_py() <= \
                    current.max_id:  # nothing new, or keys built after this commit hold it
                self._current = current.at(version)
                return
            self._current = self._maybe_compacted(current.with_keys(keys)).at(version)

    def withdraw(self, record_ids: Iterable[int], version: ListVersion | None = None,
                 keys: pa.Table | None = None) -> None:
        """Publish withdrawals (call after their transaction committed), and the list
        version their commit made; ``keys``: the withdrawn records' number, doc_type and
        country (:meth:`KeySnapshot.without`)."""
        with self._lock:
            if self._current is not None:
                self._current = self._maybe_compacted(
                    self._current.without(record_ids, keys)).at(version)

    @property
    def built(self) -> bool:
        return self._current is not None

    def lapsed(self, at: float) -> frozenset[int]:
        """The ids of the active records whose review date has come at ``at`` (seconds
        since the epoch): they no longer hit. From memory: read from the database on
        first use, by the writer after each change (:meth:`reviews_changed`), and when
        the window of :data:`REVIEW_WINDOW_DAYS` is used up (the service's alert loop
        reads it a day ahead), never while a check waits on a running load."""
        day = day_of(at)
        reviews = self._reviews
        if reviews is None or day > reviews.until:
            reviews = self._read_reviews(day)
        return reviews.lapsed(day)

    def _read_reviews(self, day: int) -> Reviews:
        if self._cursor is None:
            return Reviews(np.zeros(0, np.int64), np.zeros(0, np.int64), 1 << 40)
        generation = self._review_generation
        until = day + REVIEW_WINDOW_DAYS
        reviews = Reviews.of(store.reviews_until(
            self._cursor(), dt.date(1970, 1, 1) + dt.timedelta(days=until)), until)
        with self._lock:  # kept unless records changed while it was read
            if self._review_generation == generation:
                self._reviews = reviews
        return reviews

    def refresh_reviews(self, at: float) -> None:
        """Read the review window again if it ends within a day of ``at`` (the service's
        alert loop calls this, so checks do not)."""
        reviews = self._reviews
        if reviews is None or day_of(at) + 1 >= reviews.until:
            self._read_reviews(day_of(at))

    def reviews_changed(self, at: float) -> None:
        """Records were added, updated or removed: read their review dates again now (in
        the writer, after the COMMIT and before publishing the keys), so that no check
        reads the database for them (right after a large commit, that read could wait
        seconds behind DuckDB's checkpoint)."""
        with self._lock:
            self._review_generation += 1
            generation, had = self._review_generation, self._reviews is not None
        if not had:
            return  # read on first use
        # checks keep the window they have (the keys they see are not published yet)
        # until the new one replaces it
        until = day_of(at) + REVIEW_WINDOW_DAYS
        assert self._cursor is not None
        fresh = Reviews.of(store.reviews_until(
            self._cursor(), dt.date(1970, 1, 1) + dt.timedelta(days=until)), until)
        with self._lock:
            if self._review_generation == generation:
                self._reviews = fresh
            else:
                self._reviews = None  # another change meanwhile: read on next use


def _in_table(table: KeyTable, hashes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mask: which (hash, id) pairs are rows of ``table``."""
    result = np.zeros(len(ids), bool)
    for j, (h, record_id) in enumerate(zip(hashes.tolist(), ids.tolist(), strict=True)):
        result[j] = any(table._iv[i] == record_id for i in _equal_range(table, h))
    return result


def _equal_range(table: KeyTable, h: int) -> Iterator[int]:
    view, n = table.keys._view, len(table)
    i = bisect_left(view, h, 0, n)
    while i < n and view[i] == h:
        yield i
        i += 1
