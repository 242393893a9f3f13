"""Many threads, many processes, one owner of the index file: never a wrong "not listed".

These tests are not timed: they count wrong answers and exceptions, which must be zero
however the threads interleave.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest

from sltd import IndexStateError, Record, open_index
from sltd.synth import synth_records

CHECKERS = 8


def _keys(table: pa.Table) -> list[tuple[str, str, str]]:
    return list(zip(*(table.column(c).to_pylist() for c in (
        "document_number", "document_type", "issuing_country")), strict=True))


@dataclasses.dataclass
class Timeline:
    """When each change was made: a check that started after a change returned must see
    it; one that ended before a change started must not."""

    load_returned: dict[tuple[str, str, str], float] = dataclasses.field(default_factory=dict)
    withdraw_started: dict[tuple[str, str, str], float] = dataclasses.field(default_factory=dict)
    withdraw_returned: dict[tuple[str, str, str], float] = dataclasses.field(
        default_factory=dict)


def _listed(hits, key) -> bool:
    return any((h.number, str(h.doc_type), h.country) == key for h in hits)


def test_eight_checkers_and_a_writer_never_get_a_wrong_answer(tmp_path):
    path = str(tmp_path / "shared.duckdb")
    base = synth_records(20_000, seed=11)
    base_keys = _keys(base)
    listed_numbers = set(base.column("document_number").to_pylist())
    fresh = synth_records(6_000, seed=12)
    fresh = fresh.filter(pa.array([k[0] not in listed_numbers for k in _keys(fresh)]))
    fresh_keys = _keys(fresh)
    listed_numbers |= {k[0] for k in fresh_keys}
    rng = random.Random(5)
    withdrawn = rng.sample(base_keys, 300)
    stable = sorted(set(base_keys) - set(withdrawn))
    # Absent numbers of the listed shapes (letters and digits where the listed have them):
    # most checks at a border are misses, and a miss must stay a miss.
    absent = []
    for number, doc_type, country in rng.sample(stable, 4_000):
        twin = "".join(rng.choice("ABCEFHJKMNPRTUVWXY") if c.isalpha() else
                       rng.choice("3479") for c in number)
        if twin not in listed_numbers:
            absent.append((twin, doc_type, country))
    with open_index(path, create=True) as ix:
        ix.load(base)
        audited_before = ix.verify_audit().entries

    index = open_index(path)
    timeline = Timeline()
    errors: list[BaseException] = []
    results: list[list[tuple]] = [[] for _ in range(CHECKERS)]
    writer_done = threading.Event()
    per_thread = 12_500  # 8 x 12,500 = 100,000 checks

    def writer() -> None:
        try:
            for i in range(0, len(fresh_keys), 500):
                index.load(fresh.slice(i, 500))
                now = time.monotonic()
                for k in fresh_keys[i:i + 500]:
                    timeline.load_returned[k] = now
                for k in withdrawn[i // 20: i // 20 + 25]:
                    timeline.withdraw_started[k] = time.monotonic()
                    index.withdraw(*k, reason="recovered", officer="test")
                    timeline.withdraw_returned[k] = time.monotonic()
        except BaseException as e:  # noqa: BLE001 - counted and reported below
            errors.append(e)
        finally:
            writer_done.set()

    def checker(n: int) -> None:
        r = random.Random(n)
        out = results[n]
        try:
            for i in range(per_thread):
                pool = (stable, withdrawn, fresh_keys, absent, absent)[i % 5]
                key = r.choice(pool)
                exact_only = i % 8 != 0  # an eighth of the checks with near misses on
                start = time.monotonic()
                hits = index.check(*key, exact_only=exact_only, ncb="DEU", officer=f"t{n}")
                out.append((key, start, time.monotonic(), _listed(hits, key), exact_only))
        except BaseException as e:  # noqa: BLE001 - counted and reported below
            errors.append(e)

    threads = [threading.Thread(target=checker, args=(n,)) for n in range(CHECKERS)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index.close()
    assert errors == []

    wrong = []
    checks = [r for rs in results for r in rs]
    stable_set, absent_set = set(stable), set(absent)
    for key, start, end, found, exact_only in checks:
        if key in stable_set:
            must = True
        elif key in absent_set:
            must = False
        elif key in timeline.withdraw_started:
            if timeline.withdraw_returned[key] < start:
                must = False
            elif end < timeline.withdraw_started[key]:
                must = True
            else:
                continue  # overlapping: old or new state, both are right
        elif key in timeline.load_returned:
            if timeline.load_returned[key] < start:
                must = True
            else:
                continue
        elif key in set(withdrawn):
            must = True  # never withdrawn in this run
        else:
            continue  # loaded after the check began
        if found != must:
            wrong.append((key, found, exact_only))
    assert len(checks) == CHECKERS * per_thread
    assert {e for *_, e in checks} == {True, False}
    assert wrong == []
    assert len(timeline.withdraw_returned) > 0
    assert len(timeline.load_returned) == len(fresh_keys)

    with open_index(path) as ix:
        report = ix.verify_audit()
        n_checks = ix._db.cursor().execute(
            "SELECT count(*) FROM audit WHERE action = 'check'").fetchall()[0][0]
    assert report.ok, report
    assert n_checks == len(checks)  # every check is in the trail after close
    assert report.entries > audited_before + len(checks)


def test_checks_are_answered_while_a_long_load_runs(tmp_path):
    path = str(tmp_path / "big.duckdb")
    with open_index(path, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        ix.check("X1234567", "P", "FRA")  # key sets built before the load starts
        big = synth_records(300_000, seed=3)
        loading = threading.Thread(target=ix.load, args=(big,))
        loading.start()
        answered_during_load = 0
        while loading.is_alive():
            assert [h.number for h in ix.check("X1234567", "P", "FRA", exact_only=True)] \
                == ["X1234567"]
            answered_during_load += 1
        loading.join()
        assert answered_during_load > 100
        assert len(ix) == 300_001


def test_two_indexes_on_one_file_share_one_state(tmp_path):
    path = str(tmp_path / "two.duckdb")
    first = open_index(path, create=True)
    second = open_index(path)
    second.upsert([Record("X1234567", "P", "FRA", "stolen")])
    assert [h.number for h in first.check("X1234567", "P", "FRA")] == ["X1234567"]
    for ix in (first, second, first, second):
        hit = ix.check("X1234567", "P", "FRA", ncb="DEU")[0]
        ix.reveal(hit.hit_id, officer="A", ncb="DEU")
    second.close()
    assert first.verify_audit().ok
    assert len(first) == 1  # the file stays open for the first
    first.close()
    with open_index(path) as ix:
        assert ix.verify_audit().ok


def test_a_read_only_open_cannot_become_a_writer_in_the_same_process(tmp_path):
    path = str(tmp_path / "ro.duckdb")
    open_index(path, create=True).close()
    with open_index(path, read_only=True), pytest.raises(IndexStateError, match="read-only"):
        open_index(path)


# --- processes --------------------------------------------------------------------------

def _sltd(*args: str, db: str, wait: float = 20) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLTD_")}
    return subprocess.Popen([sys.executable, "-m", "sltd", "--db", db, "--wait", str(wait),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture
def listed_file(tmp_path):
    path = str(tmp_path / "procs.duckdb")
    with open_index(path, create=True) as ix:
        ix.set_home_ncb("DEU")
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    return path


def test_pairs_of_check_processes_started_together_all_answer(listed_file):
    for _ in range(10):
        pair = [_sltd("check", "X1234567", "--type", "P", "--country", "FRA",
                      db=listed_file) for _ in range(2)]
        for p in pair:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 1, err  # 1 = hit, the right answer
            assert "HIT exact   X1234567" in out


def test_check_answers_while_watch_runs(listed_file, tmp_path):
    watcher = _sltd("watch", "--interval", "0.2", "--sink", str(tmp_path / "alerts.jsonl"),
                    db=listed_file)
    try:
        time.sleep(1.5)  # let the watcher start its rounds
        for _ in range(3):
            p = _sltd("check", "X1234567", "--type", "P", "--country", "FRA", "--json",
                      db=listed_file)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 1, err
            assert '"match": "exact"' in out
        assert watcher.poll() is None  # still running
    finally:
        watcher.terminate()
        watcher.communicate(timeout=30)
    assert watcher.returncode == 0


def test_a_held_file_is_named_with_its_process_and_what_to_do(listed_file):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", listed_file],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        p = _sltd("check", "X1234567", db=listed_file, wait=0.5)
        out, err = p.communicate(timeout=60)
    finally:
        holder.kill()
        holder.communicate()
    assert p.returncode == 3
    assert err.count("\n") == 1
    assert f"in use by process {holder.pid}" in err
    assert "stop that process" in err
    assert "--wait" in err
    assert "readonly" not in err.lower()
    assert "Traceback" not in err


def test_cursors_of_ended_threads_are_closed_not_piled_up(index):
    def one_check():
        index.check("X1234567", "P", "FRA")

    for _ in range(50):
        t = threading.Thread(target=one_check)
        t.start()
        t.join()
    assert len(index._db._cursors) <= 2  # the last thread's, and at most one not yet pruned


def test_a_load_that_races_the_first_build_of_the_key_sets_is_never_lost(index, monkeypatch):
    """The load reads its new records back only if the key sets are built; a check that
    builds them between that decision and the COMMIT must not leave them out."""
    import sltd.store

    real_upsert = sltd.store.upsert

    def upsert_then_a_check_builds_the_sets(con, staging):
        result = real_upsert(con, staging)
        built = threading.Thread(target=index.check, args=("Q0000001",))
        built.start()  # another thread's first check, before this load commits
        built.join()
        return result

    monkeypatch.setattr(sltd.store, "upsert", upsert_then_a_check_builds_the_sets)
    index.upsert([Record("X1234567", "P", "FRA", "stolen")])
    monkeypatch.undo()
    assert [h.number for h in index.check("X1234567", "P", "FRA")] == ["X1234567"]


def _publishing_slowly(monkeypatch, delays):
    """Keys.add sleeps in the named threads: a writer preempted between its COMMIT and its
    publish, the window the ordering must not depend on."""
    from sltd.keyset import Keys

    real_add = Keys.add

    def slow_add(self, keys=None, version=None):
        time.sleep(delays.get(threading.current_thread().name, 0))
        real_add(self, keys, version)

    monkeypatch.setattr(Keys, "add", slow_add)


def test_a_withdrawal_after_a_load_is_never_undone_by_the_loads_late_publish(monkeypatch):
    ix = open_index(":memory:", create=True)
    ix.upsert([Record("A1111111", "P", "FRA", "stolen")])
    ix.check("A1111111", "P", "FRA")  # key sets built
    _publishing_slowly(monkeypatch, {"load": 0.5})
    load = threading.Thread(name="load", target=ix.upsert,
                            args=([Record("X1234567", "P", "FRA", "stolen")],))
    load.start()
    time.sleep(0.2)
    ix.withdraw("X1234567", "P", "FRA")  # waits for the load's publish, then withdraws
    assert ix.check("X1234567", "P", "FRA") == []
    load.join()
    assert ix.check("X1234567", "P", "FRA") == []
    assert ix.list_version.version == 3  # load, load, withdrawal: published in order
    ix.close()


def test_a_rebuild_between_a_loads_commit_and_its_publish_does_not_double_its_records(
        monkeypatch):
    ix = open_index(":memory:", create=True)
    _publishing_slowly(monkeypatch, {"first": 0.6, "second": 1.2})
    first = threading.Thread(name="first", target=ix.upsert,
                             args=([Record("A1111111", "P", "FRA", "stolen")],))
    first.start()  # commits before any check: it will publish 'rebuild from the table'
    time.sleep(0.2)
    ix.check("B2222222", "P", "FRA")  # the first check builds the key sets
    second = threading.Thread(name="second", target=ix.upsert,
                              args=([Record("X1234567", "P", "FRA", "stolen")],))
    second.start()
    first.join()  # its publish dropped the sets; the second load has committed
    time.sleep(0.3)
    ix.check("C3333333", "P", "FRA")  # rebuilds from the table, the second load's row in it
    second.join()  # ... before the second load publishes that row again
    assert [h.match.value for h in ix.check("X1234567", "P", "FRA")] == ["exact"]
    assert len(ix._s.keys.snapshot()) == len(ix) == 2
    ix.close()
