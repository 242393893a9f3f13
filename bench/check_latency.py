"""Single-document check latency: sltd against SQLite with a composite index.

For each index size, builds the sltd index from Parquet and a SQLite table with an index
on (number, type, country), then times sequential checks of unlisted documents (the
common case), listed ones, and sltd's default check with near-miss search. Both sides do
the same per-query work: canonicalize the number, then look it up and return first-level
fields (SQLite by number, which its composite index serves as a prefix).

    python bench/check_latency.py               # 1M and 10M records
    python bench/check_latency.py --sizes 100000 --queries 2000   # quick
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    fmt_us,
    latencies,
    machine,
    pct,
    print_table,
    ratio,
    records_parquet,
    sample_queries,
)

from sltd import canonical_number, open_index  # noqa: E402


def build_sltd(path: Path, n: int) -> tuple[object, float]:
    db = DATA / f"bench_{n}.duckdb"
    for f in (db, Path(str(db) + ".wal")):
        f.unlink(missing_ok=True)
    t = time.perf_counter()
    index = open_index(db, create=True)
    index.load(path)
    return index, time.perf_counter() - t


def build_sqlite(path: Path, n: int) -> tuple[sqlite3.Connection, float]:
    db = DATA / f"bench_{n}.sqlite"
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


def run(n: int, k: int) -> list[tuple[str, str, str, str]]:
    path = records_parquet(n)
    listed, unlisted = sample_queries(path, k)
    index, sltd_build = build_sltd(path, n)
    sq, sqlite_build = build_sqlite(path, n)
    cur = sq.cursor()
    sql = "SELECT number, doc_type, country FROM records WHERE number = ?"

    def sqlite_check(q):
        return cur.execute(sql, (canonical_number(q[0]),)).fetchall()

    def sltd_exact(q):
        return index.check(q[0], q[1], q[2], exact_only=True)

    def sltd_default(q):
        return index.check(q[0], q[1], q[2])

    assert all(index.check(*q, exact_only=True) for q in listed[:50])
    assert all(sqlite_check(q) for q in listed[:50])
    miss_s, miss_b = latencies(sltd_exact, unlisted), latencies(sqlite_check, unlisted)
    hit_s, hit_b = latencies(sltd_exact, listed[:2000]), latencies(sqlite_check, listed[:2000])
    near_s = latencies(sltd_default, unlisted[:3000])
    near_hit = latencies(sltd_default, [(q[0][:-1] + ("0" if q[0][-1] != "0" else "1"), *q[1:])
                                        for q in listed[:1000]])
    per = index.key_set_bytes / len(index)
    label = f"{n / 1e6:g}M"
    rows = [
        (f"[{label}] exact check, miss p50", fmt_us(pct(miss_s, 50)), fmt_us(pct(miss_b, 50)),
         ratio(pct(miss_b, 50), pct(miss_s, 50))),
        (f"[{label}] exact check, miss p99", fmt_us(pct(miss_s, 99)), fmt_us(pct(miss_b, 99)),
         ratio(pct(miss_b, 99), pct(miss_s, 99))),
        (f"[{label}] exact checks/s (1 thread, misses)", f"{len(miss_s) / sum(miss_s):,.0f}",
         f"{len(miss_b) / sum(miss_b):,.0f}", ratio(sum(miss_b), sum(miss_s))),
        (f"[{label}] exact check, hit p50", fmt_us(pct(hit_s, 50)), fmt_us(pct(hit_b, 50)),
         ratio(pct(hit_b, 50), pct(hit_s, 50))),
        (f"[{label}] exact check, hit p99", fmt_us(pct(hit_s, 99)), fmt_us(pct(hit_b, 99)),
         ratio(pct(hit_b, 99), pct(hit_s, 99))),
        (f"[{label}] default check (near-miss on), miss p50", fmt_us(pct(near_s, 50)), "-",
         "-"),
        (f"[{label}] default check, one-edit hit p50", fmt_us(pct(near_hit, 50)), "-", "-"),
        (f"[{label}] build from Parquet", f"{sltd_build:.1f} s", f"{sqlite_build:.1f} s",
         ratio(sqlite_build, sltd_build)),
        (f"[{label}] in-memory key sets", f"{per:.1f} B/record", "0 (on disk)", "-"),
    ]
    index.close()
    sq.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000",
                    help="comma-separated record counts")
    ap.add_argument("--queries", type=int, default=20000, help="queries per kind")
    args = ap.parse_args()
    print(machine())
    rows = []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        rows += run(n, args.queries)
    print_table(rows, "Single-document check latency (baseline: SQLite, composite index)")


if __name__ == "__main__":
    main()
