"""Sealed replicas (sltd.sealed), 10M records: the sealed snapshot publish and replica
init, and checks on the sealed replica against a plain replica of the same list in the
same run (the issue's target: sealed check p50 within 2x of the plain one's), a
100k-change delta published and applied both ways; plus what a thief holding the seal
key pays per candidate number (bulk tags per second).

Query mix: listed documents (exact), the same with one injected error of each kind
(near misses), and clean numbers of each issuer's shape (prefix + digits, two letters +
seven digits, nine digits ...), 1/3 each.

    python bench/sealed.py                       # 10M records
    python bench/sealed.py --records 100000      # quick
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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
from feed import change_100k  # noqa: E402

from sltd import open_index  # noqa: E402
from sltd.feed import init_replica, new_key, publish, sync  # noqa: E402
from sltd.sealed import new_seal_key, read_seal_key  # noqa: E402
from sltd.synth import ERROR_KINDS, inject_error  # noqa: E402


def _mix(listed: list[tuple], unlisted: list[tuple], k: int) -> list[tuple]:
    rng = random.Random(3)
    near = []
    for number, doc_type, country in listed[k:2 * k]:
        wrong = inject_error(number, rng.choice(ERROR_KINDS), rng.randrange(24),
                             rng.choice("AX0189"))
        near.append((wrong or number, doc_type, country))
    mix = listed[:k] + near + unlisted[:k]
    rng.shuffle(mix)
    return mix


def _stats(xs: list[float]) -> str:
    return f"{fmt_us(pct(xs, 50))} / {fmt_us(pct(xs, 99))} / {fmt_us(sum(xs) / len(xs))}"


def run(n: int, k: int) -> list[tuple]:
    path = records_parquet(n)
    listed, unlisted = sample_queries(path, 2 * k + 500)
    mix = _mix(listed, unlisted, k)
    src, *_ = build_sltd(path, DATA / f"bench_{n}.duckdb")
    work = Path(tempfile.mkdtemp(dir=DATA, prefix="sealed."))
    label = f"{n / 1e6:g}M"
    try:
        db = work / "source.duckdb"
        shutil.copy(src, db)
        key, pub = new_key(work / "feed.key")
        seal = new_seal_key(work / "seal.key")
        with open_index(db) as ix:
            plain_snap = publish(ix, work / "plain", key)
            sealed_snap = publish(ix, work / "sealed", key, sealed=seal)
        size = {name: sum(p.stat().st_size for p in (work / name).rglob("*.parquet"))
                for name in ("plain", "sealed")}
        t = time.perf_counter()
        plain = init_replica(work / "plain.duckdb", work / "plain", pub)
        plain_init = time.perf_counter() - t
        t = time.perf_counter()
        sealed = init_replica(work / "sealed.duckdb", work / "sealed", pub, seal_key=seal)
        sealed_init = time.perf_counter() - t
        rows = []
        for what, options in (("default (exact + near misses)", {}),
                              ("exact only", {"exact_only": True})):
            on_plain = latencies(lambda q, o=options: plain.check(*q, **o), mix)
            on_sealed = latencies(lambda q, o=options: sealed.check(*q, **o), mix)
            rows.append((f"[{label}] {what} check, sealed vs plain replica, "
                         "p50 / p99 / mean", _stats(on_sealed), _stats(on_plain),
                         f"{pct(on_sealed, 50) / pct(on_plain, 50):.2f}x"))
        same = sum(1 for q in mix[:2000] if
                   [(h.number, h.match) for h in sealed.check(*q, leads=True)] ==
                   [(h.number, h.match) for h in plain.check(*q, leads=True)])
        # a 100k-change delta (bench/feed.py's), published and applied both ways
        with open_index(db) as ix:
            change_100k(ix, path)
            plain_delta = publish(ix, work / "plain", key)
            sealed_delta = publish(ix, work / "sealed", key, sealed=seal)
        t = time.perf_counter()
        sync(plain)
        plain_apply = time.perf_counter() - t
        t = time.perf_counter()
        sync(sealed)
        sealed_apply = time.perf_counter() - t
        assert sealed.list_version == plain.list_version
        plain.close()
        sealed.close()
        # a thief with the seal key: tags of candidate nine-digit numbers, in bulk
        tagger = read_seal_key(seal)
        candidates = np.frombuffer(b"".join(f"{i:09d}".encode() for i in range(
            1_000_000)), np.uint8).reshape(-1, 9)
        t = time.perf_counter()
        tagger.tags(candidates)
        per = (time.perf_counter() - t) / len(candidates)
        return [
            (f"[{label}] sealed snapshot publish ({sealed_snap.records:,} records)",
             f"{sealed_snap.seconds:.1f} s", f"{plain_snap.seconds:.1f} s (plain)",
             f"{sealed_snap.seconds / plain_snap.seconds:.1f}x"),
            (f"[{label}] snapshot size", f"{size['sealed'] / 2**20:,.0f} MiB",
             f"{size['plain'] / 2**20:,.0f} MiB (plain)",
             f"{size['sealed'] / size['plain']:.1f}x"),
            (f"[{label}] replica init from the snapshot", f"{sealed_init:.1f} s",
             f"{plain_init:.1f} s (plain)", f"{sealed_init / plain_init:.1f}x"),
            (f"[{label}] 100k-change delta: publish / apply to the {label} replica",
             f"{sealed_delta.seconds:.2f} s / {sealed_apply:.2f} s",
             f"{plain_delta.seconds:.2f} s / {plain_apply:.2f} s (plain)",
             f"{sealed_apply / plain_apply:.1f}x (apply)"),
            *rows,
            (f"[{label}] same hits, sealed and plain (first 2,000 queries of the mix)",
             f"{same:,} / 2,000", "-", "-"),
            ("a thief with the seal key: one candidate number tagged (bulk, 1 core)",
             fmt_us(per), f"10^9 nine-digit numbers: {per * 1e9 / 60:.0f} min", "-"),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=5_000, help="per third of the mix")
    args = ap.parse_args()
    print(machine())
    print_table(run(args.records, args.queries),
                "sltd sealed replica (baseline: a plain replica, same run)")


if __name__ == "__main__":
    main()
