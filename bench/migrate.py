"""Migrating an index made by the first release (schema 1, linear key hash) to today's.

Builds a current index of N records once (cached in bench/data), turns a copy of it into
a schema-1 file exactly as the first release wrote it (the same tables; every stored
``fold_hash`` is the release's hash, the folded key's bytes read as a little-endian
integer modulo 2**61 - 1; schema_version 1), then times a writable open, which migrates
it in one transaction, and checks that every stored hash is today's afterwards.
(tests/test_migrate.py does the same on a real release-1 file, fixtures/v1/.)

    python bench/migrate.py                    # 10M records
    python bench/migrate.py --records 1000000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from _common import DATA, machine, peak_rss_gib, print_table, records_parquet  # noqa: E402

from sltd import open_index  # noqa: E402
from sltd.keyhash import key_hashes  # noqa: E402
from sltd.store import SCHEMA_VERSION  # noqa: E402

_P = (1 << 61) - 1


def release_one_hash(fold: str) -> int:
    """The first release's key hash (kept here only to write a faithful old file)."""
    return int.from_bytes(fold.encode("ascii"), "little") % _P


def current_index(n: int) -> Path:
    path = DATA / f"migrate_{n}.duckdb"
    if not path.exists():
        with open_index(path, create=True) as ix:
            ix.load(records_parquet(n))
    return path


def make_schema_one(src: Path, dst: Path) -> float:
    """Copy ``src`` to ``dst`` and rewrite it as the first release stored it."""
    for f in (dst, Path(f"{dst}.wal")):
        f.unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    start = time.perf_counter()
    con = duckdb.connect(str(dst))
    folds = con.sql("SELECT DISTINCT fold FROM records").to_arrow_table().column("fold")
    old = pa.table({"fold": folds, "fold_hash": pa.array(
        [release_one_hash(f) for f in folds.to_pylist()], pa.int64())})
    con.register("_old", old)
    con.execute("UPDATE records SET fold_hash = o.fold_hash FROM _old o "
                "WHERE records.fold = o.fold")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.execute("CHECKPOINT")  # else the next open replays this WAL (2.5 s at 10M)
    con.close()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    args = ap.parse_args()
    n = args.records
    print(machine())
    src = current_index(n)
    work = DATA / f"migrate_{n}_schema1.duckdb"
    prep = make_schema_one(src, work)
    steps: list[tuple[float, str]] = []
    start = time.perf_counter()
    with open_index(work, progress=lambda s: steps.append((time.perf_counter() - start, s))
                    ) as ix:
        migrate = time.perf_counter() - start
        assert ix.migrated_from == 1
        records = len(ix)
    con = duckdb.connect(str(work), read_only=True)
    stored = con.sql("SELECT fold, fold_hash FROM records").to_arrow_table()
    con.close()
    today = key_hashes(stored.column("fold"))
    wrong = int((stored.column("fold_hash").to_numpy() != today).sum())
    for f in (work, Path(f"{work}.wal")):
        f.unlink(missing_ok=True)
    label = f"{n / 1e6:g}M"
    rows = [(f"[{label}] migrate schema 1 -> {SCHEMA_VERSION} (writable open, one "
             "transaction)",
             f"{migrate:.1f} s", "-", "-")]
    begins = [0.0, *(at for at, _ in steps)]
    ends = [*(at for at, _ in steps), migrate]
    names = ["opening, schema check", *(step for _, step in steps)]
    for name, begin, end in zip(names, begins, ends, strict=True):
        if not name.startswith("schema version"):  # the closing message, not a step
            rows.append((f"[{label}]   {name}", f"{end - begin:.1f} s", "-", "-"))
    rows += [(f"[{label}] records after migration", f"{records:,}", "-", "-"),
             (f"[{label}] stored hashes not today's after migration", f"{wrong}", "0", "-"),
             (f"[{label}] (setup) writing the schema-1 copy", f"{prep:.1f} s", "-", "-"),
             ("peak RSS of this process", f"{peak_rss_gib():.1f} GiB", "-", "-")]
    print_table(rows, "Migration of a first-release index (baseline: none)")
    if wrong:
        sys.exit(1)


if __name__ == "__main__":
    main()
