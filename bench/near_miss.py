"""Near-miss search: latency against brute force, and the near-miss policy's quality.

Latency (randomly numbered lists, ``--sizes``): sltd's default check (exact + partial +
near) of clean documents and of listed documents read with one error, against the
brute-force baseline a user would write with rapidfuzz: ``process.extract`` over every
number of the queried country with the OSA distance (a transposition counts one edit),
cut off at 1.

Quality (lists numbered by issuance ranges, ``--quality-sizes``; dense: a clean number
often has listed neighbours one edit away): listed documents queried with one injected
error of each class (OCR confusion, transposition, insertion, deletion, substitution)
must be found: typed (as a near hit; as a near hit or a lead; as a near hit when the
document's expiry date is given) and read from an MRZ (check digits and expiry printed for
the true document, so a misreading usually fails the number's digit). Clean documents
issued from the same ranges must not raise near hits: the share raising a near hit or a
lead, typed and read from an MRZ.

    python bench/near_miss.py                    # latency at 1M, 10M; quality at 10M, 130M
    python bench/near_miss.py --sizes 100000 --quality-sizes 1000000 --queries 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rapidfuzz import process
from rapidfuzz.distance import OSA

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    build_sltd,
    fmt_us,
    latencies,
    machine,
    pct,
    print_table,
    ranges_parquet,
    ratio,
    records_parquet,
    sample_queries,
)

from sltd import MatchKind, canonical_number, open_index  # noqa: E402
from sltd.synth import MRZ_CODES, inject_error, synth_mrz  # noqa: E402

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


def run(n: int, k: int, brute_queries: int) -> list:
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

    index.close()
    return lat


# --- quality: the near-miss policy on ranges-numbered lists ------------------------------

#: The reading errors of the quality table, by the class a near hit or lead reports.
CLASSES = {"ocr (one)": "OCR confusion", "transposition": "transposition",
           "insertion": "insertion", "deletion": "deletion", "substitution": "substitution"}


def _rows(table, k: int, rng: np.random.Generator) -> list[dict]:
    idx = rng.choice(table.num_rows, size=min(k, table.num_rows), replace=False)
    return table.take(pa.array(np.sort(idx))).to_pylist()


def _yymmdd(d) -> str:
    return d.strftime("%y%m%d") if d else "310415"


def quality(n: int, k: int, clean_k: int) -> list[tuple]:
    """Recall per error class and the share of clean documents raising a near hit or a
    lead, typed (without and with the document's expiry date) and read from an MRZ, on a
    ranges-numbered list (dense: most clean numbers have listed neighbours one edit
    away), with clean documents from the same issued ranges."""
    records, manifest = ranges_parquet(n, manifest_rows=min(n, 1_000_000))
    db = DATA / f"world_{n}.duckdb"
    if not db.exists():
        build_sltd(records, db)
    index = open_index(db)
    label = f"{n / 1e6:g}M ranges"
    rng = np.random.default_rng(11)
    pf = pq.ParquetFile(records)
    groups = rng.choice(pf.num_row_groups, size=min(20, pf.num_row_groups), replace=False)
    rec = pf.read_row_groups(sorted(groups.tolist()), columns=[
        "document_number", "document_type", "issuing_country", "status", "date_of_expiry"])
    rec = rec.filter(pc.and_(pc.not_equal(rec["status"], "stolen_blank"),
                             pc.is_valid(rec["date_of_expiry"])))
    listed = _rows(rec, k, rng)
    man = pq.read_table(manifest, columns=["document_number", "document_type",
                                           "issuing_country", "date_of_expiry", "listed"])
    clean = _rows(man.filter(pc.invert(man["listed"])), clean_k, rng)

    def has_mrz(r: dict) -> bool:
        return r["document_type"] in MRZ_CODES and len(r["document_number"]) <= 9

    def key(r: dict) -> tuple:
        return r["document_number"], r["document_type"], r["issuing_country"]

    def finds(hits, r: dict, tiers: tuple) -> bool:
        return any(h.number == r["document_number"] and h.country == r["issuing_country"]
                   and h.match.value in tiers for h in hits)

    out = []
    for kind, name in CLASSES.items():
        typed = lead = dated = mrz = mrz_detected = tried = tried_mrz = detected = 0
        for r in listed:
            bad = inject(r["document_number"], kind, rng)
            if bad is None or len(bad) < 3 or bad == r["document_number"]:
                continue
            tried += 1
            hits = index.check(bad, r["document_type"], r["issuing_country"], leads=True)
            typed += finds(hits, r, ("near",))
            lead += finds(hits, r, ("near", "lead"))
            dated += finds(index.check(bad, r["document_type"], r["issuing_country"],
                                       expiry=r["date_of_expiry"]), r, ("near",))
            if has_mrz(r) and len(bad) <= 9:
                tried_mrz += 1
                read = index.check_mrz(synth_mrz(*key(r), read_as=bad,
                                                 expiry=_yymmdd(r["date_of_expiry"])))
                found = finds(read.hits, r, ("near",))
                mrz += found
                if "document number" in read.mrz.failed_checks:
                    detected += 1
                    mrz_detected += found
        out.append((f"[{label}] recall, {name}: typed hit / typed hit or lead / typed "
                    "with expiry", f"{typed / tried:.1%} / {lead / tried:.1%} / "
                    f"{dated / tried:.1%} of {tried}", "", ""))
        out.append((f"[{label}] recall, {name}: MRZ hit (misreads the digit detects)",
                    f"{mrz / max(1, tried_mrz):.1%} ({mrz_detected / max(1, detected):.1%} "
                    f"of {detected})", "", ""))
    near_typed = lead_typed = near_dated = near_mrz = mrz_n = 0
    for r in clean:
        hits = index.check(*key(r), leads=True)
        near_typed += any(h.match is MatchKind.NEAR for h in hits)
        lead_typed += any(h.match is MatchKind.LEAD for h in hits)
        near_dated += any(h.match is MatchKind.NEAR for h in index.check(
            *key(r), expiry=r["date_of_expiry"]))
        if has_mrz(r):
            mrz_n += 1
            near_mrz += any(h.match is MatchKind.NEAR for h in index.check_mrz(
                synth_mrz(*key(r), expiry=_yymmdd(r["date_of_expiry"]))).hits)
    m = len(clean)
    out += [
        (f"[{label}] clean typed documents with a near hit / with a lead",
         f"{near_typed / m:.2%} / {lead_typed / m:.1%} of {m}", "", ""),
        (f"[{label}] clean typed documents with a near hit, expiry given",
         f"{near_dated / m:.2%} of {m}", "", ""),
        (f"[{label}] clean MRZ reads with a near hit", f"{near_mrz / max(1, mrz_n):.2%} of "
         f"{mrz_n}", "", ""),
    ]
    index.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000",
                    help="latency: records of the randomly numbered lists")
    ap.add_argument("--quality-sizes", default="10000000,130000000",
                    help="quality: records of the ranges-numbered lists (the 130M one is "
                    "bench/world.py's index, built if missing)")
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--clean", type=int, default=20000,
                    help="quality: clean documents checked for noise (a share of 0.1%% "
                    "needs tens of thousands to be told from 0.05%%)")
    ap.add_argument("--brute", type=int, default=30, help="brute-force baseline queries")
    args = ap.parse_args()
    print(machine())
    lat, qual = [], []
    for n in (int(float(s)) for s in args.sizes.split(",") if s):
        lat += run(n, args.queries, args.brute)
    for n in (int(float(s)) for s in args.quality_sizes.split(",") if s):
        qual += quality(n, args.queries, args.clean)
    if lat:
        print_table(lat, "Near-miss latency (baseline: rapidfuzz.process over the country)")
    print_table(qual, "Near-miss policy: recall and noise (labelled, generated)")


if __name__ == "__main__":
    main()
