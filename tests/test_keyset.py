"""Key sets and the first-level table: the same answers as plain Python sets and dicts."""

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from sltd.keyhash import key_hashes
from sltd.keyset import FirstLevel, KeySet

_numbers = st.text(alphabet="AB0O18", min_size=3, max_size=5)


@given(st.lists(st.integers(-(2**62), 2**62)), st.lists(st.integers(-(2**62), 2**62)),
       st.lists(st.integers(-(2**62), 2**62)))
def test_keyset_membership_matches_a_python_set(initial, added, probes):
    oracle = set(initial) | set(added)
    ks = KeySet.from_hashes(np.array(initial, dtype=np.int64)).union(
        np.array(added, dtype=np.int64))
    assert len(ks) == len(oracle)
    for p in probes + initial + added:
        assert (p in ks) == (p in oracle)
    arr = np.array(probes + added, dtype=np.int64)
    assert ks.contains_any(arr).tolist() == [p in oracle for p in arr.tolist()]


def test_a_large_set_probes_through_its_filter_and_keeps_it_across_unions():
    rng = np.random.default_rng(3)
    members = rng.integers(-(2**62), 2**62, 80_000, dtype=np.int64)
    ks = KeySet.from_hashes(members)
    outsiders = rng.integers(-(2**62), 2**62, 20_000, dtype=np.int64)
    probes = np.concatenate([members[:5000], outsiders, members[-3:]])
    oracle = set(members.tolist())
    want = [p in oracle for p in probes.tolist()]
    assert ks.contains_any(probes).tolist() == want
    assert ks.contains_any(probes[:7]).tolist() == want[:7]  # small probes use it too
    assert ks._filter is not None
    assert [int(p) in ks for p in probes.tolist()] == want  # the scalar probe, filtered
    added = outsiders[:50]
    grown = ks.union(added)
    assert grown._filter is not None
    assert grown._filter[1] is not ks._filter[1]
    oracle |= set(added.tolist())
    assert grown.contains_any(probes).tolist() == [p in oracle for p in probes.tolist()]
    assert all(int(p) in grown for p in added)
    assert not ks.contains_any(added).any()  # the old set is unchanged




@given(st.lists(st.lists(st.tuples(_numbers, st.sampled_from(["P", "I"]),
                                   st.sampled_from(["FRA", "DEU", "UTO"])), max_size=8),
                min_size=1, max_size=5),
       st.lists(st.integers(0, 40), max_size=10), st.lists(_numbers, min_size=1, max_size=6))
def test_first_level_table_answers_like_a_plain_dict(loads, withdraw_picks, queries):
    from sltd.normalize import fold_number

    reference: dict[int, tuple[str, str, str]] = {}
    table = FirstLevel.from_table(pa.table({
        "record_id": pa.array([], pa.int64()), "number": pa.array([], pa.string()),
        "doc_type": pa.array([], pa.string()), "country": pa.array([], pa.string()),
        "fold_hash": pa.array([], pa.int64())}))
    next_id = 1
    for batch in loads:
        ids = list(range(next_id, next_id + len(batch)))
        next_id += len(batch)
        reference.update(zip(ids, batch, strict=True))
        table = table.merged(pa.table({
            "record_id": pa.array(ids, pa.int64()), "number": [b[0] for b in batch],
            "doc_type": [b[1] for b in batch], "country": [b[2] for b in batch],
            "fold_hash": key_hashes(pa.array([fold_number(b[0]) for b in batch]))}))
        gone = sorted({i for i in withdraw_picks if i in reference})
        for i in gone:
            del reference[i]
        table = table.without(gone)
    folds = sorted({fold_number(q) for q in queries})
    expected = sorted((i, *r) for i, r in reference.items() if fold_number(r[0]) in folds)
    assert sorted(table.rows(folds)) == expected
    assert len(table) == len(reference)


def test_the_scalar_filter_probe_agrees_with_the_array_at_the_int64_extremes():
    edges = [-(2**63), -(2**63) + 1, -1, 0, 1, 2**63 - 1, 2**62, -(2**62)]
    rng = np.random.default_rng(8)
    members = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 70_000, dtype=np.int64),
                              np.array(edges[:4], np.int64)])
    ks = KeySet.from_hashes(members)
    ks.prepare()
    oracle = set(members.tolist())
    probes = edges + rng.integers(-(2**63), 2**63 - 1, 5_000, dtype=np.int64).tolist()
    assert [p in ks for p in probes] == [p in oracle for p in probes]
