"""A signed feed of the list (a full snapshot, then deltas) and the replicas that follow
it: a national copy for border posts that must keep checking when the link is down
(INTERPOL's MIND), refreshed over the network or from removable media.

``sltd publish DIR --key KEY`` writes, from the index, one *unit* per run into ``DIR``:
the first a snapshot of the list at the current version, later ones the changes since the
last unit (records added or updated, records withdrawn). A unit is a directory::

    DIR/feed.json                the feed's id and its units in order (not signed: a
                                 replica trusts only the manifests)
    DIR/v0000000057/
        manifest.json            feed id, kind, version range, commit time of the last
                                 version, the signing key's id, each file's SHA-256, size
                                 and rows
        manifest.sig             Ed25519 signature of manifest.json (64 bytes: any
                                 changed byte fails, no encoding to normalize)
        records.parquet          a snapshot: every active record, loader columns
        upserts.parquet          a delta: the records added or changed in the range
        withdrawals.parquet      a delta: the keys withdrawn or expired in it (number,
                                 doc_type, country)

A replica (``sltd replica init PATH --from DIR --trust KEY.pub``, then ``sltd sync``)
applies units in the order of ``feed.json``, each only after checking its manifest's
signature against the trusted key, the key id, the feed id, every file's hash and size,
and that its range starts at the replica's version; it refuses, with a one-line reason,
a changed byte, another key, another feed, a gap or a reordering, and a feed older than
itself. A unit is applied in one transaction (:func:`sltd.loader.load`), as the source's
list version with the source's commit time, so a replica's answers carry the version and
its age; a kill at any moment leaves the previous version or the new one. A replica's
list changes only through its feed; its reveals open local cases and queue their alerts
in its own outbox, delivered when a sink is reachable.

What the signature does not cover: ``feed.json`` may be withheld or truncated by whoever
carries the feed (a replica then stays at its version, and its answers say how old it
is); it cannot make a replica apply anything unsigned, older or out of order. Whoever
carries the feed may also put anything in it: a replica reads only regular files (no
links, FIFOs or devices), ``feed.json`` and a manifest within fixed sizes, and no data
file before the manifest's signature verifies, then at most its signed size.

Example:
    >>> import tempfile, pathlib
    >>> from sltd import open_index, Record
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> key, pub = new_key(d / "feed.key")
    >>> ix = open_index(":memory:", create=True)
    >>> _ = ix.upsert([Record("X1234567", "P", "FRA", "stolen")])
    >>> publish(ix, d / "feed", key).kind
    'snapshot'
    >>> replica = init_replica(d / "replica.duckdb", d / "feed", pub)
    >>> [h.match.value for h in replica.check("X1234567", "P", "FRA")], replica.list_version.version
    (['exact'], 1)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from sltd import loader, store
from sltd.errors import FeedError, IndexStateError
from sltd.model import ListVersion

if TYPE_CHECKING:
    from sltd.index import Index
    from sltd.sealed import SealedReplica, SealKey

#: The loader's names of the columns a unit's records carry.
_RECORD_SQL = """SELECT number AS document_number, doc_type AS document_type,
    country AS issuing_country, status, owner_ncb, place_of_loss, date_of_loss,
    date_of_issue, date_of_expiry, review_date FROM records"""
#: The keys withdrawn or expired since a version and not listed again.
_WITHDRAWN_SQL = """SELECT DISTINCT number, doc_type, country FROM record_history h
    WHERE change IN ('withdrawn', 'expired') AND ended_in > $since AND NOT EXISTS (
        SELECT 1 FROM records r WHERE r.number = h.number AND r.doc_type = h.doc_type
            AND r.country = h.country)"""
_ROWS_PER_BATCH = 1 << 20
#: Meta keys of a replica.
REPLICA_FEED, REPLICA_TRUST, REPLICA_SOURCE = "replica_feed_id", "replica_trust", \
    "replica_source"


def _crypto() -> Any:
    """The Ed25519 primitives (imported when a feed is used, not by every check)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization, InvalidSignature


