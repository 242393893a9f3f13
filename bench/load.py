"""Loading records: build time and peak memory of a load, and a delta into a large index.

Each measurement runs in a fresh child process, so its peak RSS is the load's own:

- build: a Parquet file of N synthetic records into a new, empty index (``Index.load``);
- delta: 100k records (90% new, 10% changed statuses) into a copy of that index, once as
  a command does it (key sets never built) and once as a serving process does (key sets
  built first, so the load also publishes its new keys);
- baseline: bare DuckDB copying the same Parquet file into a table of a new file
  (``CREATE TABLE AS SELECT * FROM read_parquet``; no validation, no index): the floor
  that a load's reading, validation, upsert and ART indexes add to.

    python bench/load.py                      # 1M and 10M records (~2 min)
    python bench/load.py --sizes 100000       # quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import DATA, machine, peak_rss_gib, print_table, ratio, records_parquet  # noqa: E402

DELTA = 100_000


def delta_parquet(n: int) -> Path:
    """``DELTA`` records for an index built from ``records_parquet(n)``: 90% new keys, 10%
    of its records with another status."""
    from sltd.synth import synth_records

    path = DATA / f"load_delta_{n}.parquet"
    if not path.exists():
        changed = pq.ParquetFile(records_parquet(n)).read_row_group(0).slice(0, DELTA // 10)
        flip = pc.if_else(pc.equal(changed.column("status"), "lost"), "stolen", "lost")
        changed = changed.set_column(changed.column_names.index("status"), "status", flip)
        fresh = synth_records(DELTA - changed.num_rows, seed=1234)
        fresh = fresh.select(changed.column_names).cast(changed.schema)
        pq.write_table(pa.concat_tables([changed, fresh]), path)
    return path


def child(kind: str, n: int) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    import duckdb

    from sltd import open_index

    src = records_parquet(n)
    out: dict[str, float] = {}
    if kind == "build":
        db = fresh(DATA / f"load_{n}.duckdb")
        t = time.perf_counter()
        with open_index(db, create=True) as ix:
            rep = ix.load(src)
        out["seconds"] = time.perf_counter() - t
        assert rep.inserted == n, rep
    elif kind == "copy":
        db = fresh(DATA / f"load_{n}_copy.duckdb")
        t = time.perf_counter()
        con = duckdb.connect(str(db))
        con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(src)])
        con.close()
        out["seconds"] = time.perf_counter() - t
    elif kind in ("delta", "delta-keys"):
        db = fresh(DATA / f"load_{n}_delta.duckdb")
        shutil.copy(DATA / f"load_{n}.duckdb", db)
        with open_index(db) as ix:
            if kind == "delta-keys":
                ix.check("X1234567", "P", "FRA")  # builds the key sets, as a server has
            t = time.perf_counter()
            rep = ix.load(delta_parquet(n))
            out["seconds"] = time.perf_counter() - t
        assert rep.inserted + rep.updated == DELTA, rep
        assert rep.updated >= DELTA // 10, rep
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def fresh(db: Path) -> Path:
    for f in (db, Path(f"{db}.wal")):
        f.unlink(missing_ok=True)
    return db


def measure(kind: str, n: int) -> dict[str, float]:
    res = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], check=True,
                         capture_output=True, text=True)
    return json.loads(res.stdout.splitlines()[-1])


def run(n: int) -> list[tuple[str, str, str, str]]:
    records_parquet(n)
    delta_parquet(n)
    label = f"{n / 1e6:g}M"
    build, copy = measure("build", n), measure("copy", n)
    delta, delta_keys = measure("delta", n), measure("delta-keys", n)
    for db in ("", "_copy", "_delta"):
        fresh(DATA / f"load_{n}{db}.duckdb")
    return [
        (f"[{label}] build from Parquet (baseline: bare DuckDB copy)",
         f"{build['seconds']:.1f} s", f"{copy['seconds']:.1f} s",
         ratio(copy["seconds"], build["seconds"])),
        (f"[{label}] build, peak RSS", f"{build['peak_rss_gib']:.2f} GiB",
         f"{copy['peak_rss_gib']:.2f} GiB", ratio(copy["peak_rss_gib"], build["peak_rss_gib"])),
        (f"[{label}] delta of {DELTA // 1000}k (10% updates), key sets not built",
         f"{delta['seconds']:.2f} s", "-", "-"),
        (f"[{label}] delta of {DELTA // 1000}k, key sets built (as a server)",
         f"{delta_keys['seconds']:.2f} s", "-", "-"),
        (f"[{label}] delta, peak RSS (key sets built)",
         f"{delta_keys['peak_rss_gib']:.2f} GiB", "-", "-"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated record counts")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    print(machine())
    rows = []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        rows += run(n)
    print_table(rows, "Loading records (baseline: bare DuckDB, no validation)")


if __name__ == "__main__":
    main()
