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

from sltd.synth import (
    random_numbers,
    shape_for,
    synth_manifest,
    synth_records,
    write_synth,
    write_table,
)

DATA = Path(os.environ.get("SLTD_BENCH_DATA", Path(__file__).parent / "data"))


def records_parquet(n: int, seed: int = 7) -> Path:
    """Synthetic records of size ``n`` as Parquet, generated once and cached in bench/data."""
    path = DATA / f"records_{n}_{seed}.parquet"
    if not path.exists():
        write_table(synth_records(n, seed=seed), path)
    return path


def ranges_parquet(n: int, seed: int = 7, *, manifest_rows: int | None = None,
                   listed: float = 0.001) -> tuple[Path, Path | None]:
    """Ranges-numbered synthetic records of size ``n`` (each issuer's sequential ranges,
    dates following the serial, stolen-blank batches; see sltd/issuance.py) as Parquet,
    and with ``manifest_rows`` a manifest of that many passengers (``listed`` of them
    carrying listed documents, the others clean documents from the same ranges, every
    row with its document's true issue and expiry dates and a ``listed`` column);
    generated once and cached in bench/data.

    Both stream, so a 130M-record world fits: the records are written batch by batch
    (0.5 GiB peak whatever n; ~1.3M records/s here), and the manifest reads them back
    batch by batch (the manifest itself is built in memory, ~100 B per passenger). A
    file appears only once complete.
    """
    path = DATA / f"ranges_{n}_{seed}.parquet"
    if not path.exists():
        write_synth(path, n, seed=seed, numbering="ranges")
    if manifest_rows is None:
        return path, None
    manifest = DATA / f"ranges_manifest_{manifest_rows}_{listed:g}_{n}_{seed}.parquet"
    if not manifest.exists():
        partial = manifest.with_name(manifest.name + ".partial")
        write_table(synth_manifest(path, manifest_rows, listed=listed, seed=seed + 1), partial)
        os.replace(partial, manifest)
    return path, manifest


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
