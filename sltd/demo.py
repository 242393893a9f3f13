"""The demo job: build an index of synthetic records, then check a few documents.

It shows each kind of answer an officer meets: an exact hit, a partial hit (same number,
other country), near misses (an OCR confusion, a transposition), and a clean miss.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sltd.index import open_index
from sltd.synth import synth_records, write_table


def run(workdir: Path, n: int, *, seed: int = 2026) -> Iterator[str]:
    """Build ``workdir/demo.duckdb`` from ``n`` synthetic records and check samples.

    Yields the lines to print.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    records = workdir / "records.parquet"
    db = workdir / "demo.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    table = synth_records(n, seed=seed, numbering="ranges")
    write_table(table, records)
    yield f"generated {n} synthetic SLTD records -> {records}"
    with open_index(db, create=True) as index:
        index.set_home_ncb("DEU", officer="demo")  # so its hit ids can be revealed
        report = index.load(records, rejects=workdir / "rejects.csv", officer="demo")
        yield (f"loaded {report.inserted} records into {db} in {report.seconds:.1f} s "
               f"({report.rejected} rejected)")
        # issued passports reported lost or stolen: the commonest hit (a stolen blank's
        # neighbours are listed too, so each of its near misses finds ~20 records)
        passports = table.filter(pc.and_(pc.and_(
            pc.equal(table.column("document_type"), "P"),
            pc.is_in(table.column("status"), pa.array(["lost", "stolen"]))),
            pc.is_valid(table.column("date_of_expiry"))))
        listed = passports.slice(0, 2).to_pylist()
        a, b = listed[0], listed[1]
        num_a = a["document_number"]
        ocr = _ocr_error(num_a)
        swapped = _transposed(num_a)
        other = "CAN" if a["issuing_country"] != "CAN" else "AUS"
        queries = [
            ("listed passport, exact", num_a, "P", a["issuing_country"]),
            ("same number, other country", num_a, "P", other),
            ("listed, read with one OCR error", ocr, "P", a["issuing_country"]),
            ("listed, two characters swapped: a lead", swapped, "P", a["issuing_country"]),
            ("the same, with the document's expiry date: a near hit", swapped, "P",
             a["issuing_country"]),
            ("listed, typed with spaces/lower case",
             " ".join([b["document_number"][:4].lower(), b["document_number"][4:]]),
             "passport", b["issuing_country"]),
            ("clean document", "ZZ0000001", "P", "FRA"),
        ]
        for label, number, doc_type, country in queries:
            t = time.perf_counter()
            expiry = a["date_of_expiry"] if "expiry" in label else None
            # leads (listed numbers one edit away) only where the demo is about them:
            # in a dense range most numbers have some
            hits = index.check(number, doc_type, country, leads="lead" in label,
                               expiry=expiry)
            ms = (time.perf_counter() - t) * 1000
            yield ""
            dated = f" --expiry {expiry}" if expiry else ""
            yield f"check {number!r} {doc_type} {country}{dated}  [{label}]  {ms:.2f} ms"
            if not any(h.match.is_hit for h in hits):
                yield "  no hit: not listed"
            for h in hits:
                why = f"  ({h.explanation}; score {h.score:.0f}; {h.error})" \
                    if h.explanation else ""
                tier = f"HIT {h.match.value:<7}" if h.match.is_hit else "LEAD       "
                yield f"  {tier} {h.number} {h.doc_type} {h.country}{why}"
    yield ""
    yield f"done in {time.perf_counter() - start:.1f} s; try: sltd --db {db} check {num_a}"


def _transposed(number: str) -> str:
    """``number`` with the first two different neighbours from the third on swapped."""
    i = next((i for i in range(2, len(number) - 1) if number[i] != number[i + 1]), 0)
    return number[:i] + number[i + 1] + number[i] + number[i + 2:]


def _ocr_error(number: str) -> str:
    """One OCR-style confusion in ``number`` (a digit read as a look-alike letter)."""
    swaps = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G"}
    for i, ch in enumerate(number):
        if ch in swaps:
            return number[:i] + swaps[ch] + number[i + 1 :]
    return number[:-1] + ("0" if number[-1] != "0" else "1")
