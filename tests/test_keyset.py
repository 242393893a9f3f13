"""Key sets, key tables and the key file: the same answers as plain Python sets and dicts,
whether built in memory, opened from the key file, caught up from the database, or
rebuilt because the file does not match."""

import os
import shutil

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sltd.codes
import sltd.keyset
from sltd import Record, open_index
from sltd.keyhash import key_hashes
from sltd.keyset import Keys, KeySet, KeySnapshot, KeyTable, key_file_path, open_key_file
from sltd.normalize import fold_number

_numbers = st.text(alphabet="AB0O18", min_size=3, max_size=5)


@given(st.lists(st.integers(-(2**62), 2**62)), st.lists(st.integers(-(2**62), 2**62)))
def test_keyset_membership_matches_a_python_set(members, probes):
    oracle = set(members)
    ks = KeySet.from_hashes(np.array(members, dtype=np.int64))
    assert len(ks) == len(oracle)
    for p in probes + members:
        assert (p in ks) == (p in oracle)
    arr = np.array(probes + members, dtype=np.int64)
    assert ks.contains_any(arr).tolist() == [p in oracle for p in arr.tolist()]


def test_a_large_set_probes_through_its_filter():
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


def _key_table(ids, rows):
    return pa.table({
        "record_id": pa.array(ids, pa.int64()), "number": [r[0] for r in rows],
        "doc_type": [r[1] for r in rows], "country": [r[2] for r in rows],
        "fold_hash": key_hashes(pa.array([fold_number(r[0]) for r in rows], pa.string()))})


@given(st.lists(st.lists(st.tuples(_numbers, st.sampled_from(["P", "I"]),
                                   st.sampled_from(["FRA", "DEU", "UTO"])), max_size=8),
                min_size=1, max_size=5),
       st.lists(st.integers(0, 40), max_size=10), st.lists(_numbers, min_size=1, max_size=6))
def test_a_snapshot_answers_like_a_plain_dict(loads, withdraw_picks, queries):
    reference: dict[int, tuple[str, str, str]] = {}
    snap = KeySnapshot(KeyTable.empty())
    next_id = 1
    for batch in loads:
        ids = list(range(next_id, next_id + len(batch)))
        next_id += len(batch)
        reference.update(zip(ids, batch, strict=True))
        snap = snap.with_keys(_key_table(ids, batch))
        gone = sorted({i for i in withdraw_picks if i in reference})
        for i in gone:
            del reference[i]
        snap = snap.without(gone)
    folds = sorted({fold_number(q) for q in queries})
    expected = sorted((i, *r) for i, r in reference.items() if fold_number(r[0]) in folds)
    assert sorted(snap.rows(folds)) == expected
    assert len(snap) == len(reference)
    # screening's join from memory: every (candidate row, active record of its fold)
    candidates = pa.table({
        "row": pa.array(range(len(queries) * 2), pa.int64()),
        "number": queries * 2, "type": pa.nulls(len(queries) * 2, pa.string()),
        "country": pa.nulls(len(queries) * 2, pa.string()),
        "fold": [fold_number(q) for q in queries] * 2,
        "fold_hash": key_hashes(pa.array([fold_number(q) for q in queries] * 2))})
    candidates = pa.concat_tables([candidates, candidates.slice(0, 1)])  # a repeated row
    pairs = snap.pairs(candidates)
    assert sorted(zip(*(pairs[c].to_pylist() for c in (
        "row", "record_id", "record_number", "record_type", "record_country")),
        strict=True)) == sorted(
        (row, i, *r) for row, q in enumerate(queries * 2) for i, r in reference.items()
        if fold_number(r[0]) == fold_number(q))
    hashes = key_hashes(pa.array(folds, pa.string()))
    for country in ("FRA", "DEU"):  # listed in that country (withdrawn ones may stay)
        want = [any(fold_number(r[0]) == f and r[2] == country for r in reference.values())
                for f in folds]
        got = snap.present(hashes, country).tolist()
        assert all(g or not w for g, w in zip(got, want, strict=True))


