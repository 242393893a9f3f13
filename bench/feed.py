"""The signed feed and a replica (sltd.feed), 10M records: snapshot publish, a 100k-change
delta published and applied to a 10M replica, and checks on the replica; next to a bare
DuckDB COPY of the records to Parquet (the floor of a snapshot) in the same run.

    python bench/feed.py                       # 10M records
    python bench/feed.py --records 100000      # quick
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    build_sltd,
    fmt_us,
    latencies,
    machine,
    pct,
    print_table,
    records_parquet,
    sample_queries,
)

from sltd import Index, open_index  # noqa: E402
from sltd.feed import init_replica, new_key, publish, sync  # noqa: E402

UPDATES, NEW, WITHDRAWN = 89_000, 10_000, 1_000  # a 100k-change delta


def change_100k(ix: Index, path: Path) -> None:
    """The 100k changes of a delta: updates, new records, withdrawals, on the index of
    the records in ``path``."""
    records_ = pq.read_table(path)
    status = records_.column("status").to_pylist()[:UPDATES]
    updates = records_.slice(0, UPDATES).set_column(
        records_.schema.get_field_index("status"), "status",
        pa.array(["lost" if s == "revoked" else "revoked" for s in status]))
    new = records_.slice(UPDATES, NEW).set_column(
        0, "document_number", pa.array([f"NEWFEED{i:07d}" for i in range(NEW)]))
    gone = records_.slice(UPDATES + NEW, WITHDRAWN)
    ix.load(pa.concat_tables([updates, new]))
    for number, doc_type, country in zip(
            *(gone.column(c).to_pylist() for c in ("document_number", "document_type",
                                                   "issuing_country")), strict=True):
        ix.withdraw(number, doc_type, country)


def run(n: int) -> list[tuple]:
    path = records_parquet(n)
    listed, unlisted = sample_queries(path, 15_500)
    src, *_ = build_sltd(path, DATA / f"bench_{n}.duckdb")
    work = Path(tempfile.mkdtemp(dir=DATA, prefix="feed."))
    try:
        db = work / "source.duckdb"
        shutil.copy(src, db)
        if Path(f"{src}.keys").exists():
            shutil.copy(f"{src}.keys", f"{db}.keys")
        label = f"{n / 1e6:g}M"
        con = duckdb.connect(str(db), read_only=True)
        t = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM records) TO '{work / 'bare.parquet'}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        bare = time.perf_counter() - t
        con.close()
        key, pub = new_key(work / "feed.key")
        with open_index(db) as ix:
            snap = publish(ix, work / "feed", key)
        t = time.perf_counter()
        replica = init_replica(work / "post.duckdb", work / "feed", pub)
        init = time.perf_counter() - t
        replica.close()
        with open_index(db) as ix:
            change_100k(ix, path)
            delta = publish(ix, work / "feed", key)
            version = ix.list_version.version
        with open_index(work / "post.duckdb") as replica:
            t = time.perf_counter()
            sync(replica)
            apply = time.perf_counter() - t
            assert replica.list_version.version == version
            mix = unlisted[:20_000] + listed[:2]
            on_replica = latencies(lambda q: replica.check(*q, exact_only=True), mix)
        with open_index(db) as ix:
            on_source = latencies(lambda q: ix.check(*q, exact_only=True), mix)
        return [
            (f"[{label}] snapshot publish ({snap.records:,} records, signed)",
             f"{snap.seconds:.1f} s", f"{bare:.1f} s (bare DuckDB COPY to Parquet)",
             f"{snap.seconds / bare:.1f}x"),
            (f"[{label}] replica init from the snapshot (verify + first load)",
             f"{init:.1f} s", "-", "-"),
            (f"[{label}] delta publish: {UPDATES:,} updates, {NEW:,} new, {WITHDRAWN:,} "
             f"withdrawn ({delta.records:,} + {delta.withdrawals:,} rows)",
             f"{delta.seconds:.2f} s", "-", "-"),
            (f"[{label}] the delta applied to the {label} replica (verify + one transaction)",
             f"{apply:.2f} s", "-", "-"),
            (f"[{label}] exact check on the replica vs the source, p50 / p99 / mean",
             f"{fmt_us(pct(on_replica, 50))} / {fmt_us(pct(on_replica, 99))} / "
             f"{fmt_us(sum(on_replica) / len(on_replica))}",
             f"{fmt_us(pct(on_source, 50))} / {fmt_us(pct(on_source, 99))} / "
             f"{fmt_us(sum(on_source) / len(on_source))}",
             f"{pct(on_replica, 50) / pct(on_source, 50):.2f}x"),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    args = ap.parse_args()
    print(machine())
    print_table(run(args.records), "sltd feed and replica (baseline: same run)")


if __name__ == "__main__":
    main()