def new_key(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Make an Ed25519 key pair for signing a feed: the private key at ``path`` (PEM,
    mode 0600) and the public key, which replicas trust, at ``path.pub``. Never
    overwrites a file.

    Raises:
        FeedError: either file exists.
    """
    ed25519, serialization, _ = _crypto()
    private, public = Path(path), Path(f"{path}.pub")
    for p in (private, public):
        if p.exists():
            raise FeedError(f"{p} exists; a key is never overwritten (choose another path)")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _private_key(path: str | os.PathLike[str]) -> Any:
    ed25519, serialization, _ = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise FeedError(f"cannot read the signing key {path}: {e}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise FeedError(f"{path} is not an Ed25519 private key (make one with --new-key)")
    return key


def _public_key(pem: bytes, where: str) -> Any:
    ed25519, serialization, _ = _crypto()
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise FeedError(f"cannot read the trusted key {where}: {e}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise FeedError(f"{where} is not an Ed25519 public key")
    return key


def key_id(public_key: Any) -> str:
    """A public key's id: the first 16 hex digits of the SHA-256 of its raw bytes."""
    _, serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote: the unit (None if the feed was already current), its
    kind, version range, rows and time."""

    unit: str | None
    kind: str | None
    from_version: int
    to_version: int
    records: int = 0
    withdrawals: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The files a unit may hold (a replica fetches no other name).
UNIT_FILES = ("manifest.json", "manifest.sig", "records.parquet", "upserts.parquet",
              "withdrawals.parquet", "sealed.parquet", "sealed-upserts.parquet",
              "sealed-withdrawals.parquet", "alphabets.parquet")
#: The names of a sealed unit's files (:mod:`sltd.sealed`), by those of a plain one.
_SEALED_NAMES = {"records.parquet": "sealed.parquet",
                 "upserts.parquet": "sealed-upserts.parquet",
                 "withdrawals.parquet": "sealed-withdrawals.parquet"}
#: The file of a unit's records, and whether it is sealed: one of them in each unit.
_RECORD_FILES = {"records.parquet": False, "upserts.parquet": False,
                 "sealed.parquet": True, "sealed-upserts.parquet": True}
_UNIT_NAME = re.compile(r"v[0-9]{10}")
#: The most a feed's unsigned or not yet verified files may hold: ``feed.json``, a
#: manifest, its signature (an Ed25519 signature is exactly this long).
INDEX_LIMIT, MANIFEST_LIMIT, SIGNATURE_BYTES = 16 << 20, 1 << 20, 64
_CHUNK = 1 << 20


def _open_file(path: Path, what: str, *, unit: str | None = None) -> int:
    """A descriptor of the regular file at ``path``, never through a symbolic link and
    never blocking on a FIFO or a device (a feed may come from anyone's media)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise FeedError(f"{what} unreadable ({type(e).__name__}: {e.strerror})",
                        unit=unit) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FeedError(f"{what} is not a regular file", unit=unit)
    return fd


def _read_small(path: Path, limit: int, what: str, *, unit: str | None = None) -> bytes:
    """The bytes of a small file of the feed, refused past ``limit`` bytes."""
    fd = _open_file(path, what, unit=unit)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FeedError(f"{what} is larger than {limit:,} bytes", unit=unit)
    return data


def _count(value: Any, what: str, *, unit: str | None = None) -> int:
    """A whole number of the feed's JSON (not a bool, a float or a string)."""
    if type(value) is not int or value < 0:
        raise FeedError(f"{what} is {str(value)[:40]!r}, not a whole number", unit=unit)
    return value


def _json(data: bytes, what: str, *, unit: str | None = None) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise FeedError(f"{what} is not JSON ({type(e).__name__})", unit=unit) from None


def is_url(source: str | os.PathLike[str]) -> bool:
    return str(source).startswith(("http://", "https://"))


def _mirror(url: str, token: str, into: Path, at_version: int, trusted: Any) -> Path:
    """Fetch from a service (``sltd serve --feed``) what a sync from ``at_version`` needs:
    ``feed.json`` and the units after that version, into the directory ``into`` (a cache
    beside the replica), where they are verified like a copied feed. Only unit names and
    file names sltd writes are fetched; of a unit, its manifest and signature first (each
    at most its fixed size), then, once the signature verifies against ``trusted``, the
    files it names, each at most its signed size. A unit refused here stops the fetching
    (the sync applies the units before it and then refuses it, with the reason). The API
    token goes only over HTTPS, or to this machine."""
    import httpx

    parts = urllib.parse.urlsplit(url)
    if token and parts.scheme != "https" and parts.hostname not in (
            "localhost", "127.0.0.1", "::1"):
        raise FeedError(f"{url}: the API token is sent only over https:// (or to this "
                        "machine); use an https URL")
    into.mkdir(exist_ok=True)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = url.rstrip("/")
    try:
        with httpx.Client(headers=headers, timeout=60, follow_redirects=False) as http:
            def get(name: str, limit: int) -> None:
                with http.stream("GET", f"{base}/{name}") as answer:
                    if answer.status_code != 200:
                        raise FeedError(f"{base}/{name}: HTTP {answer.status_code}")
                    target = into / name
                    target.parent.mkdir(exist_ok=True)
                    target.unlink(missing_ok=True)  # a file of an earlier fetch
                    size = 0
                    with open(target, "xb") as f:
                        for chunk in answer.iter_bytes(_CHUNK):
                            size += len(chunk)
                            if size > limit:
                                raise FeedError(f"{base}/{name}: larger than {limit:,} "
                                                "bytes; not fetched")
                            f.write(chunk)

            get("feed.json", INDEX_LIMIT)
            known = _feed_index(into)
            assert known is not None
            for name, _, end in known["units"]:
                if end <= at_version:
                    continue
                if not _UNIT_NAME.fullmatch(name):
                    break  # refused by the sync, with the reason
                get(f"{name}/manifest.json", MANIFEST_LIMIT)
                get(f"{name}/manifest.sig", SIGNATURE_BYTES)
                try:
                    manifest = _signed_manifest(
                        (into / name / "manifest.json").read_bytes(),
                        (into / name / "manifest.sig").read_bytes(), trusted, name)
                except FeedError:
                    break
                for file, want in manifest["files"].items():
                    get(f"{name}/{file}", want["bytes"])
    except httpx.HTTPError as e:
        raise FeedError(f"{base}: {type(e).__name__}: {e}") from None
    return into


def _feed_index(directory: Path) -> dict[str, Any] | None:
    """The feed's ``feed.json`` (None if there is none): its id and its units in order,
    each (name, from version, to version); anything else is refused with the reason."""
    path = directory / "feed.json"
    if not os.path.lexists(path):
        return None
    data = _json(_read_small(path, INDEX_LIMIT, str(path)), str(path))
    try:
        feed_id = data["feed_id"]
        units = [(u["name"], _count(u["from"], "a unit's first version"),
                  _count(u["to"], "a unit's last version")) for u in data["units"]]
        sealed = data.get("sealed")
        if not isinstance(feed_id, str) or not all(isinstance(u[0], str) for u in units) \
                or not isinstance(sealed, str | None):
            raise TypeError("the feed id, unit names and seal key id are strings")
    except FeedError as e:
        raise FeedError(f"{path} is not a feed index ({e})") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise FeedError(f"{path} is not a feed index ({type(e).__name__}: {e})") from None
    return {"feed_id": feed_id, "units": units, "sealed": sealed}


def _write_index(directory: Path, feed_id: str, units: list[tuple[str, int, int]],
                 sealed: str | None) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".feed.json.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"feed_id": feed_id, "units": [
            {"name": n, "from": a, "to": b} for n, a, b in units],
            **({"sealed": sealed} if sealed else {})}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / "feed.json")


