"""Sealed replicas (sltd.sealed): the same hits as a plain replica, from a feed in which no
listed number appears in any byte."""

from __future__ import annotations

import datetime as dt
import random
import shutil
from pathlib import Path

import pytest

from sltd import FeedError, IndexStateError, ManualClock, Record, open_index
from sltd.errors import SealedReplicaError
from sltd.feed import init_replica, new_key, publish, sync
from sltd.sealed import SealKey, new_seal_key, open_sealed, read_seal_key
from sltd.synth import ERROR_KINDS, inject_error, synth_mrz, synth_records

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
#: Records that exercise each near-miss rule: look-alikes in digit positions, issuers
#: whose numbers carry both of a look-alike pair (German G/6, here), neighbours.
HANDMADE = [Record("X1234567", "P", "FRA", "stolen", owner_ncb="FRA",
                   date_of_expiry="2031-04-15"),
            Record("X12345G8", "P", "FRA", "stolen"), Record("Y7654321", "P", "FRA", "lost"),
            *(Record(f"C{'G6'[i % 2]}{i:07d}", "P", "DEU", "lost") for i in range(40)),
            Record("L898902C3", "P", "UTO", "revoked", date_of_expiry="2031-04-15")]


def _answers(replica, queries):
    out = []
    for q in queries:
        if q[0] == "mrz":
            found = replica.check_mrz(q[1], leads=True).hits
        else:
            number, doc_type, country, expiry = q
            found = replica.check(number, doc_type, country, expiry=expiry, leads=True)
        out.append([(h.number, str(h.doc_type), h.country, h.match.value, h.score,
                     h.explanation, h.error, h.evidence) for h in found])
    return out


