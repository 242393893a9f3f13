"""Bulk screening: manifest rows per second against baselines in the same run.

Exact screening of an N-row manifest (about 0.1% listed documents) against an index of M
records, Parquet in, Parquet out, end to end; near-miss screening on a slice; baselines:
a per-row loop over the library's single check, and SQLite (load the manifest into a
table, join on number/type/country with the composite index). Peak RSS is reported for
the bounded-memory claim.

    python bench/screening.py --records 10000000 --manifest 10000000
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    build_sqlite,
    machine,
    peak_rss_gib,
    print_table,
    ratio,
    records_parquet,
)

from sltd import open_index  # noqa: E402
from sltd.synth import synth_manifest, write_table  # noqa: E402


def manifest_parquet(n: int, records: int) -> Path:
    path = DATA / f"manifest_{n}_{records}.parquet"
    if not path.exists():
        write_table(synth_manifest(pq.read_table(records_parquet(records)), n, seed=9), path)
    return path


def index_for(records: int):
    db = DATA / f"bench_{records}.duckdb"
    if not db.exists():
        with open_index(db, create=True) as ix:
            ix.load(records_parquet(records))
    return open_index(db)


def sqlite_join(records: int, manifest: Path, limit: int | None) -> tuple[float, int, int]:
    db = DATA / f"bench_{records}.sqlite"
    if not db.exists():  # check_latency.py builds it; run alone, build it here
        build_sqlite(records_parquet(records), db)[0].close()
    con = sqlite3.connect(db)
    pf = pq.ParquetFile(manifest)
    t = time.perf_counter()
    con.execute("CREATE TEMP TABLE m (row INTEGER, number TEXT, doc_type TEXT, country TEXT)")
    n = 0
    for batch in pf.iter_batches(batch_size=200_000, columns=[
            "document_number", "document_type", "issuing_country"]):
        cols = [batch.column(i).to_pylist() for i in range(3)]
        con.executemany("INSERT INTO m VALUES (?, ?, ?, ?)",
                        zip(range(n + 1, n + batch.num_rows + 1), *cols, strict=True))
        n += batch.num_rows
        if limit and n >= limit:
            break
    hits = con.execute("""SELECT count(*) FROM m JOIN records r ON r.number = m.number
                          AND r.doc_type = m.doc_type AND r.country = m.country""").fetchall()
    secs = time.perf_counter() - t
    con.close()
    return secs, n, hits[0][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--manifest", type=int, default=10_000_000)
    ap.add_argument("--loop-rows", type=int, default=200_000,
                    help="rows for the per-row loop baseline")
    ap.add_argument("--near-rows", type=int, default=100_000,
                    help="rows for near-miss screening")
    ap.add_argument("--no-baselines", action="store_true",
                    help="screening and peak RSS only (e.g. for a 50M-row manifest)")
    args = ap.parse_args()
    print(machine())
    # generated in a child process, so this process's peak RSS is the screening's own
    with ProcessPoolExecutor(1) as pool:
        manifest = pool.submit(manifest_parquet, args.manifest, args.records).result()
    ix = index_for(args.records)
    out = DATA / "screen_out.parquet"
    _, rep = ix.screen(manifest, out=out, keep=["passenger_id"], exact_only=True)
    exact_rps = rep.rows_per_second
    label = f"{args.manifest / 1e6:g}M x {args.records / 1e6:g}M"
    if args.no_baselines:
        ix.close()
        print_table([
            (f"[{label}] exact screening, rows/s (Parquet in/out)", f"{exact_rps:,.0f}",
             "-", "-"),
            (f"[{label}] exact screening wall time", f"{rep.seconds:.1f} s", "-", "-"),
            (f"[{label}] hits (exact / partial)",
             f"{rep.hits.get('exact', 0)} / {rep.hits.get('partial', 0)}", "-", "-"),
            ("peak RSS of this process", f"{peak_rss_gib():.1f} GiB", "-", "-"),
        ], "Bulk screening, no baselines")
        return
    # per-row loop over the library's single check (exact), on a slice
    rows = pq.read_table(manifest, columns=["document_number", "document_type",
                                            "issuing_country"]).slice(0, args.loop_rows)
    cols = [rows.column(i).to_pylist() for i in range(3)]
    t = time.perf_counter()
    for number, doc_type, country in zip(*cols, strict=True):
        ix.check(number, doc_type, country, exact_only=True)
    loop_rps = args.loop_rows / (time.perf_counter() - t)
    sq_secs, sq_n, sq_hits = sqlite_join(args.records, manifest, None)
    sqlite_rps = sq_n / sq_secs if sq_n else float("nan")
    near_slice = pq.read_table(manifest).slice(0, args.near_rows)
    _, near = ix.screen(near_slice, keep=["passenger_id"])
    ix.close()
    table = [
        (f"[{label}] exact screening, rows/s (Parquet in/out)", f"{exact_rps:,.0f}",
         f"{sqlite_rps:,.0f} (SQLite join)", ratio(1 / sqlite_rps, 1 / exact_rps)),
        (f"[{label}] exact screening vs per-row check loop", f"{exact_rps:,.0f}",
         f"{loop_rps:,.0f} (loop)", ratio(1 / loop_rps, 1 / exact_rps)),
        (f"[{label}] exact screening wall time", f"{rep.seconds:.1f} s",
         f"{sq_secs:.1f} s (SQLite)", "-"),
        (f"[{label}] hits (exact / partial)",
         f"{rep.hits.get('exact', 0)} / {rep.hits.get('partial', 0)}",
         f"{sq_hits} exact (SQLite)", "-"),
        (f"[{args.near_rows / 1e6:g}M rows] near-miss screening, rows/s",
         f"{near.rows_per_second:,.0f}", "-", "-"),
        ("peak RSS of this process", f"{peak_rss_gib():.1f} GiB", "-", "-"),
    ]
    print_table(table, "Bulk screening (baselines: SQLite join, per-row check loop)")


if __name__ == "__main__":
    main()
