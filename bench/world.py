"""The world's list on this machine: 130M records numbered the way issuers number them.

INTERPOL's SLTD held ~128 million records in 2023; a national copy holds all of them. This
run generates a ranges-numbered list of ``--records`` (default 130M: sequential ranges per
issuer, issue dates following the serial, 1.6-5.8% of a range listed, stolen-blank
batches; see :mod:`sltd.issuance`) and a manifest of clean documents drawn from the same
ranges, then measures:

- building the index from Parquet (load + key file), wall time and peak RSS, in a child
  process; opening it again (open + first check); ``sltd check`` as a whole process;
- exact checks of clean documents (misses) and of listed ones (hits), and the default
  check (near misses on) of clean documents: p50, p99, mean, audit included;
- exact screening of the ``--manifest``-row manifest (Parquet in and out);
- the same checks against SQLite with a composite index, built in the same run
  (``--no-sqlite`` skips it: ~10 min at 130M).

Data goes to bench/data (generated once, ~25 GB at 130M with SQLite). Not part of
``run.py``: ``python bench/run.py --world`` runs it.

    python bench/world.py                       # 130M records, 10M-row manifest
    python bench/world.py --records 2000000 --manifest 1000000   # a quick rehearsal
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    build_sltd,
    build_sqlite,
    fmt_us,
    latencies,
    machine,
    open_time,
    pct,
    print_table,
    process_time,
    ranges_parquet,
    ratio,
)

from sltd import canonical_number  # noqa: E402


def sample_listed(records: Path, k: int, seed: int = 1) -> list[tuple[str, str, str]]:
    """``k`` listed keys, from row groups drawn at random (not the whole file)."""
    pf = pq.ParquetFile(records)
    rng = np.random.default_rng(seed)
    groups = rng.choice(pf.num_row_groups, size=min(20, pf.num_row_groups), replace=False)
    t = pf.read_row_groups(sorted(groups.tolist()), columns=[
        "document_number", "document_type", "issuing_country"])
    rows = t.take(pa.array(rng.choice(t.num_rows, size=min(k, t.num_rows), replace=False)))
    return list(zip(*(rows.column(i).to_pylist() for i in range(3)), strict=True))


def clean_documents(manifest: Path, k: int) -> list[tuple[str, str, str]]:
    t = pq.read_table(manifest, columns=["document_number", "document_type",
                                         "issuing_country", "listed"])
    t = t.filter(pc.invert(t.column("listed"))).slice(0, k)
    return list(zip(*(t.column(i).to_pylist() for i in range(3)), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=130_000_000)
    ap.add_argument("--manifest", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--no-sqlite", action="store_true", help="skip the SQLite baseline")
    args = ap.parse_args()
    print(machine(), flush=True)
    n = args.records
    t = time.perf_counter()
    records, manifest = ranges_parquet(n, manifest_rows=args.manifest)
    print(f"data ready in {time.perf_counter() - t:.0f} s", flush=True)
    db, load_s, build_s, build_rss = build_sltd(records, DATA / f"world_{n}.duckdb")
    print(f"built in {build_s:.0f} s (load {load_s:.0f} s), peak RSS {build_rss:.2f} GiB",
          flush=True)
    assert manifest is not None
    clean = clean_documents(manifest, args.queries)
    listed = sample_listed(records, min(args.queries, 5000))
    process = process_time(db, clean[0][0])
    index, opened = open_time(db)

    def exact(q):
        return index.check(q[0], q[1], q[2], exact_only=True)

    def default(q):
        return index.check(q[0], q[1], q[2])

    assert all(exact(q) for q in listed[:50]), "listed documents must hit"
    miss = latencies(exact, clean)
    hit = latencies(exact, listed)
    near = latencies(default, clean[:3000])
    out = DATA / "world_screen_out.parquet"
    _, rep = index.screen(manifest, out=out, keep=["passenger_id"], exact_only=True)
    per = index.key_set_bytes / len(index)
    index.close()
    label = f"{n / 1e6:g}M"
    rows = [
        (f"[{label}] build from Parquet (load + key file)",
         f"{build_s:.0f} s ({load_s:.0f} + {build_s - load_s:.0f})", "-", "-"),
        (f"[{label}] build peak RSS", f"{build_rss:.2f} GiB", "-", "-"),
        (f"[{label}] open the index (open + first check, key file mapped)",
         f"{opened * 1e3:.0f} ms", "-", "-"),
        (f"[{label}] `sltd check` as a whole process (median of 5)",
         f"{process * 1e3:.0f} ms", "-", "-"),
        (f"[{label}] in-memory key structures", f"{per:.1f} B/record", "-", "-"),
        (f"[{label}] default check (near-miss on), clean document p50 / p99",
         f"{fmt_us(pct(near, 50))} / {fmt_us(pct(near, 99))}", "-", "-"),
        (f"[{label}] exact screening, {args.manifest / 1e6:g}M-row manifest",
         f"{rep.rows_per_second:,.0f} rows/s ({rep.seconds:.1f} s)", "-", "-"),
    ]
    if args.no_sqlite:
        rows += [
            (f"[{label}] exact check, miss p50 / p99 / mean",
             f"{fmt_us(pct(miss, 50))} / {fmt_us(pct(miss, 99))} / "
             f"{fmt_us(statistics.fmean(miss))}", "-", "-"),
            (f"[{label}] exact check, hit p50 / p99", f"{fmt_us(pct(hit, 50))} / "
             f"{fmt_us(pct(hit, 99))}", "-", "-"),
        ]
    else:
        sq, sqlite_build = build_sqlite(records, DATA / f"world_{n}.sqlite")
        cur = sq.cursor()
        sql = "SELECT number, doc_type, country FROM records WHERE number = ?"

        def sqlite_check(q):
            return cur.execute(sql, (canonical_number(q[0]),)).fetchall()

        miss_b, hit_b = latencies(sqlite_check, clean), latencies(sqlite_check, listed)
        sq.close()
        for what, ours, base in (("miss", miss, miss_b), ("hit", hit, hit_b)):
            rows += [
                (f"[{label}] exact check, {what} p50", fmt_us(pct(ours, 50)),
                 fmt_us(pct(base, 50)), ratio(pct(base, 50), pct(ours, 50))),
                (f"[{label}] exact check, {what} p99", fmt_us(pct(ours, 99)),
                 fmt_us(pct(base, 99)), ratio(pct(base, 99), pct(ours, 99))),
                (f"[{label}] exact check, {what} mean", fmt_us(statistics.fmean(ours)),
                 fmt_us(statistics.fmean(base)),
                 ratio(statistics.fmean(base), statistics.fmean(ours))),
            ]
        rows.append((f"[{label}] build (SQLite: insert + composite index)",
                     f"{build_s:.0f} s", f"{sqlite_build:.0f} s",
                     ratio(sqlite_build, build_s)))
    print_table(rows, "The world's list (baseline: SQLite, composite index, same run)")


if __name__ == "__main__":
    main()
