"""Single-document check latency: sltd against SQLite with a composite index.

For each index size, builds the sltd index from Parquet (in a child process: wall time
and peak RSS of the load plus the key file) and a SQLite table with an index on (number,
type, country), then times: opening the index (``open_index`` + the first check, which
maps the key file) and ``sltd check`` as a whole process; sequential checks of unlisted
documents of structured shapes (the common case; p50, p99 and mean, audit included),
listed ones, and sltd's default check with near-miss search. Both sides do the same
per-query work: canonicalize the number, then look it up and return first-level fields
(SQLite by number, which its composite index serves as a prefix). Last, 10^6 absent
structured numbers are probed against the key set: how many pass it without being listed
(hash false positives; each would cost a lookup, never a wrong answer).

    python bench/check_latency.py               # 1M and 10M records
    python bench/check_latency.py --sizes 100000 --queries 2000   # quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    build_sltd,
    build_sqlite,
    false_positives,
    fmt_us,
    latencies,
    machine,
    open_time,
    pct,
    print_table,
    process_time,
    ratio,
    records_parquet,
    sample_queries,
)

from sltd import canonical_number  # noqa: E402


def run(n: int, k: int) -> list[tuple[str, str, str, str]]:
    path = records_parquet(n)
    listed, unlisted = sample_queries(path, k)
    db, sltd_load, sltd_build, build_rss = build_sltd(path, DATA / f"bench_{n}.duckdb")
    process = process_time(db, unlisted[0][0])  # before this process holds the file
    index, opened = open_time(db)
    sq, sqlite_build = build_sqlite(path, DATA / f"bench_{n}.sqlite")
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
    probed, fp, listed = false_positives(index)
    label = f"{n / 1e6:g}M"
    rows = [
        (f"[{label}] exact check, miss p50", fmt_us(pct(miss_s, 50)), fmt_us(pct(miss_b, 50)),
         ratio(pct(miss_b, 50), pct(miss_s, 50))),
        (f"[{label}] exact check, miss p99", fmt_us(pct(miss_s, 99)), fmt_us(pct(miss_b, 99)),
         ratio(pct(miss_b, 99), pct(miss_s, 99))),
        (f"[{label}] exact check, miss mean (audited)", fmt_us(statistics.fmean(miss_s)),
         fmt_us(statistics.fmean(miss_b)),
         ratio(statistics.fmean(miss_b), statistics.fmean(miss_s))),
        (f"[{label}] exact checks/s (1 thread, misses)", f"{len(miss_s) / sum(miss_s):,.0f}",
         f"{len(miss_b) / sum(miss_b):,.0f}", ratio(sum(miss_b), sum(miss_s))),
        (f"[{label}] exact check, hit p50", fmt_us(pct(hit_s, 50)), fmt_us(pct(hit_b, 50)),
         ratio(pct(hit_b, 50), pct(hit_s, 50))),
        (f"[{label}] exact check, hit p99", fmt_us(pct(hit_s, 99)), fmt_us(pct(hit_b, 99)),
         ratio(pct(hit_b, 99), pct(hit_s, 99))),
        (f"[{label}] default check (near-miss on), miss p50", fmt_us(pct(near_s, 50)), "-",
         "-"),
        (f"[{label}] default check, listed number with one edit (a lead) p50",
         fmt_us(pct(near_hit, 50)), "-", "-"),
        (f"[{label}] build from Parquet (load + key file)",
         f"{sltd_build:.1f} s ({sltd_load:.1f} + {sltd_build - sltd_load:.1f})",
         f"{sqlite_build:.1f} s", ratio(sqlite_build, sltd_build)),
        (f"[{label}] build peak RSS", f"{build_rss:.2f} GiB", "-", "-"),
        (f"[{label}] open the index (open + first check, key file mapped)",
         f"{opened * 1e3:.0f} ms", "-", "-"),
        (f"[{label}] `sltd check` as a whole process (median of 5)",
         f"{process * 1e3:.0f} ms", "-", "-"),
        (f"[{label}] in-memory key structures", f"{per:.1f} B/record", "0 (on disk)", "-"),
        (f"[{label}] absent structured numbers passing the key set",
         f"{fp} of {probed:,} ({listed} listed)", "-", "-"),
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
