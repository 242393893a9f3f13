"""Check throughput on one shared Index from 1, 2 and 4 threads, and during loads.

One ``Index`` is shared by every thread (a DuckDB cursor per thread, published key-set
snapshots, one writer). Each thread loops over its own slice of the queries for a fixed
wall time; the figures are total checks/s and the per-call latencies of all threads, next
to the same checks from one thread. With the GIL, pure-Python checks cannot scale up; the
target is that threads never make throughput lower than one thread.

Two query mixes, as outsiders would send them: unlisted numbers of realistic shapes with
1 listed per 15,500 (the real hit rate), and 1% listed (so the DuckDB hit path runs under
threads); each for exact-only and default (near-miss) checks, the thread counts
interleaved in rounds. Then 4 checker threads for as long as a 5th loads a batch of 100k
new records, next to 4 threads without loads just before. Every listed query must return
a hit, and every loaded record must be found once its load returned: the script prints
the count of wrong answers and exits 1 if it is not 0.

On a shared machine, more threads also win a larger share of the CPU from other
processes, which flatters the ratios: the table says how many cores others kept busy.

The index is built once into bench/data/threads_N.duckdb; each run works on a copy
(loads change it), deleted at the end.

    python bench/threads.py                  # 10M records, 5 s a measurement (~4 min)
    python bench/threads.py --quick          # 1M records, 1 s a measurement (~50 s)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    fmt_us,
    machine,
    peak_rss_gib,
    print_table,
    ratio,
    records_parquet,
    sample_queries,
)

from sltd import open_index  # noqa: E402
from sltd.synth import synth_records, write_table  # noqa: E402

REAL_HIT_RATE = 1 / 15_500  # listed share of real first-level checks
NCB = "DEU"
Query = tuple[str, str, str]


@dataclasses.dataclass
class Run:
    """What one measurement saw, summed over its checker threads (and rounds)."""

    checks: int
    seconds: float
    latencies: np.ndarray
    listed_checks: int
    wrong: int
    others: float  # cores other processes kept busy meanwhile (this machine is shared)

    @property
    def rate(self) -> float:
        return self.checks / self.seconds

    def pct(self, p: float) -> float:
        return float(np.percentile(self.latencies, p))

    @property
    def mean(self) -> float:
        return float(self.latencies.mean())

    @classmethod
    def merge(cls, runs: Sequence[Run]) -> Run:
        wall = sum(r.seconds for r in runs)
        return cls(checks=sum(r.checks for r in runs), seconds=wall,
                   latencies=np.concatenate([r.latencies for r in runs]),
                   listed_checks=sum(r.listed_checks for r in runs),
                   wrong=sum(r.wrong for r in runs),
                   others=sum(r.others * r.seconds for r in runs) / wall)


class Loader:
    """The 5th thread's work: ``count`` loads of new records back to back, each followed
    by checks of 100 of its records (a load that returned is visible to every check that
    starts after it)."""

    def __init__(self, index, batches: Iterator[tuple[Path, list[Query]]], count: int):
        self.index, self.batches, self.count = index, batches, count
        self.seconds: list[float] = []
        self.inserted = self.verified = self.missed = 0

    def __call__(self) -> None:
        for _ in range(self.count):
            path, sample = next(self.batches)
            t0 = time.perf_counter()
            report = self.index.load(path)
            self.seconds.append(time.perf_counter() - t0)
            self.inserted += report.inserted
            for q in sample:
                self.verified += 1
                self.missed += not self.index.check(*q, exact_only=True, ncb=NCB)


def number_arg(s: str) -> int:
    return int(float(s.replace("_", "")))


def index_file(n: int) -> Path:
    """The pristine index of ``records_parquet(n)``, built once (1-2.5 min at 10M)."""
    db = DATA / f"threads_{n}.duckdb"
    wal = Path(f"{db}.wal")
    if not db.exists() or wal.exists():  # a build that did not finish: start over
        db.unlink(missing_ok=True)
        wal.unlink(missing_ok=True)
        tmp = DATA / f"threads_{n}.building.duckdb"
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        with open_index(tmp, create=True) as ix:
            ix.load(records_parquet(n))
        tmp.rename(db)
    return db


def batch_parquet(size: int, seed: int) -> Path:
    """New records for the loader (seeds far from the index's 7), cached in bench/data."""
    path = DATA / f"threads_batch_{size}_{seed}.parquet"
    if not path.exists():
        write_table(synth_records(size, seed=seed), path)
    return path


def mixes(path: Path, k: int) -> dict[str, tuple[list[Query], list[bool]]]:
    """Two shuffled query lists with their listed flags: the real hit rate, and 1%."""
    listed, unlisted = sample_queries(path, k)
    rng = np.random.default_rng(3)
    out = {}
    for name, share in (("1 listed per 15,500", REAL_HIT_RATE), ("1% listed", 0.01)):
        n_listed = max(1, round(len(unlisted) * share))
        qs = [*listed[:n_listed], *unlisted]
        flags = [True] * n_listed + [False] * len(unlisted)
        order = rng.permutation(len(qs))
        out[name] = ([qs[i] for i in order], [flags[i] for i in order])
    return out


def measure(index, queries: Sequence[Query], flags: Sequence[bool], threads: int, *,
            exact_only: bool, seconds: float = 0.0, loader: Loader | None = None) -> Run:
    """``threads`` checkers, each looping over its own strided slice of ``queries``, for
    ``seconds`` of wall time or, with ``loader``, for as long as a 5th thread runs it."""
    barrier = threading.Barrier(threads + (loader is not None))
    loaded = threading.Event()
    out: list[tuple[float, float, list[float], int, int]] = [None] * threads  # type: ignore

    def checker(t: int) -> None:
        qs, fl = queries[t::threads], flags[t::threads]
        n = len(qs)
        check, clock = index.check, time.perf_counter
        lat: list[float] = []
        listed = wrong = i = 0
        barrier.wait()
        start = clock()
        deadline = start + seconds if loader is None else float("inf")
        while True:
            number, doc_type, country = qs[i % n]
            t0 = clock()
            hits = check(number, doc_type, country, exact_only=exact_only, ncb=NCB)
            t1 = clock()
            lat.append(t1 - t0)
            if fl[i % n]:
                listed += 1
                wrong += not hits
            i += 1
            if t1 >= deadline or loaded.is_set():
                break
        out[t] = (start, t1, lat, listed, wrong)

    def load() -> None:
        assert loader is not None
        barrier.wait()
        try:
            loader()
        finally:
            loaded.set()

    workers = [threading.Thread(target=checker, args=(t,)) for t in range(threads)]
    if loader is not None:
        workers.append(threading.Thread(target=load))
    busy0, mine0 = cpu_seconds()
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    busy1, mine1 = cpu_seconds()
    elapsed = time.perf_counter() - t0
    return Run(checks=sum(len(o[2]) for o in out),
               seconds=max(o[1] for o in out) - min(o[0] for o in out),
               latencies=np.concatenate([np.asarray(o[2]) for o in out]),
               listed_checks=sum(o[3] for o in out), wrong=sum(o[4] for o in out),
               others=max(0.0, (busy1 - busy0) - (mine1 - mine0)) / elapsed)


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine since boot, CPU seconds of this process);
    the machine's figure is NaN where there is no /proc/stat."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    mine = ru.ru_utime + ru.ru_stime
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return float("nan"), mine
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), mine


