"""Shared helpers for the benchmark scripts: data generation, timing, table printing."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sltd.synth import random_numbers, shape_for, synth_records, write_table

DATA = Path(os.environ.get("SLTD_BENCH_DATA", Path(__file__).parent / "data"))


def records_parquet(n: int, seed: int = 7) -> Path:
    """Synthetic records of size ``n`` as Parquet, generated once and cached in bench/data."""
    path = DATA / f"records_{n}_{seed}.parquet"
    if not path.exists():
        write_table(synth_records(n, seed=seed), path)
    return path


def sample_queries(path: Path, k: int, seed: int = 1) -> tuple[list[tuple], list[tuple]]:
    """``k`` listed (number, type, country) and ``k`` unlisted ones of realistic shapes."""
    t = pq.read_table(path, columns=["document_number", "document_type", "issuing_country"])
    rng = np.random.default_rng(seed)
    idx = rng.choice(t.num_rows, size=min(k, t.num_rows), replace=False)
    rows = t.take(idx).to_pylist()
    listed = [(r["document_number"], r["document_type"], r["issuing_country"]) for r in rows]
    all_numbers = set(t.column("document_number").to_pylist()) if t.num_rows <= 2_000_000 \
        else None
    unlisted = []
    for _number, doc_type, country in listed:
        candidate = random_numbers(rng, shape_for(country, doc_type), 1)[0].decode()
        if all_numbers is not None and candidate in all_numbers:
            continue
        unlisted.append((candidate, doc_type, country))
    return listed, unlisted


def latencies(fn: Callable[[tuple], object], queries: Iterable[tuple], warmup: int = 200
              ) -> list[float]:
    qs = list(queries)
    for q in qs[:warmup]:
        fn(q)
    out = []
    clock = time.perf_counter
    for q in qs:
        t = clock()
        fn(q)
        out.append(clock() - t)
    return out


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def fmt_us(s: float) -> str:
    return f"{s * 1e6:,.1f} µs" if s < 1e-3 else f"{s * 1e3:,.2f} ms"


def machine() -> str:
    import duckdb
    import rapidfuzz

    return (f"{platform.machine()} {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
            f"Python {platform.python_version()}, duckdb {duckdb.__version__}, "
            f"numpy {np.__version__}, rapidfuzz {rapidfuzz.__version__}")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def print_table(rows: list[tuple[str, str, str, str]], title: str) -> None:
    head = ("figure", "sltd", "baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def ratio(baseline: float, ours: float) -> str:
    return f"{baseline / ours:,.1f}x" if ours > 0 else "-"