def test_a_key_table_built_into_the_key_file_answers_like_one_built_in_memory(tmp_path):
    ix = open_index(tmp_path / "ix.duckdb", create=True)
    rows = [(f"X{i:07d}", "P" if i % 3 else "I", ("FRA", "DEU", "ITA")[i % 3])
            for i in range(70_000)]  # big enough for a probe filter
    ix.load(pa.table({"document_number": [r[0] for r in rows],
                      "document_type": [r[1] for r in rows],
                      "issuing_country": [r[2] for r in rows],
                      "status": ["stolen"] * len(rows)}))
    ix.check("X0000001")  # builds the keys, and the key file
    ix.close()
    on_disk = open_key_file(key_file_path(str(tmp_path / "ix.duckdb")))
    assert on_disk is not None
    assert len(on_disk) == len(rows)
    assert on_disk.keys._filter is not None
    in_memory = KeyTable.from_arrow(_key_table(range(1, len(rows) + 1), rows))
    probe = [fold_number(r[0]) for r in rows[::997]] + ["X9999999", "Y0000001"]
    assert on_disk.rows(probe, None, frozenset()) == in_memory.rows(probe, None, frozenset())
    hashes = key_hashes(pa.array(probe, pa.string()))
    assert on_disk.keys.contains_any(hashes).tolist() == \
        in_memory.keys.contains_any(hashes).tolist()
    assert on_disk.digest == in_memory.digest
    # every listed key passes both probe filters (a miss there is a wrong "not listed")
    snap_disk, snap_memory = KeySnapshot(on_disk), KeySnapshot(in_memory)
    for r in rows:
        folded = fold_number(r[0]).encode()
        assert snap_disk.lookup(folded), r
        assert snap_memory.lookup(folded), r
    assert snap_disk.lookup(b"X9999999") == []
    # the issuers' alphabets, counted batch by batch on disk, all at once in memory
    def by_issuer(t):
        types = len(sltd.codes.DOC_TYPES)
        return {(t.names[slot // types], slot % types): counts.tolist()
                for slot, counts in zip(t.alphabets.slots, t.alphabets.counts, strict=True)}

    assert by_issuer(on_disk) == by_issuer(in_memory)
    assert snap_disk.carries("FRA", "I", 7, "9")
    assert not snap_disk.carries("FRA", "I", 1, "1")


def test_issuer_alphabets_count_the_base_and_the_delta_together():
    """A character belongs to an issuer's alphabet at a position once two of its numbers
    carry it there (and 1 in 1,000): one stray record does not make it part of the format."""
    base = KeyTable.from_arrow(_key_table([1, 2, 3], [
        ("X1204567", "P", "FRA"), ("X1234567", "P", "FRA"), ("X12G4567", "I", "FRA")]))
    snap = KeySnapshot(base)
    assert snap.carries("FRA", "P", 3, "0") is False  # one number: a stray
    assert snap.carries("FRA", "I", 3, "G") is False
    snap = snap.with_keys(_key_table([4, 5], [("X1200000", "P", "FRA"),
                                              ("X12G0000", "P", "DEU")]))
    assert snap.carries("FRA", "P", 3, "0") is True  # base + delta: two numbers
    assert snap.carries("FRA", "P", 3, "G") is False  # another issuer's G
    assert snap.carries("DEU", "P", 3, "G") is False
    assert snap.carries("ITA", "P", 0, "X") is False  # an issuer with no numbers


def _count_builds(monkeypatch):
    builds = []
    real = sltd.keyset.build_key_file

    def counting(con, path, batch_rows=1 << 20):
        builds.append(path)
        return real(con, path, batch_rows)

    monkeypatch.setattr(sltd.keyset, "build_key_file", counting)
    return builds


def test_a_new_process_opens_the_key_file_and_catches_up_without_rebuilding(
        tmp_path, monkeypatch):
    path = tmp_path / "ix.duckdb"
    ix = open_index(path, create=True)
    ix.upsert([Record("A1111111", "P", "FRA", "stolen"),
               Record("B2222222", "P", "FRA", "lost")])
    ix.check("A1111111")  # writes the key file
    ix.close()
    builds = _count_builds(monkeypatch)
    ix = open_index(path)  # a later process: never built the keys
    ix.upsert([Record("C3333333", "P", "DEU", "stolen")])
    ix.withdraw("A1111111", "P", "FRA")
    ix.close()
    ix = open_index(path)
    assert ix.check("A1111111") == []  # withdrawn since the key file was written
    assert [h.number for h in ix.check("B2222222")] == ["B2222222"]
    assert [h.number for h in ix.check("C3333333")] == ["C3333333"]  # added since
    assert builds == []  # opened and caught up from the database, not rebuilt
    assert len(ix._s.keys.snapshot()) == len(ix) == 2
    ix.close()


@pytest.mark.parametrize("damage", ["other index", "truncated", "garbage header"])
def test_a_key_file_that_does_not_match_the_index_is_rebuilt_not_trusted(
        tmp_path, monkeypatch, damage):
    path, other = tmp_path / "ix.duckdb", tmp_path / "other.duckdb"
    for p, number in ((path, "A1111111"), (other, "Z9999999")):
        ix = open_index(p, create=True)
        ix.upsert([Record(number, "P", "FRA", "stolen")])
        ix.check(number)
        ix.close()
    keys = key_file_path(str(path))
    if damage == "other index":
        shutil.copy(key_file_path(str(other)), keys)
    elif damage == "truncated":
        os.truncate(keys, os.path.getsize(keys) - 10)
    else:
        with open(keys, "r+b") as f:
            f.seek(12)
            f.write(b"{not json")
    builds = _count_builds(monkeypatch)
    ix = open_index(path)
    assert [h.number for h in ix.check("A1111111")] == ["A1111111"]
    assert ix.check("Z9999999") == []
    assert builds == [keys]  # rebuilt, and the file rewritten
    ix.close()
    assert open_key_file(keys) is not None


def test_an_operators_file_where_the_key_file_goes_is_never_overwritten(tmp_path):
    path = tmp_path / "ix.duckdb"
    mine = tmp_path / "ix.duckdb.keys"
    mine.write_text("my notes\n")
    ix = open_index(path, create=True)
    ix.upsert([Record("A1111111", "P", "FRA", "stolen")])
    assert [h.number for h in ix.check("A1111111")] == ["A1111111"]  # keys in memory
    ix.close()
    assert mine.read_text() == "my notes\n"
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_the_delta_is_folded_into_a_new_key_file_once_it_outgrows_the_base(
        tmp_path, monkeypatch):
    monkeypatch.setattr(Keys, "COMPACT_MIN", 3)
    monkeypatch.setattr(Keys, "COMPACT_SHARE", 1)
    path = tmp_path / "ix.duckdb"
    ix = open_index(path, create=True)
    ix.upsert([Record(f"A{i:07d}", "P", "FRA", "stolen") for i in range(4)])
    ix.check("A0000001")
    builds = _count_builds(monkeypatch)
    ix.upsert([Record("B0000001", "P", "FRA", "stolen")])
    ix.upsert([Record("B0000002", "P", "FRA", "stolen")])
    assert builds == []  # a delta of 2 against a base of 4: kept in memory
    ix.withdraw("A0000000", "P", "FRA")
    ix.upsert([Record("B0000003", "P", "FRA", "stolen")])
    assert len(builds) == 1  # 4 rows outside the base: a new base, a new key file
    snap = ix._s.keys.snapshot()
    assert len(snap.base) == 6
    assert snap.backlog == 0
    assert ix.check("A0000000", exact_only=True) == []
    assert [h.number for h in ix.check("B0000003", exact_only=True)] == ["B0000003"]
    ix.close()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["load", "withdraw", "reopen", "check"]),
                          st.lists(st.integers(0, 30), min_size=1, max_size=6)),
                min_size=1, max_size=12))
