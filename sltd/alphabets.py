"""Which characters each issuer's listed numbers carry at each position: what tells a
misreading from another valid number.

A look-alike difference (``O`` for ``0``, ``G`` for ``6``...) is evidence of a misreading
only where the issuer's numbers cannot carry one of the two characters: a passport
numbered letter + eight digits has no ``O`` after its first character, so a typed
``X12O45678`` is ``X12045678`` misread. Where the issuer's numbers carry both (German
serials use ``G`` and ``6``, French identity cards any letter or digit anywhere), the two
are different documents as surely as after any other one-character change.

The alphabets are learned from the list itself, counted when a key table is built (per
issuer: country and document type; per position from the left; per character), and
kept in the key file. A character belongs to an issuer's alphabet at a position when at
least :data:`MIN_COUNT` of its listed numbers carry it there, and at least
:data:`MIN_SHARE` of those long enough to have that position: a record keyed with a
stray ``O`` does not make ``O`` part of the format.

Example:
    >>> import pyarrow as pa
    >>> numbers = pa.array(["X1234567", "X1204568", "X1200001", "X12O4567"],
    ...                    pa.large_string())  # the last one keyed with a stray O
    >>> offsets = np.frombuffer(numbers.buffers()[1], np.int64)
    >>> data = np.frombuffer(numbers.buffers()[2], np.uint8)
    >>> a = Alphabets.of(offsets, data, np.zeros(4, np.uint8), np.zeros(4, np.uint16), 1)
    >>> [carries((a,), 0, 0, 3, ch) for ch in "30O"]
    [False, True, False]
"""

from __future__ import annotations

import numpy as np

from sltd.codes import DOC_TYPES
from sltd.normalize import MAX_LENGTH

#: The characters of canonical numbers.
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_WIDTH = len(ALPHABET)
_INDEX = np.zeros(256, np.int32)
_INDEX[np.frombuffer(ALPHABET, np.uint8)] = np.arange(_WIDTH, dtype=np.int32)
_TYPES = len(DOC_TYPES)
_CELLS = MAX_LENGTH * _WIDTH  # counters per issuer
#: A character is in an issuer's alphabet at a position when at least this many of its
#: listed numbers carry it there ...
MIN_COUNT = 2
#: ... and at least this share of its numbers that have that position.
MIN_SHARE = 1 / 1000


