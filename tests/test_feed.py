"""The signed feed and its replicas (sltd.feed): a replica answers as its source did at
the same version, refuses anything changed, missing, reordered, older or signed by
another key, and applies each unit whole or not at all."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sltd import FeedError, IndexStateError, ManualClock, Record, open_index
from sltd.alerts import MemorySink, Router
from sltd.feed import init_replica, new_key, publish, sync

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
QUERIES = [(n, t, "FRA", e) for n in ("X1234567", "X1234568", "XI234567", "Y7654321",
                                      "Y7654312", "Z1111111", "Q0000000", "X12345G7")
           for t in ("P", None) for e in (None, "2031-01-31")]


def answers(ix):
    return [[(h.number, str(h.doc_type), h.country, h.match.value, h.explanation)
             for h in ix.check(n, t, c, expiry=e, leads=True)] for n, t, c, e in QUERIES]


@pytest.fixture
def source(tmp_path):
    """An index that publishes: a snapshot at version 1, then a delta to version 4."""
    clock = ManualClock(T0)
    ix = open_index(str(tmp_path / "source.duckdb"), create=True, clock=clock)
    ix.upsert([Record("X1234567", "P", "FRA", "stolen", owner_ncb="FRA",
                      date_of_expiry="2031-01-31"),
               Record("Y7654321", "P", "FRA", "lost", owner_ncb="FRA"),
               Record("X12345G8", "P", "FRA", "stolen")])
    key, pub = new_key(tmp_path / "feed.key")
    feed = tmp_path / "feed"
    publish(ix, feed, key)
    yield ix, feed, key, pub, clock
    ix.close()


def _change(ix, clock):
    """Versions 2 to 4: an update, a withdrawal, an addition."""
    clock.advance(hours=1)
    ix.upsert([Record("X1234567", "P", "FRA", "revoked", owner_ncb="FRA",
                      date_of_expiry="2031-01-31")])
    clock.advance(hours=1)
    ix.withdraw("Y7654321", "P", "FRA", reason="found")
    clock.advance(hours=1)
    ix.upsert([Record("Z1111111", "I", "FRA", "stolen", owner_ncb="FRA")])


def test_a_replica_answers_as_its_source_at_each_version(source, tmp_path):
    ix, feed, key, pub, clock = source
    replica = init_replica(tmp_path / "post.duckdb", feed, pub, clock=clock)
    assert (replica.list_version, answers(replica)) == (ix.list_version, answers(ix))
    _change(ix, clock)
    done = publish(ix, feed, key)
    assert (done.kind, done.from_version, done.to_version, done.records,
            done.withdrawals) == ("delta", 1, 4, 2, 1)
    assert publish(ix, feed, key).unit is None  # nothing new
    report = sync(replica)
    assert report.applied == ("v0000000004",)
    assert replica.list_version == ix.list_version  # the source's number and time
    assert answers(replica) == answers(ix)
    assert len(replica) == len(ix) == 3
    assert sync(replica).applied == ()
    with pytest.raises(IndexStateError, match="replica"):
        replica.upsert([Record("Q0000000", "P", "FRA", "lost")])
    with pytest.raises(IndexStateError, match="replica"):
        replica.withdraw("X1234567", "P", "FRA")
    replica.close()


def test_a_reveal_made_offline_is_delivered_when_the_sink_is_back(source, tmp_path):
    ix, feed, _, pub, clock = source
    replica = init_replica(tmp_path / "post.duckdb", feed, pub, clock=clock)
    replica.set_home_ncb("DEU")
    hit = replica.check("X1234567", "P", "FRA")[0]
    revealed_at = clock.now()
    details = replica.reveal(hit.hit_id, officer="K. Weber")
    assert details.status.value == "stolen"
    sink = MemorySink()
    sink.failing = True  # the link is down
    replica.deliver_alerts(Router({"*": sink}))
    assert sink.sent == []
    clock.advance(hours=5)
    sink.failing = False
    replica.deliver_alerts(Router({"*": sink}))
    assert sorted(a["recipient"] for a in sink.sent) == ["CCC", "owner:FRA", "searching:DEU"]
    assert {a.created_at for a in replica.alerts()} == {revealed_at}
    replica.close()


@pytest.fixture
def prepared(source, tmp_path):
    """A replica at version 1 and a feed with the delta to version 4, to copy per case."""
    ix, feed, key, pub, clock = source
    replica = init_replica(tmp_path / "post.duckdb", feed, pub)
    replica.close()
    old_feed = tmp_path / "feed-at-1"
    shutil.copytree(feed, old_feed)
    _change(ix, clock)
    publish(ix, feed, key)
    return tmp_path / "post.duckdb", feed, pub, old_feed, ix


def _copies(prepared, tmp_path, tag):
    post, feed, *_ = prepared
    work = tmp_path / tag
    work.mkdir()
    shutil.copy(post, work / "post.duckdb")
    shutil.copytree(feed, work / "feed")
    return work / "post.duckdb", work / "feed"


def _state(path):
    with open_index(str(path)) as ix:
        return ix.list_version.version, len(ix), answers(ix)


FILES = ["v0000000004/manifest.json", "v0000000004/manifest.sig",
         "v0000000004/upserts.parquet", "v0000000004/withdrawals.parquet"]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FILES), st.floats(0, 1, exclude_max=True), st.integers(1, 255))
def test_any_changed_byte_is_refused_and_the_replica_is_unchanged(prepared, tmp_path_factory,
                                                                    name, where, xor):
    post, feed = _copies(prepared, tmp_path_factory.mktemp("flip"), "case")
    before = _state(post)
    path = feed / name
    data = bytearray(path.read_bytes())
    data[int(where * len(data))] ^= xor
    path.write_bytes(bytes(data))
    with open_index(str(post)) as replica, pytest.raises(FeedError) as refused:
        sync(replica, feed)
    assert "v0000000004" in str(refused.value)
    assert _state(post) == before


def _units(feed):
    return json.loads((feed / "feed.json").read_text())


def _write_units(feed, data):
    (feed / "feed.json").write_text(json.dumps(data))


def test_a_gap_a_reordering_an_older_feed_another_key_or_feed_are_refused(prepared,
                                                                          tmp_path):
    post, feed, pub, old_feed, source_ix = prepared
    before = _state(post)

    def refused(match, feed_dir, replica_path=post):
        with open_index(str(replica_path)) as replica, pytest.raises(FeedError, match=match):
            sync(replica, feed_dir)

    # a dropped delta: the source publishes again after it, so the next starts later
    post2, feed2 = _copies(prepared, tmp_path, "gap")
    source_ix.upsert([Record("W2222222", "P", "FRA", "lost")])
    key = feed.parent / "feed.key"
    publish(source_ix, feed2, key)
    data = _units(feed2)
    shutil.rmtree(feed2 / data["units"][1]["name"])
    data["units"].pop(1)
    _write_units(feed2, data)
    refused("missing or out of order", feed2, post2)
    # reordered
    post3, feed3 = _copies(prepared, tmp_path, "order")
    publish(source_ix, feed3, key)
    data = _units(feed3)
    data["units"][1], data["units"][2] = data["units"][2], data["units"][1]
    _write_units(feed3, data)
    refused("missing or out of order", feed3, post3)
    # an older feed than the replica: the replica at 4, shown the feed of version 1
    post4, feed4 = _copies(prepared, tmp_path, "old")
    with open_index(str(post4)) as replica:
        sync(replica, feed4)
    refused("older than this replica", old_feed, post4)
    # a unit signed by another key
    post5, feed5 = _copies(prepared, tmp_path, "key")
    other, _ = new_key(tmp_path / "other.key")
    from sltd.feed import _private_key

    unit = feed5 / "v0000000004"
    (unit / "manifest.sig").write_bytes(
        _private_key(other).sign((unit / "manifest.json").read_bytes()))
    refused("signature does not verify", feed5, post5)
    manifest = json.loads((unit / "manifest.json").read_text())
    manifest["key_id"] = "0123456789abcdef"
    body = json.dumps(manifest).encode()
    (unit / "manifest.json").write_bytes(body)
    (unit / "manifest.sig").write_bytes(_private_key(other).sign(body))
    refused("signed by another key", feed5, post5)
    # another index's feed
    with open_index(str(tmp_path / "elsewhere.duckdb"), create=True) as other_ix:
        other_ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
        publish(other_ix, tmp_path / "other-feed", key)
    refused("not this replica's", tmp_path / "other-feed")
    assert _state(post) == before


def test_refusals_of_bad_files_and_keys_never_overwrite_anything(tmp_path):
    key, pub = new_key(tmp_path / "k")
    with pytest.raises(FeedError, match="never overwritten"):
        new_key(tmp_path / "k")
    (tmp_path / "post.duckdb").write_text("an operator's file")
    with pytest.raises(IndexStateError, match="exists"):
        init_replica(tmp_path / "post.duckdb", tmp_path, pub)
    assert (tmp_path / "post.duckdb").read_text() == "an operator's file"
    with pytest.raises(FeedError, match="no feed"):
        init_replica(tmp_path / "new.duckdb", tmp_path, pub)
    assert not (tmp_path / "new.duckdb").exists()
    with open_index(str(tmp_path / "s.duckdb"), create=True) as ix:
        with pytest.raises(FeedError, match="private key"):
            publish(ix, tmp_path / "feed", pub)  # the public key cannot sign


def test_a_kill_during_apply_leaves_the_previous_version_or_the_new_one(tmp_path):
    """sltd sync killed (SIGKILL) at several moments while applying a 200k-record delta:
    the replica opens at version 1 or 2, with exactly that version's records."""
    from sltd.synth import synth_records

    src = open_index(str(tmp_path / "source.duckdb"), create=True)
    src.load(synth_records(1000, seed=1))
    key, pub = new_key(tmp_path / "feed.key")
    feed = tmp_path / "feed"
    publish(src, feed, key)
    init_replica(tmp_path / "base.duckdb", feed, pub).close()
    src.load(synth_records(200_000, seed=2))
    publish(src, feed, key)
    want = {1: 1000, 2: len(src)}
    src.close()
    seen = set()
    for i, delay in enumerate((0.3, 0.8, 1.5, 2.5)):
        post = tmp_path / f"post{i}.duckdb"
        shutil.copy(tmp_path / "base.duckdb", post)
        if (tmp_path / "base.duckdb.keys").exists():
            shutil.copy(tmp_path / "base.duckdb.keys", f"{post}.keys")
        proc = subprocess.Popen([sys.executable, "-m", "sltd", "--db", str(post), "sync"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with open_index(str(post)) as replica:
            version = replica.list_version.version
            assert version in want
            assert len(replica) == want[version]
            seen.add(version)
            sync(replica)  # and it carries on from there
            assert (replica.list_version.version, len(replica)) == (2, want[2])
    assert seen  # at least one state observed (which ones depends on the machine's speed)


def test_cli_publish_replica_init_and_sync(tmp_path):
    from click.testing import CliRunner

    from sltd.cli import cli

    src = tmp_path / "source.duckdb"
    csv = tmp_path / "a.csv"
    csv.write_text("document_number,document_type,issuing_country,status\n"
                   "X1234567,P,FRA,stolen\n")

    def run(*args):
        return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)

    assert run("--db", src, "load", csv).exit_code == 0
    made = run("--db", src, "publish", tmp_path / "feed", "--key", tmp_path / "k",
               "--new-key")
    assert made.exit_code == 0, made.output
    assert "snapshot, list versions 0 to 1" in made.stdout
    init = run("replica", "init", tmp_path / "post.duckdb", "--from", tmp_path / "feed",
               "--trust", tmp_path / "k.pub", "--ncb", "DEU")
    assert init.exit_code == 0, init.output
    assert "1 records, list version 1" in init.stdout
    hit = run("--db", tmp_path / "post.duckdb", "check", "X1234567", "--type", "P",
              "--country", "FRA")
    assert hit.exit_code == 1
    assert "replica: list version 1, " in hit.stdout  # and how old the list is
    again = run("--db", tmp_path / "post.duckdb", "sync", "--json")
    assert json.loads(again.stdout)["applied"] == []
    refused = run("--db", tmp_path / "post.duckdb", "load", csv)
    assert refused.exit_code == 3
    assert "replica" in refused.stderr
    assert Path(tmp_path / "k").stat().st_mode & 0o077 == 0  # the private key is private


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig", "records.parquet"])
def test_a_changed_snapshot_is_refused_and_no_replica_is_left(source, tmp_path, name):
    _, feed, _, pub, _ = source
    path = feed / "v0000000001" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(FeedError, match="v0000000001"):
        init_replica(tmp_path / "post.duckdb", feed, pub)
    assert not (tmp_path / "post.duckdb").exists()


def test_review_dates_travel_with_the_feed_and_expiries_reach_the_replica(tmp_path):
    clock = ManualClock(T0)
    src = open_index(str(tmp_path / "source.duckdb"), create=True, clock=clock)
    src.upsert([Record("X1234567", "P", "FRA", "stolen", review_date="2026-12-02"),
                Record("Y7654321", "P", "FRA", "lost")])
    key, pub = new_key(tmp_path / "feed.key")
    publish(src, tmp_path / "feed", key)
    replica = init_replica(tmp_path / "post.duckdb", tmp_path / "feed", pub, clock=clock)
    assert replica.check("X1234567", "P", "FRA") != []
    clock.advance(days=1)  # 2026-12-02 08:00: its review date has come, on the replica too
    assert replica.check("X1234567", "P", "FRA") == []
    assert src.expire() == 1
    publish(src, tmp_path / "feed", key)
    sync(replica)
    assert (len(replica), replica.list_version) == (1, src.list_version)
    with pytest.raises(IndexStateError, match="replica"):
        replica.expire()
    replica.close()
    src.close()


def test_a_unit_name_outside_the_feed_is_refused(prepared, tmp_path):
    post, feed = _copies(prepared, tmp_path, "names")
    data = _units(feed)
    data["units"][1]["name"] = "../feed/v0000000004"
    _write_units(feed, data)
    before = _state(post)
    with open_index(str(post)) as replica, pytest.raises(FeedError, match="not a unit name"):
        sync(replica, feed)
    assert _state(post) == before
    assert not list(post.parent.glob(".post.duckdb.unit.*"))  # no private copy left


def test_a_list_migrated_from_before_list_versions_reaches_its_replicas(tmp_path):
    """A file of the first release has records and no list version: the migration makes
    its list version 1, so its snapshot carries them (not a "0 to 0" unit a replica
    would skip) and the next delta follows."""
    import gzip

    path = tmp_path / "v1.duckdb"
    with gzip.open(Path(__file__).parent.parent / "fixtures" / "v1" / "index.duckdb.gz") \
            as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    key, pub = new_key(tmp_path / "feed.key")
    with open_index(str(path)) as ix:
        assert (ix.migrated_from, ix.list_version.version) == (1, 1)
        assert len(ix) > 0
        assert publish(ix, tmp_path / "feed", key).records == len(ix)
        replica = init_replica(tmp_path / "post.duckdb", tmp_path / "feed", pub)
        assert (len(replica), answers(replica)) == (len(ix), answers(ix))
        ix.upsert([Record("Z1111111", "P", "FRA", "stolen")])
        publish(ix, tmp_path / "feed", key)
        assert sync(replica).applied == ("v0000000002",)
        assert (len(replica), answers(replica)) == (len(ix), answers(ix))
        replica.close()


def test_hostile_files_are_refused_before_anything_is_read_past_the_signature(
        prepared, tmp_path, monkeypatch):
    """What a carrier of the feed can put in it: a FIFO (a sync must not hang), symbolic
    links, oversized or deeply nested JSON, a number JSON cannot hold, a huge sparse data
    file under an unsigned manifest. Each is refused with its reason, the replica is
    unchanged, and no data file is read before the manifest's signature verifies."""
    import sltd.feed

    checked = []
    real_check = sltd.feed._check_file
    monkeypatch.setattr(sltd.feed, "_check_file",
                        lambda path, *a: (checked.append(path.name), real_check(path, *a)))
    post, _ = prepared[:2]
    before = _state(post)

    def refused(tag, spoil, match):
        copy, feed = _copies(prepared, tmp_path, tag)
        spoil(feed, feed / "v0000000004")
        checked.clear()
        with open_index(str(copy)) as replica, pytest.raises(FeedError, match=match):
            sync(replica, feed)
        assert _state(copy) == before
        return checked

    def fifo(feed, unit):
        (feed / "feed.json").unlink()
        os.mkfifo(feed / "feed.json")

    refused("fifo", fifo, "not a regular file")

    def linked(feed, unit):
        (unit / "manifest.json").rename(unit / "real.json")
        (unit / "manifest.json").symlink_to(unit / "real.json")

    refused("link", linked, "manifest.json unreadable")

    def huge_number(feed, unit):
        data = _units(feed)
        data["units"][-1]["to"] = 1e400
        _write_units(feed, data)

    refused("overflow", huge_number, "not a whole number")

    def nested(feed, unit):
        (unit / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)

    assert refused("nested", nested, "signature does not verify") == []
    refused("big-index", lambda feed, unit: (feed / "feed.json").write_bytes(
        b" " * (17 << 20)), "larger than")
    refused("long-sig", lambda feed, unit: (unit / "manifest.sig").write_bytes(b"s" * 65),
            "larger than 64 bytes")

    def unsigned_sparse(feed, unit):
        (unit / "manifest.sig").write_bytes(b"x" * 64)
        with open(unit / "records.parquet", "wb") as f:
            f.truncate(256 << 20)

    assert refused("sparse", unsigned_sparse, "signature does not verify") == []
    assert not list(tmp_path.glob("*/.post.duckdb.unit.*"))  # no private copy left


def test_a_unit_applies_only_onto_the_version_it_follows(prepared, tmp_path):
    """A unit verified at version 1 but applied after another sync took the replica on
    (two syncs in one process) is refused inside the load's transaction."""
    import tempfile

    from sltd.feed import REPLICA_FEED, REPLICA_TRUST, _apply, _public_key, verify_unit
    from sltd.store import get_meta

    post, feed = _copies(prepared, tmp_path, "stale")
    with open_index(str(post)) as replica:
        con = replica._db.cursor()
        trusted = _public_key(get_meta(con, REPLICA_TRUST).encode(), "test")
        unit = verify_unit(feed, "v0000000004", trusted, get_meta(con, REPLICA_FEED), 1,
                           into=Path(tempfile.mkdtemp(dir=tmp_path)))
        assert sync(replica, feed).applied == ("v0000000004",)
        after = answers(replica)
        with pytest.raises(FeedError, match="at version 4, not 1"):
            _apply(replica, unit, 1)
        assert (replica.list_version.version, answers(replica)) == (4, after)


def test_one_publish_into_a_directory_at_a_time(source):
    import fcntl

    ix, feed, key, _, clock = source
    _change(ix, clock)
    with open(feed / ".publish.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(FeedError, match="another publish"):
            publish(ix, feed, key)
    assert publish(ix, feed, key).to_version == 4


def test_an_api_token_goes_only_over_https_or_to_this_machine(prepared, tmp_path):
    post, _ = _copies(prepared, tmp_path, "token")
    with open_index(str(post)) as replica, pytest.raises(FeedError, match="only over https"):
        sync(replica, "http://feed.example.org/v1/feed", token="secret")