def test_any_history_of_loads_withdrawals_and_reopens_answers_like_a_dict(tmp_path_factory,
                                                                         steps):
    path = tmp_path_factory.mktemp("ix") / "ix.duckdb"
    ix = open_index(path, create=True)
    listed: set[str] = set()
    for op, picks in steps:
        numbers = [f"N{p:07d}" for p in picks]
        if op == "load":
            ix.upsert([Record(n, "P", "FRA", "stolen") for n in numbers])
            listed |= set(numbers)
        elif op == "withdraw":
            for n in set(numbers) & listed:
                ix.withdraw(n, "P", "FRA")
                listed.discard(n)
        elif op == "reopen":
            ix.close()
            ix = open_index(path)
        else:
            ix.check("N0000000", exact_only=True)  # builds the keys (and the key file)
        for n in numbers:
            assert bool(ix.check(n, "P", "FRA", exact_only=True)) == (n in listed), (op, n)
    ix.close()


def test_review_lapses_alternating_days_are_each_days_own():
    """Threads checking either side of midnight ask for two days in turn: each gets its
    own day's lapsed records (the cache holds a day and its set as one value)."""
    import numpy as np

    from sltd.keyset import Reviews

    r = Reviews(np.array([7, 9]), np.array([20000, 20001]), until=20030)
    for _ in range(3):
        assert r.lapsed(20000) == {7}
        assert r.lapsed(20001) == {7, 9}
        assert r.lapsed(19999) == frozenset()
