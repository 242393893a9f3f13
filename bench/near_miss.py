"""Near-miss search: latency against brute force, and a labelled quality evaluation.

Latency: sltd's default check (exact + partial + near) of clean documents and of listed
documents read with one error, against the brute-force baseline a user would write with
rapidfuzz: ``process.extract`` over every number of the queried country with the OSA
distance (a transposition counts one edit), cut off at 1.

Quality: listed documents queried with one injected error of each kind (substitution,
insertion, deletion, neighbour transposition, one OCR confusion, every confusable character
confused at once, one confusion plus one substitution) must be found (recall), and clean
unlisted documents of the same shapes must not raise near-miss hits (spurious rate). The
evaluation runs twice: numbers as typed, and whole MRZs as a passport reader reads them
(check digits printed for the true number, so a misreading usually fails its digit).

    python bench/near_miss.py                    # 1M and 10M records
    python bench/near_miss.py --sizes 100000     # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rapidfuzz import process
from rapidfuzz.distance import OSA

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

from sltd import MatchKind, canonical_number, open_index  # noqa: E402
from sltd.synth import ERROR_KINDS, MRZ_CODES, inject_error, synth_mrz  # noqa: E402

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def inject(number: str, kind: str, rng: np.random.Generator) -> str | None:
    """``number`` with one error of ``kind`` at a random place (None if it cannot apply)."""
    return inject_error(number, kind, int(rng.integers(0, 1 << 30)),
                        ALNUM[int(rng.integers(0, len(ALNUM)))])


def open_bench_index(n: int):
    db = DATA / f"bench_{n}.duckdb"
    if db.exists():
        t = time.perf_counter()
        ix = open_index(db)
        return ix, None, time.perf_counter() - t
    t = time.perf_counter()
    ix = open_index(db, create=True)
    ix.load(records_parquet(n))
    build = time.perf_counter() - t
    ix.close()
    t = time.perf_counter()
    ix = open_index(db)
    return ix, build, time.perf_counter() - t


def run(n: int, k: int, brute_queries: int) -> tuple[list, list]:
    path = records_parquet(n)
    index, build, open_s = open_bench_index(n)
    listed, unlisted = sample_queries(path, k, seed=3)
    rng = np.random.default_rng(5)
    label = f"{n / 1e6:g}M"

    # --- latency ---------------------------------------------------------------------
    clean = latencies(lambda q: index.check(*q), unlisted)
    one_edit = [(inject(q[0], "substitution", rng), q[1], q[2]) for q in listed[:3000]]
    edited = latencies(lambda q: index.check(*q), one_edit)
    t = pq.read_table(path, columns=["document_number", "issuing_country"])
    by_country: dict[str, list[str]] = defaultdict(list)
    for num, c in zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True):
        by_country[c].append(num)
    del t

    def brute(q):
        return process.extract(canonical_number(q[0]), by_country[q[2]], scorer=OSA.distance,
                               score_cutoff=1, limit=20)

    sample = unlisted[:brute_queries]
    brute_t = latencies(brute, sample, warmup=2)
    # brute force must agree with sltd on what is one edit away (same country)
    agree = sum(
        {m[0] for m in brute(q)} <= {h.number for h in index.check(*q) if h.country == q[2]}
        for q in sample)
    lat = [
        (f"[{label}] near-miss check, clean doc p50", fmt_us(pct(clean, 50)),
         fmt_us(pct(brute_t, 50)), ratio(pct(brute_t, 50), pct(clean, 50))),
        (f"[{label}] near-miss check, clean doc p99", fmt_us(pct(clean, 99)),
         fmt_us(pct(brute_t, 99)), ratio(pct(brute_t, 99), pct(clean, 99))),
        (f"[{label}] near-miss check, one-edit hit p50", fmt_us(pct(edited, 50)), "-", "-"),
        (f"[{label}] near-miss check, one-edit hit p99", fmt_us(pct(edited, 99)), "-", "-"),
        (f"[{label}] brute-force results found by sltd", f"{agree}/{len(sample)}", "-", "-"),
        (f"[{label}] open index (key sets from DuckDB)", f"{open_s:.1f} s", "-", "-"),
        (f"[{label}] key-set memory", f"{index.key_set_bytes / 2**20:.0f} MiB "
         f"({index.key_set_bytes / len(index):.1f} B/record)", "-", "-"),
    ]
    if build is not None:
        lat.append((f"[{label}] index build", f"{build:.1f} s", "-", "-"))

    # --- quality ---------------------------------------------------------------------
    quality = []
    for kind in ERROR_KINDS:
        found = tried = 0
        ranks = []
        for q in listed[:k]:
            bad = inject(q[0], kind, rng)
            if bad is None or len(bad) < 3 or bad == q[0]:
                continue
            tried += 1
            hits = index.check(bad, q[1], q[2])
            pos = next((i for i, h in enumerate(hits)
                        if h.number == q[0] and h.country == q[2]), None)
            if pos is not None:
                found += 1
                ranks.append(pos)
        quality.append((f"[{label}] recall: {kind}", f"{found / tried:.2%} of {tried}",
                        f"true record ranked first in {sum(r == 0 for r in ranks) / max(1, len(ranks)):.1%}",  # noqa: E501
                        ""))
    spurious = 0
    for q in unlisted:
        if any(h.match is MatchKind.NEAR for h in index.check(*q)):
            spurious += 1
    quality.append((f"[{label}] clean queries with a near-miss hit",
                    f"{spurious} of {len(unlisted)} ({spurious / len(unlisted):.3%})", "", ""))
    # a 4x larger clean sample: the MRZ rate is low enough that 5,000 queries see ~1 hit
    _, more_clean = sample_queries(path, 4 * k, seed=4)
    quality += mrz_quality(index, label, listed[:k], more_clean, rng)
    index.close()
    return lat, quality


def mrz_quality(index, label: str, listed: list[tuple], unlisted: list[tuple],
                rng: np.random.Generator) -> list[tuple]:
    """The same evaluation with the documents' MRZs read by a passport reader: a misread
    number keeps the check digits printed for the true one (types with an MRZ code,
    numbers of at most 9 characters)."""
    def has_mrz(q: tuple) -> bool:
        return q[1] in MRZ_CODES and len(q[0]) <= 9

    rows = []
    for kind in ERROR_KINDS:
        found = tried = 0
        for q in filter(has_mrz, listed):
            bad = inject(q[0], kind, rng)
            if bad is None or not 3 <= len(bad) <= 9 or bad == q[0]:
                continue
            tried += 1
            hits = index.check_mrz(synth_mrz(q[0], q[1], q[2], read_as=bad)).hits
            found += any(h.number == q[0] and h.country == q[2] for h in hits)
        rows.append((f"[{label}] MRZ recall: {kind}", f"{found / max(1, tried):.2%} of {tried}",
                     "", ""))
    clean = [q for q in unlisted if has_mrz(q)]
    spurious = sum(
        any(h.match is MatchKind.NEAR for h in index.check_mrz(synth_mrz(*q)).hits)
        for q in clean)
    rows.append((f"[{label}] clean MRZ queries with a near-miss hit",
                 f"{spurious} of {len(clean)} ({spurious / max(1, len(clean)):.3%})", "", ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--brute", type=int, default=30, help="brute-force baseline queries")
    args = ap.parse_args()
    print(machine())
    lat, qual = [], []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        a, b = run(n, args.queries, args.brute)
        lat += a
        qual += b
    print_table(lat, "Near-miss latency (baseline: rapidfuzz.process over the country)")
    print_table(qual, "Near-miss quality (labelled, generated)")


if __name__ == "__main__":
    main()