def feed_id_of(index: Index) -> str:
    """The id of the feed an index publishes: made once, kept in its meta table."""
    con = index._db.cursor()
    found = store.get_meta(con, "feed_id")
    if found:
        return found
    made = hashlib.sha256(os.urandom(32)).hexdigest()[:24]
    with index._writable().write() as wcon:
        store.set_meta(wcon, "feed_id", made)
    return made


def _write_parquet(con: Any, sql: str, params: dict[str, Any], path: Path,
                   transform: Callable[[pa.Table], pa.Table] | None = None,
                   schema: pa.Schema | None = None) -> int:
    """Stream a query's rows into a Parquet file (memory: one batch), each batch through
    ``transform`` (of ``schema``) if given; its row count."""
    reader = con.sql(sql, params=params).to_arrow_reader(_ROWS_PER_BATCH)
    rows = 0
    with pq.ParquetWriter(path, schema or reader.schema, compression="zstd") as writer:
        for batch in reader:
            table = pa.Table.from_batches([batch])
            writer.write_table(transform(table) if transform is not None else table)
            rows += batch.num_rows
    return rows


def publish(index: Index, directory: str | os.PathLike[str], key: str | os.PathLike[str],
            *, sealed: str | os.PathLike[str] | None = None) -> Published:
    """Write the next unit of the index's feed into ``directory``: a snapshot if it has
    none, else a delta since its last unit (nothing if the list has not changed). The
    unit is written aside and renamed into place, then ``feed.json`` replaced: a reader
    sees the unit whole or not at all. With ``sealed`` (a seal key file,
    :func:`sltd.sealed.new_seal_key`), a sealed feed (:mod:`sltd.sealed`): no number in
    plaintext, for sealed replicas that hold the same key.

    Raises:
        FeedError: the directory holds another index's feed, or one ahead of this index,
            or a feed sealed otherwise (or under another seal key); a key cannot be read;
            another publish into it is running.
    """
    from sltd.sealed import read_seal_key

    start = time.perf_counter()
    signer = _private_key(key)
    seal = read_seal_key(sealed) if sealed is not None else None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # one publish into a directory at a time (threads or processes): each reads the last
    # unit and writes the next
    with open(directory / ".publish.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FeedError(f"another publish into {directory} is running; try again when "
                            "it has finished") from None
        return _publish(index, directory, signer, start, seal)