class Alphabets:
    """Counts of the characters of listed numbers, per issuer (a country index into the
    key table's names, and a document type index into :data:`sltd.codes.DOC_TYPES`) and
    position. Immutable; tables of a snapshot add up (:meth:`carries` takes several).

    Attributes:
        slots: sorted issuer slots (country index * types + type index) with counts.
        counts: uint32, (slot, position, character) per :data:`ALPHABET`.
    """

    __slots__ = ("slots", "counts")

    def __init__(self, slots: np.ndarray, counts: np.ndarray):
        self.slots = slots
        self.counts = counts.reshape(len(slots), MAX_LENGTH, _WIDTH)

    @classmethod
    def empty(cls) -> Alphabets:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.uint32))

    @classmethod
    def of(cls, offsets: np.ndarray, data: np.ndarray, types: np.ndarray,
           countries: np.ndarray, names: int) -> Alphabets:
        """The alphabets of numbers in Arrow layout (``offsets`` into ``data``) with
        their issuers' type and country indexes; ``names``: how many countries. Sparse:
        an empty or small table (a snapshot's delta) costs next to nothing."""
        cells = _cells(offsets, data, types, countries)
        if not len(cells):
            return cls.empty()
        found, counts = np.unique(cells, return_counts=True)
        slots = np.unique(found // _CELLS).astype(np.int32)
        table = np.zeros((len(slots), _CELLS), np.uint32)
        table[np.searchsorted(slots, found // _CELLS), found % _CELLS] = counts
        return cls(slots, table)

    def __add__(self, other: Alphabets) -> Alphabets:
        if not len(other.slots):
            return self
        if not len(self.slots):
            return other
        slots = np.union1d(self.slots, other.slots).astype(np.int32)
        counts = np.zeros((len(slots), MAX_LENGTH, _WIDTH), np.uint32)
        counts[np.searchsorted(slots, self.slots)] += self.counts
        counts[np.searchsorted(slots, other.slots)] += other.counts
        return Alphabets(slots, counts)

    def _counts(self, slot: int, position: int, ch: str) -> tuple[int, int]:
        i = int(np.searchsorted(self.slots, slot))
        if i == len(self.slots) or self.slots[i] != slot:
            return 0, 0
        row = self.counts[i, position]
        return int(row[_INDEX[ord(ch)]]), int(row.sum())

    @property
    def nbytes(self) -> int:
        return int(self.slots.nbytes + self.counts.nbytes)


def carries(tables: tuple[Alphabets, ...], country: int, doc_type: int, position: int,
            ch: str, less: Alphabets | None = None) -> bool:
    """Whether ``ch`` is in the alphabet of an issuer's listed numbers at ``position``
    (0-based from the left), counting over ``tables`` (a snapshot's base and delta) less
    the numbers of ``less`` (withdrawn since, still in those tables)."""
    slot = country * _TYPES + doc_type
    count = total = 0
    for table in tables:
        c, t = table._counts(slot, position, ch)
        count += c
        total += t
    if less is not None:
        c, t = less._counts(slot, position, ch)
        count -= c
        total -= t
    return count >= MIN_COUNT and count >= total * MIN_SHARE


def character_sets(tables: tuple[Alphabets, ...], less: Alphabets | None = None
                   ) -> list[tuple[int, int, str]]:
    """Every (issuer slot, position, characters) where :func:`carries` says some
    characters are in the alphabet, the characters as one sorted string: the alphabets
    as sets, computed for all issuers at once (what a sealed feed carries,
    :mod:`sltd.sealed`)."""
    parts = [t for t in (*tables, less) if t is not None and len(t.slots)]
    if not parts:
        return []
    slots = np.unique(np.concatenate([t.slots for t in parts]))
    counts = np.zeros((len(slots), MAX_LENGTH, _WIDTH), np.int64)
    for table in tables:
        counts[np.searchsorted(slots, table.slots)] += table.counts
    if less is not None and len(less.slots):
        counts[np.searchsorted(slots, less.slots)] -= less.counts
    total = counts.sum(axis=2, keepdims=True)
    carried = (counts >= MIN_COUNT) & (counts >= total * MIN_SHARE)
    letters = np.frombuffer(ALPHABET, "S1")
    return [(int(slots[i]), int(p), b"".join(sorted(letters[carried[i, p]])).decode())
            for i, p in zip(*np.nonzero(carried.any(axis=2)), strict=True)]


class AlphabetCounter:
    """Counts characters batch by batch (a key file is built in batches): dense counters
    over every possible issuer of ``names`` countries, compacted by :meth:`result`."""

    def __init__(self, names: int):
        self._dense = np.zeros(max(names, 1) * _TYPES * _CELLS, np.int64)

    def add(self, offsets: np.ndarray, data: np.ndarray, types: np.ndarray,
            countries: np.ndarray) -> None:
        """Count numbers in Arrow layout (``offsets`` from 0 into ``data``)."""
        cells = _cells(offsets, data, types, countries)
        if len(cells):
            counts = np.bincount(cells)
            self._dense[:len(counts)] += counts

    def result(self) -> Alphabets:
        per_slot = self._dense.reshape(-1, _CELLS)
        slots = np.flatnonzero(per_slot.any(axis=1)).astype(np.int32)
        return Alphabets(slots, per_slot[slots].astype(np.uint32))


def _cells(offsets: np.ndarray, data: np.ndarray, types: np.ndarray,
           countries: np.ndarray) -> np.ndarray:
    """The counter of each character of each number: (issuer slot, position, character)
    as one index, issuer slot * cells + position * alphabet width + character."""
    if len(offsets) < 2:
        return np.zeros(0, np.int64)
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    base = (countries.astype(np.int64) * _TYPES + types.astype(np.int64)) * _CELLS
    keys = []
    for p in range(int(lengths.max())):
        if p < int(lengths.min()):  # every number has this position
            keys.append(base + (p * _WIDTH + _INDEX[data[starts + p]]))
        else:
            at = np.flatnonzero(lengths > p)
            keys.append(base[at] + (p * _WIDTH + _INDEX[data[starts[at] + p]]))
    return np.concatenate(keys)