def _queries(listed, seed=7):
    """Exact, partial, every near-miss kind (synth.ERROR_KINDS) on listed numbers, with
    and without the document's expiry date, MRZ readings (consistent and misread), and
    clean structured numbers (prefix + digits, two letters + seven digits, nine digits)."""
    rng = random.Random(seed)
    out = []
    for number, doc_type, country in rng.sample(listed, min(150, len(listed))):
        out += [(number, doc_type, country, None), (number, None, None, None),
                (number, "I" if doc_type != "I" else "P", country, None)]
        for kind in ERROR_KINDS:
            wrong = inject_error(number, kind, rng.randrange(24), rng.choice("ABX0189"))
            if wrong:
                out.append((wrong, doc_type, country, rng.choice([None, "2031-04-15"])))
        if len(number) <= 9 and doc_type in ("P", "I"):
            out.append(("mrz", synth_mrz(number, doc_type, country)))
            wrong = inject_error(number, "ocr (one)", rng.randrange(9), "X")
            if wrong and len(wrong) <= 9:
                out.append(("mrz", synth_mrz(number, doc_type, country, read_as=wrong)))
    for _ in range(100):
        out += [(f"X{rng.randrange(10**7):07d}", "P", "FRA", None),
                (f"AB{rng.randrange(10**7):07d}", None, "GBR", None),
                (f"{rng.randrange(10**9):09d}", "P", "USA", None)]
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A source index published as a plain and as a sealed feed (a snapshot, then a
    delta), and a replica of each."""
    d = tmp_path_factory.mktemp("sealed")
    clock = ManualClock(T0)
    src = open_index(str(d / "source.duckdb"), create=True, clock=clock)
    src.load(synth_records(3000, seed=11))
    src.upsert(HANDMADE)
    key, pub = new_key(d / "feed.key")
    seal = new_seal_key(d / "seal.key")
    publish(src, d / "plain", key)
    publish(src, d / "sealed", key, sealed=seal)
    plain = init_replica(d / "plain.duckdb", d / "plain", pub, clock=clock)
    sealed = init_replica(d / "sealed.duckdb", d / "sealed", pub, seal_key=seal, clock=clock)
    yield d, src, plain, sealed, key, pub, seal, clock
    for ix in (plain, sealed, src):
        ix.close()


def _listed(ix):
    return ix._db.cursor().execute(
        "SELECT number, doc_type, country FROM records ORDER BY record_id").fetchall()


def test_a_sealed_replica_gives_the_hits_of_a_plain_one_at_each_version(world):
    d, src, plain, sealed, key, pub, seal, clock = world
    queries = _queries(_listed(src))
    assert len(sealed) == len(plain) == len(src)
    assert sealed.list_version == plain.list_version
    before = _answers(plain, queries)
    assert any(before)
    assert not all(before)
    kinds = {h[3] for a in before for h in a}
    assert kinds == {"exact", "partial", "near", "lead"}
    assert _answers(sealed, queries) == before
    # a delta: updates, withdrawals, additions
    listed = _listed(src)
    clock.advance(hours=1)
    for number, doc_type, country in listed[:50]:
        src.withdraw(number, doc_type, country, reason="recovered")
    src.load(synth_records(500, seed=12))
    src.upsert([Record("X1234568", "P", "FRA", "stolen", date_of_expiry="2031-04-15")])
    publish(src, d / "plain", key)
    publish(src, d / "sealed", key, sealed=seal)
    sync(plain)
    sync(sealed)
    queries = _queries(_listed(src), seed=8) + queries
    assert (sealed.list_version, len(sealed)) == (plain.list_version, len(plain))
    assert _answers(sealed, queries) == _answers(plain, queries)
    # small deltas: the sealed list keeps its base and reads only the rows since
    for round_ in range(2):
        clock.advance(hours=1)
        listed = _listed(src)
        for number, doc_type, country in listed[round_ * 7:round_ * 7 + 3]:
            src.withdraw(number, doc_type, country)
        number, doc_type, country = listed[-1]
        src.upsert([Record(number, doc_type, country, "revoked"),  # an update
                    Record(f"X99{round_}4567", "P", "FRA", "stolen"),
                    Record(f"X99{round_}4568", "P", "FRA", "lost")])
        publish(src, d / "plain", key)
        publish(src, d / "sealed", key, sealed=seal)
        sync(plain)
        sync(sealed)
        assert len(sealed._list.parts) == 2  # base + the rows since
        assert (sealed.list_version, len(sealed)) == (plain.list_version, len(plain))
        queries = [(f"X99{round_}4567", "P", "FRA", None),
                   (f"X99{round_}4566", "P", "FRA", None),
                   *((n, t, c, None) for n, t, c in listed[:20]),
                   *queries]
        assert _answers(sealed, queries) == _answers(plain, queries)


def test_no_listed_number_appears_in_any_byte_of_the_sealed_feed(world):
    d, src, *_ = world
    files = [p for p in (d / "sealed").rglob("*") if p.is_file()]
    assert any(p.name == "sealed.parquet" for p in files)
    data = b"\0".join(p.read_bytes() for p in files)
    numbers = {n for n, _, _ in _listed(src)} | {
        n for (n,) in src._db.cursor().execute("SELECT number FROM record_history").fetchall()}
    assert len(numbers) > 3000
    leaked = [n for n in numbers if n.encode() in data]
    assert leaked == []


def test_a_reveal_opens_the_details_a_case_and_its_alerts_for_the_searching_ncb(world):
    """A hit's details open with the key of its number, type and country, for the NCB its
    hit id was issued to; the case and its three alerts are queued in the replica's own
    outbox and delivered, with their original times, once a sink is reachable."""
    from sltd import HitIdError
    from sltd.alerts import MemorySink, Router

    d, src, plain, sealed, *_ = world
    hit = sealed.check("L898902C3", "P", "UTO", ncb="DEU")[0]
    with pytest.raises(HitIdError):  # another NCB's
        sealed.reveal(hit.hit_id, number=hit.number, doc_type="P", country="UTO",
                      officer="K. Weber", ncb="FRA")
    with pytest.raises(HitIdError):  # not the document the hit was
        sealed.reveal(hit.hit_id, number="L898902C4", doc_type="P", country="UTO",
                      officer="K. Weber", ncb="DEU")
    details = sealed.reveal(hit.hit_id, number=hit.number, doc_type="P", country="UTO",
                            officer="K. Weber", ncb="DEU")
    assert (details.number, details.status.value, details.owner,
            str(details.date_of_expiry)) == ("L898902C3", "revoked", "UTO", "2031-04-15")
    assert sorted(a.recipient for a in sealed.alerts(case_id=details.case_id)) == [
        "CCC", "owner:UTO", "searching:DEU"]
    sink = MemorySink()
    report = sealed.deliver_alerts(Router({"*": sink}))
    assert report.delivered == 3
    assert [c.case_id for c in sealed.cases(["pending"])] == [details.case_id]
    assert sealed.confirm(details.case_id, officer="UTO duty officer").state.value == \
        "confirmed"
    assert sealed._db.cursor().execute(
        "SELECT count(*) FROM audit WHERE action = 'reveal'").fetchall() == [(1,)]


def test_a_record_stops_hitting_at_its_review_date(tmp_path):
    clock = ManualClock(T0)
    src = open_index(str(tmp_path / "s.duckdb"), create=True, clock=clock)
    src.upsert([Record("X1234567", "P", "FRA", "stolen", review_date="2026-12-03")])
    key, pub = new_key(tmp_path / "k")
    seal = new_seal_key(tmp_path / "seal.key")
    publish(src, tmp_path / "feed", key, sealed=seal)
    replica = init_replica(tmp_path / "r.duckdb", tmp_path / "feed", pub, seal_key=seal,
                           clock=clock)
    clock.advance(hours=40, seconds=-1)  # 2026-12-02 23:59:59
    assert [h.match.value for h in replica.check("X1234567", "P", "FRA")] == ["exact"]
    clock.advance(seconds=1)  # the review day
    assert replica.check("X1234567", "P", "FRA") == []
    replica.close()
    src.close()


def test_a_sealed_feed_meets_only_a_sealed_replica_with_its_seal_key(world, tmp_path):
    d, src, plain, sealed, key, pub, seal, clock = world
    with pytest.raises(FeedError, match="needs its seal key"):
        init_replica(tmp_path / "a.duckdb", d / "sealed", pub)
    other = new_seal_key(tmp_path / "other.key")
    with pytest.raises(FeedError, match="another seal key"):
        init_replica(tmp_path / "b.duckdb", d / "sealed", pub, seal_key=other)
    with pytest.raises(FeedError, match="not sealed"):
        init_replica(tmp_path / "c.duckdb", d / "plain", pub, seal_key=seal)
    for name in ("a", "b", "c"):
        assert not (tmp_path / f"{name}.duckdb").exists()
    # a plain feed's units are refused by a sealed replica, and the other way round,
    # even when feed.json says otherwise (only the signed manifest counts)
    mixed = tmp_path / "mixed"
    shutil.copytree(d / "plain", mixed)
    (mixed / "feed.json").write_text((d / "sealed" / "feed.json").read_text())
    with pytest.raises(FeedError, match="not sealed under this replica's seal key"):
        init_replica(tmp_path / "d.duckdb", mixed, pub, seal_key=seal)
    with pytest.raises(FeedError, match="holds a plain feed"):
        publish(src, d / "plain", key, sealed=seal)
    with pytest.raises(FeedError, match="sealed under seal key"):
        publish(src, d / "sealed", key)
    # a sealed replica is not opened as a plain index (it would answer "not listed")
    sealed_path = Path(sealed.path)
    with pytest.raises(SealedReplicaError):
        open_index(str(sealed_path))
    with pytest.raises(IndexStateError, match="not a sealed replica"):
        open_sealed(d / "source.duckdb")


def test_tags_are_the_same_one_by_one_and_in_bulk():
    import numpy as np

    key = SealKey(bytes(range(32)))
    folds = [b"X1234567", b"A", b"ABCDEFGHIJKLMNOP", b"ABCDEFGHIJKLMNOPQRSTUVWX", b"1" * 17]
    matrix = np.zeros((len(folds), 24), np.uint8)
    for i, f in enumerate(folds):
        matrix[i, :len(f)] = np.frombuffer(f, np.uint8)
    assert key.tags(matrix).tolist() == [key.tag(f) for f in folds]
    assert len(set(key.tags(matrix).tolist())) == len(folds)
    assert SealKey(bytes(32)).tag(b"X1234567") != key.tag(b"X1234567")


def test_a_seal_key_is_never_overwritten_and_a_bad_one_is_refused(tmp_path):
    path = new_seal_key(tmp_path / "seal.key")
    before = path.read_text()
    with pytest.raises(FeedError, match="never overwritten"):
        new_seal_key(path)
    assert path.read_text() == before
    (tmp_path / "bad.key").write_text("not hex")
    with pytest.raises(FeedError, match="cannot read the seal key"):
        read_seal_key(tmp_path / "bad.key")
    (tmp_path / "short.key").write_text("00ff")
    with pytest.raises(FeedError, match="not a seal key"):
        read_seal_key(tmp_path / "short.key")


def test_cli_publish_sealed_replica_init_check_and_sync(tmp_path):
    from click.testing import CliRunner

    from sltd.cli import cli

    run = CliRunner().invoke
    db = str(tmp_path / "src.duckdb")
    with open_index(db, create=True) as ix:
        ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    feed, key, seal = (str(tmp_path / n) for n in ("feed", "feed.key", "seal.key"))
    r = run(cli, ["--db", db, "publish", feed, "--key", key, "--new-key", "--sealed", seal,
                  "--new-seal-key"])
    assert r.exit_code == 0, r.output
    post = str(tmp_path / "post.duckdb")
    r = run(cli, ["replica", "init", post, "--from", feed, "--trust", f"{key}.pub",
                  "--seal-key", seal, "--ncb", "DEU"])
    assert r.exit_code == 0, r.output
    assert "sealed replica of feed" in r.output
    r = run(cli, ["--db", post, "check", "X1234567", "--type", "P", "--country", "FRA"])
    assert (r.exit_code, r.output.split()[:2]) == (1, ["HIT", "exact"])
    assert "replica: list version 1" in r.output
    hit_id = next(w for w in r.output.split() if w.startswith("hit_id="))[len("hit_id="):]
    r = run(cli, ["--db", post, "reveal", hit_id, "--officer", "K. Weber"])
    assert r.exit_code == 2
    assert "--document" in r.output
    r = run(cli, ["--db", post, "reveal", hit_id, "--officer", "K. Weber", "--document",
                  "X1234567", "P", "FRA"])
    assert r.exit_code == 0, r.output
    assert "X1234567 P FRA is STOLEN" in r.output
    alerts = tmp_path / "alerts.jsonl"
    r = run(cli, ["--db", post, "watch", "--once", "--sink", str(alerts)])
    assert r.exit_code == 0, r.output
    assert len(alerts.read_text().splitlines()) == 3
    r = run(cli, ["--db", post, "hits"])
    assert (r.exit_code, r.output.split()[1:3]) == (0, ["pending", "X1234567"])
    r = run(cli, ["--db", post, "check", "Q7654321", "--type", "P", "--country", "FRA"])
    assert (r.exit_code, r.output.splitlines()[0]) == (0, "no hit: not listed")
    with open_index(db) as ix:
        ix.upsert([Record("Q7654321", "P", "FRA", "lost")])
    assert run(cli, ["--db", db, "publish", feed, "--key", key, "--sealed", seal]).exit_code == 0
    r = run(cli, ["--db", post, "sync"])
    assert (r.exit_code, "1 unit(s) applied" in r.output) == (0, True), r.output
    r = run(cli, ["--db", post, "check", "Q7654321", "--type", "P", "--country", "FRA"])
    assert r.exit_code == 1
    r = run(cli, ["--db", post, "load", db])
    assert r.exit_code == 3
    assert "sealed replica" in r.output


def test_the_alphabets_from_the_key_snapshot_are_those_duckdb_counts(tmp_path):
    """A sealed unit's alphabets come from the published key snapshot's counts (base,
    delta, less the withdrawn): the same sets DuckDB counts from the records."""
    from sltd.sealed import ALPHABETS_SQL

    with open_index(str(tmp_path / "s.duckdb"), create=True) as ix:
        ix.load(synth_records(20000, seed=3))
        for key in _listed(ix)[:200]:
            ix.withdraw(*key)
        ix.load(synth_records(3000, seed=4))
        fast = ix._s.keys.snapshot().alphabet_sets().sort_by(
            [(c, "ascending") for c in ("country", "doc_type", "position")])
        counted = ix._db.cursor().sql(ALPHABETS_SQL).to_arrow_table()
        assert fast.num_rows > 1000
        assert fast.to_pylist() == counted.to_pylist()