def _publish(index: Index, directory: Path, signer: Any, start: float, seal: SealKey | None
             ) -> Published:
    from sltd import sealed

    feed_id = feed_id_of(index)
    known = _feed_index(directory)
    if known is not None and known["feed_id"] != feed_id:
        raise FeedError(f"{directory} holds feed {known['feed_id']}, not this index's "
                        f"({feed_id}): publish into a directory of its own")
    seal_id = seal.id if seal is not None else None
    if known is not None and known["sealed"] != seal_id:
        held = f"a feed sealed under seal key {known['sealed']}" if known["sealed"] \
            else "a plain feed"
        wanted = f"one sealed under {seal_id}" if seal_id else "a plain one"
        raise FeedError(f"{directory} holds {held}, not {wanted}: publish into a directory "
                        "of its own")
    units: list[tuple[str, int, int]] = known["units"] if known else []
    last = units[-1][2] if units else None
    # the key snapshot (read before the transaction below, which may be its cursor's)
    snap = index._s.keys.snapshot() if seal is not None else None
    con = index._db.cursor()
    con.begin()  # one read snapshot: the version and its rows agree
    try:
        current = store.current_version(con)
        if last is not None and last > current.version:
            raise FeedError(f"{directory} is at list version {last}, ahead of this index "
                            f"({current.version})")
        if last == current.version:
            return Published(None, None, last, last, seconds=time.perf_counter() - start)
        if current.version == 0 and not store.no_records(con):
            raise FeedError("the list has records but no list version (a file migrated "
                            "before versions were given on migration); load or withdraw "
                            "once, then publish")
        name = f"v{current.version:010d}"
        kind = "snapshot" if last is None else "delta"
        tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}."))
        try:
            files: dict[str, dict[str, Any]] = {}
            since = {"since": last}
            parts: dict[str, tuple[str, dict[str, Any]]] = {
                "records.parquet": (_RECORD_SQL, {})} if kind == "snapshot" else {
                "upserts.parquet": (f"{_RECORD_SQL} WHERE listed_in > $since", since),
                "withdrawals.parquet": (_WITHDRAWN_SQL, since)}
            for file, (sql, params) in parts.items():
                if seal is None:
                    rows = _write_parquet(con, sql, params, tmp / file)
                elif file == "withdrawals.parquet":
                    file = _SEALED_NAMES[file]
                    rows = _write_parquet(con, sql, params, tmp / file,
                                          functools.partial(sealed.sealed_rids, key=seal),
                                          sealed.RIDS_SCHEMA)
                else:
                    file = _SEALED_NAMES[file]
                    rows = _write_parquet(con, sql.replace(" FROM records", ", fold FROM "
                                                           "records"), params, tmp / file,
                                          functools.partial(sealed.seal_records, key=seal),
                                          sealed.SEALED_SCHEMA)
                files[file] = {"rows": rows}
            if seal is not None:
                # from the published key snapshot's counts when it is this version (a
                # 10M-record list: ~0.1 s, against ~20 s for DuckDB to count anew)
                if snap is not None and snap.version == current:
                    sets = snap.alphabet_sets().sort_by(
                        [(c, "ascending") for c in ("country", "doc_type", "position")])
                    pq.write_table(sets, tmp / "alphabets.parquet", compression="zstd")
                    files["alphabets.parquet"] = {"rows": sets.num_rows}
                else:
                    files["alphabets.parquet"] = {"rows": _write_parquet(
                        con, sealed.ALPHABETS_SQL, {}, tmp / "alphabets.parquet")}
            for file, about in files.items():
                about.update(sha256=_sha256(tmp / file), bytes=(tmp / file).stat().st_size)
            manifest = {
                "format": 1, "feed_id": feed_id, "kind": kind,
                "from_version": last or 0, "to_version": current.version,
                "committed_at": current.committed_at.isoformat()
                if current.committed_at else None,
                "published_at": index.clock.now().isoformat(),
                "key_id": key_id(signer.public_key()), "files": files,
                **({"sealed": {"seal_key_id": seal.id}} if seal is not None else {})}
            body = json.dumps(manifest, indent=1, sort_keys=True).encode()
            (tmp / "manifest.json").write_bytes(body)
            (tmp / "manifest.sig").write_bytes(signer.sign(body))
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, directory / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        con.commit()
    _write_index(directory, feed_id, [*units, (name, last or 0, current.version)], seal_id)
    with index._writable().write(on_rollback=index._s.audit.invalidate) as wcon:
        index._s.audit.write(wcon, index.clock.now(), "publish", subject=f"{directory}/{name}",
                             result=f"{kind}, list versions {last or 0} to {current.version}")
    records = next(about["rows"] for file, about in files.items() if file in _RECORD_FILES)
    withdrawn = sum(about["rows"] for file, about in files.items()
                    if file.endswith("withdrawals.parquet"))
    return Published(name, kind, last or 0, current.version, records, withdrawn,
                     time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class _Unit:
    name: str
    path: Path
    manifest: dict[str, Any]

    @property
    def to_version(self) -> ListVersion:
        at = self.manifest.get("committed_at")
        return ListVersion(int(self.manifest["to_version"]),
                           dt.datetime.fromisoformat(at) if at else None)


def _signed_manifest(body: bytes, signature: bytes, trusted: Any, unit: str
                     ) -> dict[str, Any]:
    """A unit's manifest, once its signature verifies against ``trusted`` and its
    fields are what :func:`publish` writes; nothing of it is read before that but, for
    the reason of a refusal, the key id it claims."""
    _, _, invalid_signature = _crypto()
    try:
        trusted.verify(signature, body)
    except invalid_signature:
        claimed = re.search(rb'"key_id": *"([0-9a-f]{16})"', body)
        if claimed is not None and claimed[1].decode() != key_id(trusted):
            raise FeedError(f"signed by another key ({claimed[1].decode()}), not the "
                            f"trusted {key_id(trusted)}", unit=unit) from None
        raise FeedError("the manifest's signature does not verify: the manifest or its "
                        "signature was changed", unit=unit) from None
    manifest = _json(body, "the signed manifest", unit=unit)
    try:
        files = manifest["files"]
        start = _count(manifest["from_version"], "from_version", unit=unit)
        end = _count(manifest["to_version"], "to_version", unit=unit)
        for file, want in files.items():
            if file not in UNIT_FILES[2:]:
                raise FeedError(f"the manifest names a file {file!r} sltd never writes",
                                unit=unit)
            if not re.fullmatch(r"[0-9a-f]{64}", want["sha256"]):
                raise TypeError(f"{file}: sha256 is not a SHA-256")
            _count(want["bytes"], f"{file}: bytes", unit=unit)
            _count(want["rows"], f"{file}: rows", unit=unit)
        kinds = [_RECORD_FILES[f] for f in files if f in _RECORD_FILES]
        if len(kinds) != 1:
            raise TypeError(f"a unit has one of {', '.join(_RECORD_FILES)}")
        sealed = manifest.get("sealed")
        if kinds[0] != (sealed is not None) or any(
                f.startswith(("sealed", "alphabets")) != kinds[0] for f in files) or (
                sealed is not None and not isinstance(sealed.get("seal_key_id"), str)) or (
                kinds[0] and "alphabets.parquet" not in files):
            raise TypeError("its files are not those of a " + (
                "sealed" if sealed is not None else "plain") + " unit")
        if end < start or (end == start and any(f["rows"] for f in files.values())):
            raise TypeError(f"changes from list version {start} to {end}")
        if manifest["committed_at"] is not None:
            dt.datetime.fromisoformat(manifest["committed_at"])
    except FeedError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FeedError(f"the signed manifest is not one sltd writes ({type(e).__name__}: "
                        f"{e})", unit=unit) from None
    return dict(manifest)


def _check_file(path: Path, want: dict[str, Any], unit: str, copy: Path | None) -> None:
    """Check a unit's file against its signed size and SHA-256, reading it once and, with
    ``copy``, writing what was read there: the copy holds exactly the bytes checked, and
    never more than the signed size."""
    fd = _open_file(path, path.name, unit=unit)
    with os.fdopen(fd, "rb") as f:
        if os.fstat(f.fileno()).st_size != want["bytes"]:
            raise FeedError(f"{path.name} does not match its size in the signed manifest "
                            "(changed or truncated)", unit=unit)
        h, left = hashlib.sha256(), want["bytes"] + 1
        out = open(copy, "xb") if copy is not None else None  # noqa: SIM115 - closed below
        try:
            while left and (chunk := f.read(min(_CHUNK, left))):
                left -= len(chunk)
                h.update(chunk)
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
    if left != 1 or h.hexdigest() != want["sha256"]:
        raise FeedError(f"{path.name} does not match its SHA-256 in the signed manifest "
                        "(changed or truncated)", unit=unit)


def verify_unit(directory: Path, name: str, trusted: Any, feed_id: str,
                at_version: int, *, into: Path | None = None) -> _Unit:
    """A unit of the feed in ``directory``, checked: its manifest signed by ``trusted``,
    of feed ``feed_id``, starting at ``at_version``, every file its hash and size. The
    signature is checked first, and only the files it names, each at most its signed
    size, are read. With ``into`` (a private directory), each file is copied there as it
    is hashed and the copy is returned, so that nobody who can write the feed's directory
    can change a file between its check and its use.

    Raises:
        FeedError: with the reason, if any check fails.
    """
    if not _UNIT_NAME.fullmatch(name):
        raise FeedError("feed.json names this unit, but it is not a unit name", unit=name)
    path = directory / name
    body = _read_small(path / "manifest.json", MANIFEST_LIMIT, "manifest.json", unit=name)
    signature = _read_small(path / "manifest.sig", SIGNATURE_BYTES, "manifest.sig",
                            unit=name)
    manifest = _signed_manifest(body, signature, trusted, name)
    if manifest.get("feed_id") != feed_id:
        raise FeedError(f"belongs to feed {str(manifest.get('feed_id'))[:40]}, not this "
                        f"replica's ({feed_id})", unit=name)
    start, end = manifest["from_version"], manifest["to_version"]
    if start != at_version:
        raise FeedError(f"covers versions {start} to {end}, but the replica is at "
                        f"{at_version}: a unit is missing or out of order", unit=name)
    for file, want in manifest["files"].items():
        if not os.path.lexists(path / file):
            raise FeedError(f"{file} is missing", unit=name)
        try:
            _check_file(path / file, want, name, into / file if into is not None else None)
        except OSError as e:
            raise FeedError(f"cannot copy {file} ({type(e).__name__}: {e.strerror})",
                            unit=name) from None
    return _Unit(name, into if into is not None else path, manifest)


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """What :func:`sync` applied: the units, and the replica's version after."""

    applied: tuple[str, ...]
    version: ListVersion
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"applied": list(self.applied), "version": self.version.as_dict(),
                "seconds": self.seconds}


