"""Shared helpers for the benchmark scripts: data generation, timing, table printing."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sltd import open_index
from sltd.keyhash import key_hashes
from sltd.normalize import fold_number
from sltd.synth import (
    SHAPES,
    random_numbers,
    shape_for,
    synth_manifest,
    synth_records,
    write_synth,
    write_table,
)

DATA = Path(os.environ.get("SLTD_BENCH_DATA", Path(__file__).parent / "data"))


def records_parquet(n: int, seed: int = 7) -> Path:
    """Synthetic records of size ``n`` as Parquet, generated once and cached in bench/data."""
    path = DATA / f"records_{n}_{seed}.parquet"
    if not path.exists():
        write_table(synth_records(n, seed=seed), path)
    return path


def ranges_parquet(n: int, seed: int = 7, *, manifest_rows: int | None = None,
                   listed: float = 0.001) -> tuple[Path, Path | None]:
    """Ranges-numbered synthetic records of size ``n`` (each issuer's sequential ranges,
    dates following the serial, stolen-blank batches; see sltd/issuance.py) as Parquet,
    and with ``manifest_rows`` a manifest of that many passengers (``listed`` of them
    carrying listed documents, the others clean documents from the same ranges, every
    row with its document's true issue and expiry dates and a ``listed`` column);
    generated once and cached in bench/data.

    Both stream, so a 130M-record world fits: the records are written batch by batch
    (0.5 GiB peak whatever n; ~1.3M records/s here), and the manifest reads them back
    batch by batch (the manifest itself is built in memory, ~100 B per passenger). A
    file appears only once complete.
    """
    path = DATA / f"ranges_{n}_{seed}.parquet"
    if not path.exists():
        write_synth(path, n, seed=seed, numbering="ranges")
    if manifest_rows is None:
        return path, None
    manifest = DATA / f"ranges_manifest_{manifest_rows}_{listed:g}_{n}_{seed}.parquet"
    if not manifest.exists():
        partial = manifest.with_name(manifest.name + ".partial")
        write_table(synth_manifest(path, manifest_rows, listed=listed, seed=seed + 1), partial)
        os.replace(partial, manifest)
    return path, manifest


def sample_queries(path: Path, k: int, seed: int = 1) -> tuple[list[tuple], list[tuple]]:
    """``k`` listed (number, type, country) and ``k`` unlisted ones of realistic shapes."""
    t = pq.read_table(path, columns=["document_number", "document_type", "issuing_country"])
    rng = np.random.default_rng(seed)
    idx = rng.choice(t.num_rows, size=min(k, t.num_rows), replace=False)
    rows = t.take(idx).to_pylist()
    listed = [(r["document_number"], r["document_type"], r["issuing_country"]) for r in rows]
    all_numbers = set(t.column("document_number").to_pylist()) if t.num_rows <= 2_000_000 \
        else None
    unlisted = []
    for _number, doc_type, country in listed:
        candidate = random_numbers(rng, shape_for(country, doc_type), 1)[0].decode()
        if all_numbers is not None and candidate in all_numbers:
            continue
        unlisted.append((candidate, doc_type, country))
    return listed, unlisted


def latencies(fn: Callable[[tuple], object], queries: Iterable[tuple], warmup: int = 200
              ) -> list[float]:
    qs = list(queries)
    for q in qs[:warmup]:
        fn(q)
    out = []
    clock = time.perf_counter
    for q in qs:
        t = clock()
        fn(q)
        out.append(clock() - t)
    return out


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def fmt_us(s: float) -> str:
    return f"{s * 1e6:,.1f} µs" if s < 1e-3 else f"{s * 1e3:,.2f} ms"


def machine() -> str:
    import duckdb
    import rapidfuzz

    return (f"{platform.machine()} {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
            f"Python {platform.python_version()}, duckdb {duckdb.__version__}, "
            f"numpy {np.__version__}, rapidfuzz {rapidfuzz.__version__}")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def print_table(rows: list[tuple[str, str, str, str]], title: str) -> None:
    head = ("figure", "sltd", "baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def ratio(baseline: float, ours: float) -> str:
    return f"{baseline / ours:,.1f}x" if ours > 0 else "-"


_BUILD = """
import sys, time, resource
from sltd import open_index
t = time.perf_counter()
ix = open_index(sys.argv[1], create=True)
ix.load(sys.argv[2])
loaded = time.perf_counter() - t
ix.check("X0000000", exact_only=True)  # builds the key file
print(loaded, time.perf_counter() - t,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
ix.close()
"""


def build_sltd(path: Path, db: Path) -> tuple[Path, float, float, float]:
    """Build the index ``db`` from the records file ``path`` in a child process: (db,
    load s, load + key file s, peak RSS GiB)."""
    for f in (db, Path(str(db) + ".wal"), Path(str(db) + ".keys")):
        f.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c", _BUILD, str(db), str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"building {db} failed:\n{done.stderr}")
    out = done.stdout.split()
    return db, float(out[0]), float(out[1]), float(out[2])


def open_time(db: Path) -> tuple[object, float]:
    t = time.perf_counter()
    index = open_index(db)
    index.check("X0000000", exact_only=True)  # maps the key file
    return index, time.perf_counter() - t


def process_time(db: Path, number: str, runs: int = 5) -> float:
    """Median wall time of ``sltd check`` as a whole process (start, open, check, exit)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "sltd", "--db", str(db), "check",
                               number], check=False, capture_output=True)
        if done.returncode not in (0, 1):  # 0 not listed, 1 hit
            raise RuntimeError(done.stderr.decode())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def false_positives(index, k: int = 1_000_000, seed: int = 5) -> tuple[int, int, int]:
    """(absent structured numbers probed, passed the key set unlisted, listed)."""
    rng = np.random.default_rng(seed)
    shapes = sorted(set(SHAPES.values()))
    numbers = np.concatenate([random_numbers(rng, sh, k // len(shapes) + 1)
                              for sh in shapes])[:k]
    folds = pa.array([fold_number(b.decode()) for b in numbers.tolist()], pa.string())
    snap = index._s.keys.snapshot()
    passed = np.flatnonzero(snap.present(key_hashes(folds)))
    listed = {r[0] for r in snap.rows(folds.take(pa.array(passed)).to_pylist())}
    fp = sum(1 for f in folds.take(pa.array(passed)).to_pylist() if not snap.rows([f]))
    return k, fp, len(listed)


def build_sqlite(path: Path, db: Path) -> tuple[sqlite3.Connection, float]:
    """The baseline: a SQLite file with the records and a composite index on (number,
    type, country); (connection, build seconds)."""
    db.unlink(missing_ok=True)
    t = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE records (number TEXT, doc_type TEXT, country TEXT, status TEXT)")
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=200_000, columns=[
            "document_number", "document_type", "issuing_country", "status"]):
        con.executemany("INSERT INTO records VALUES (?, ?, ?, ?)",
                        zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True))
    con.execute("CREATE INDEX records_key ON records (number, doc_type, country)")
    con.commit()
    return con, time.perf_counter() - t