def lat3(r: Run) -> str:
    return f"{fmt_us(r.pct(50))} / {fmt_us(r.pct(99))} / {fmt_us(r.mean)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=number_arg, default=10_000_000)
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="wall time of each measurement")
    ap.add_argument("--rounds", type=int, default=5,
                    help="measurements are interleaved in this many rounds, so a change in "
                    "the machine's load hits every thread count alike")
    ap.add_argument("--queries", type=number_arg, default=200_000,
                    help="distinct unlisted queries per mix")
    ap.add_argument("--threads", default="1,2,4", help="checker thread counts")
    ap.add_argument("--batch-records", type=number_arg, default=100_000,
                    help="records in each batch the loader thread loads")
    ap.add_argument("--loads", type=int, default=1,
                    help="loads back to back during each measurement with loads (the "
                    "checkers run as long as they take)")
    ap.add_argument("--quick", action="store_true",
                    help="1M records, 1 s a measurement in 2 rounds, 50k queries, "
                    "20k-record batches")
    args = ap.parse_args()
    if args.quick:
        args.records, args.seconds, args.rounds = 1_000_000, 1.0, 2
        args.queries, args.batch_records = 50_000, 20_000
    counts = [int(t) for t in args.threads.split(",")]
    top = max(counts)
    wall_start = time.perf_counter()
    print(machine())

    DATA.mkdir(parents=True, exist_ok=True)
    pristine = index_file(args.records)
    query_mixes = mixes(records_parquet(args.records), args.queries)
    batches = []
    for i in range(4 * args.loads):  # new records in every load
        b = batch_parquet(args.batch_records, seed=1000 + i)
        rows = pq.read_table(b, columns=["document_number", "document_type",
                                         "issuing_country"]).slice(0, 100).to_pylist()
        batches.append((b, [(r["document_number"], r["document_type"],
                             r["issuing_country"]) for r in rows]))
    next_batch = itertools.cycle(batches)

    work = DATA / f"threads_{args.records}.run.duckdb"  # loads change it: work on a copy
    for f in (work, Path(f"{work}.wal")):
        f.unlink(missing_ok=True)
    shutil.copyfile(pristine, work)
    label = f"{args.records / 1e6:g}M"
    rows: list[tuple[str, str, str, str]] = []
    load_rows: list[tuple[str, str, str, str]] = []
    wrong = listed_checks = 0
    others: list[float] = []
    load_seconds: list[float] = []
    verified = missed = 0
    try:
        t = time.perf_counter()
        index = open_index(work)
        index.check(*query_mixes["1% listed"][0][0], ncb=NCB)  # builds the key sets
        rows.append((f"[{label}] open + key sets built (first check)",
                     f"{time.perf_counter() - t:.1f} s", "-", "-"))
        for queries, _flags in query_mixes.values():  # warm up both paths, one thread
            for q in queries[:2000]:
                index.check(*q, exact_only=True, ncb=NCB)
                index.check(*q, ncb=NCB)

        for exact_only, mode in ((True, "exact"), (False, "default")):
            for mix, (queries, flags) in query_mixes.items():
                parts: dict[int, list[Run]] = {n: [] for n in counts}
                for _ in range(args.rounds):
                    for n in counts:
                        parts[n].append(measure(index, queries, flags, n,
                                                exact_only=exact_only,
                                                seconds=args.seconds / args.rounds))
                runs = {n: Run.merge(parts[n]) for n in counts}
                base = runs[counts[0]]
                for n, r in runs.items():
                    wrong += r.wrong
                    listed_checks += r.listed_checks
                    others.append(r.others)
                    is_base = n == counts[0]
                    name = f"[{label}] {mode}, {mix}, {n} thread{'s' * (n > 1)}"
                    rows.append((f"{name}: checks/s", f"{r.rate:,.0f}",
                                 "-" if is_base else f"{base.rate:,.0f}",
                                 "-" if is_base else ratio(r.rate, base.rate)))
                    rows.append((f"{name}: p50 / p99 / mean", lat3(r),
                                 "-" if is_base else lat3(base), "-"))
                    print(f"  {name}: {r.rate:,.0f} checks/s, {lat3(r)}; other processes "
                          f"{r.others:.2f} cores", flush=True)

                # the same checks from `top` threads, without and then during loads
                base = measure(index, queries, flags, top, exact_only=exact_only,
                               seconds=args.seconds)
                loader = Loader(index, next_batch, args.loads)
                r = measure(index, queries, flags, top, exact_only=exact_only,
                            loader=loader)
                for x in (base, r):
                    wrong += x.wrong
                    listed_checks += x.listed_checks
                    others.append(x.others)
                load_seconds += loader.seconds
                verified += loader.verified
                missed += loader.missed
                name = f"[{label}] {mode}, {mix}, {top} threads during loads"
                load_rows += [
                    (f"{name}: checks/s", f"{r.rate:,.0f}", f"{base.rate:,.0f}",
                     ratio(r.rate, base.rate)),
                    (f"{name}: p99", fmt_us(r.pct(99)), fmt_us(base.pct(99)),
                     ratio(base.pct(99), r.pct(99))),
                ]
                print(f"  {name}: {r.rate:,.0f} checks/s, p99 {fmt_us(r.pct(99))} over "
                      f"{r.seconds:.1f} s ({loader.inserted:,} records new); without loads "
                      f"{base.rate:,.0f} checks/s, p99 {fmt_us(base.pct(99))}; other "
                      f"processes {r.others:.2f} / {base.others:.2f} cores", flush=True)
        index.close()
    finally:
        for f in (work, Path(f"{work}.wal")):
            f.unlink(missing_ok=True)
    load_rows += [
        (f"[{label}] load of {args.batch_records:,} new records during checks, mean / max",
         f"{np.mean(load_seconds):.1f} s / {max(load_seconds):.1f} s", "-", "-"),
        (f"[{label}] loaded records missed by a check after their load returned",
         f"{missed} of {verified:,}", "0", "-"),
        (f"[{label}] wrong answers (listed query, no hit), all runs",
         f"{wrong} of {listed_checks:,}", "0", "-"),
        ("peak RSS of this process", f"{peak_rss_gib():.1f} GiB", "-", "-"),
        ("CPU other processes used meanwhile, mean / max",
         f"{np.mean(others):.2f} / {max(others):.2f} cores", "0", "-"),
    ]
    print_table(rows, f"Checks on one shared Index from {', '.join(map(str, counts))} "
                f"threads, {args.seconds:g} s each in {args.rounds} interleaved rounds "
                f"(baseline: {counts[0]} thread)")
    print_table(load_rows, f"{top} checker threads while a 5th loads {args.loads} batches "
                f"of {args.batch_records:,} records (baseline: {top} threads, no loads, "
                "just before)")
    bad = wrong + missed
    print(f"\nwrong answers: {bad}; done in {time.perf_counter() - wall_start:.0f} s")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