def init_replica(path: str | os.PathLike[str], source: str | os.PathLike[str],
                 trust: str | os.PathLike[str], *, token: str = "",
                 seal_key: str | os.PathLike[str] | None = None,
                 **open_options: Any) -> Any:
    """Make a replica at ``path`` (a new index file) of the feed in ``source`` (a
    directory, or the ``/v1/feed`` URL of a service, with an API ``token``), trusting the
    public key in the file ``trust``, and bring it to the feed's last version. Returns the
    open replica: an :class:`sltd.Index`, or for a sealed feed (with its ``seal_key``
    file) a :class:`sltd.sealed.SealedReplica`.

    Raises:
        FeedError: the feed is refused (the file is then removed: nothing half made); a
            sealed feed without its seal key.
        IndexStateError: ``path`` exists.
    """
    from sltd.index import open_index
    from sltd.sealed import SEAL_KEY_PATH, SEALED_FEED, SealedReplica, read_seal_key

    if Path(path).exists():
        raise IndexStateError(f"{path} exists; a replica is made in a new file", path=path)
    try:
        pem = Path(trust).read_bytes()
    except OSError as e:
        raise FeedError(f"cannot read the trusted key {trust}: {e.strerror}") from None
    trusted = _public_key(pem, str(trust))
    cache = Path(f"{path}.feed")
    directory = _mirror(str(source), token, cache, 0, trusted) if is_url(source) \
        else Path(source)
    known = _feed_index(directory)
    if known is None:
        raise FeedError(f"{directory} holds no feed (no feed.json)")
    if known["sealed"] and seal_key is None:
        raise FeedError(f"{directory} holds a sealed feed: a replica of it needs its seal "
                        "key (--seal-key)")
    if seal_key is not None and known["sealed"] != read_seal_key(seal_key).id:
        raise FeedError(f"{directory} holds a feed " + (
            f"sealed under another seal key ({known['sealed']})" if known["sealed"]
            else "that is not sealed") + f", not one sealed under {seal_key}")
    index: Any = SealedReplica(path, seal_key=seal_key, create=True, **open_options) \
        if seal_key is not None else open_index(path, create=True, **open_options)
    try:
        with index._db.write() as con:
            store.set_meta(con, REPLICA_FEED, known["feed_id"])
            store.set_meta(con, REPLICA_TRUST, pem.decode())
            store.set_meta(con, REPLICA_SOURCE, str(source) if is_url(source)
                           else os.fspath(Path(source).resolve()))
            if seal_key is not None:
                store.set_meta(con, SEALED_FEED, known["feed_id"])
                store.set_meta(con, SEAL_KEY_PATH, index.seal_key_path)
        if seal_key is None:
            index._s.replica_of = known["feed_id"]
        sync(index, directory)
    except BaseException:
        index.close()
        for p in (Path(path), Path(f"{path}.wal"), Path(f"{path}.keys")):
            p.unlink(missing_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        raise
    return index


def sync(index: Index | SealedReplica, source: str | os.PathLike[str] | None = None, *,
         token: str = "") -> SyncReport:
    """Apply to a replica the units of its feed (in ``source``, a directory or a service's
    ``/v1/feed`` URL with an API ``token``; default: where it was made from) that follow
    its version, in order, each checked first (:func:`verify_unit`) and applied in one
    transaction. Units it already has are skipped; the first refused one stops the sync
    (the units before it stay applied).

    Raises:
        FeedError: a unit refused, or a feed older than the replica (a replay).
        IndexStateError: the index is not a replica.
    """
    with _sync_lock(index):
        return _sync(index, source, token)


_SYNC_LOCKS: dict[str, threading.Lock] = {}
_SYNC_LOCKS_GUARD = threading.Lock()


def _sync_lock(index: Index | SealedReplica) -> threading.Lock:
    """One sync of a replica at a time in this process (the replica's file admits no
    other process): two would clean each other's private copies."""
    with _SYNC_LOCKS_GUARD:
        return _SYNC_LOCKS.setdefault(os.path.abspath(index.path), threading.Lock())


def _sync(index: Index | SealedReplica, source: str | os.PathLike[str] | None, token: str
          ) -> SyncReport:
    from sltd.sealed import SealedReplica

    start = time.perf_counter()
    con = index._db.cursor()
    feed_id = store.get_meta(con, REPLICA_FEED)
    if not feed_id:
        raise IndexStateError(f"{index.path} is not a replica (make one with sltd replica "
                              "init)", path=index.path)
    trusted = _public_key((store.get_meta(con, REPLICA_TRUST) or "").encode(), "of the replica")
    where = str(source) if source is not None else store.get_meta(con, REPLICA_SOURCE) or "."
    version = store.current_version(con).version
    directory = _mirror(where, token, Path(f"{index.path}.feed"), version, trusted) \
        if is_url(where) else Path(where)
    known = _feed_index(directory)
    if known is None:
        raise FeedError(f"{directory} holds no feed (no feed.json)")
    if known["feed_id"] != feed_id:
        raise FeedError(f"{directory} holds feed {known['feed_id']}, not this replica's "
                        f"({feed_id})")
    newest = known["units"][-1][2] if known["units"] else 0
    if newest < version:
        raise FeedError(f"{directory} is at list version {newest}, older than this replica "
                        f"({version}): an old copy of the feed; nothing applied")
    applied = []
    # units are checked and applied from a private copy beside the replica; a killed sync
    # leaves its copy, removed here (this process owns the replica file, and holds its
    # sync lock, so no other sync of it is running)
    here = Path(os.path.abspath(index.path)).parent
    staging = f".{Path(index.path).name}.unit."
    for left in here.glob(f"{staging}*"):
        shutil.rmtree(left, ignore_errors=True)
    for name, first, end in known["units"]:
        if end < version or (end == version and first < end):
            continue  # applied before
        private = Path(tempfile.mkdtemp(prefix=staging, dir=here))
        try:
            unit = verify_unit(directory, name, trusted, feed_id, version, into=private)
            seal = unit.manifest.get("sealed")
            if isinstance(index, SealedReplica):
                if seal is None or seal["seal_key_id"] != index.key.id:
                    raise FeedError("not sealed under this replica's seal key "
                                    f"({index.key.id})", unit=name)
            elif seal is not None:
                raise FeedError("a sealed unit: only a sealed replica (replica init "
                                "--seal-key) applies it", unit=name)
            if unit.manifest["to_version"] == version:
                continue  # the snapshot of an empty list (verified: it holds no rows)
            if isinstance(index, SealedReplica):
                index.apply(unit, version)
            else:
                _apply(index, unit, version)
        finally:
            shutil.rmtree(private, ignore_errors=True)
        applied.append(name)
        version = unit.to_version.version
    return SyncReport(tuple(applied), index.list_version, time.perf_counter() - start)


def _apply(index: Index, unit: _Unit, at_version: int) -> None:
    """Apply a verified unit as one load: its records, its withdrawals, its version; only
    onto ``at_version``, the version it starts from (checked inside the load's
    transaction)."""
    files = unit.manifest["files"]
    source = unit.path / ("records.parquet" if "records.parquet" in files
                          else "upserts.parquet")
    withdrawals = pq.read_table(unit.path / "withdrawals.parquet") \
        if "withdrawals.parquet" in files else None
    loader.load(index._db, index._s.audit, index._s.keys, os.fspath(source),
                now=index.clock.now(), officer=f"feed {unit.manifest['feed_id']}",
                ncb=index.home_ncb, withdrawals=withdrawals, as_version=unit.to_version,
                change="sync", strict=True, onto=at_version)
