"""Bulk screening of passenger manifests (API/PNR lists) against the index.

The manifest is streamed in Arrow batches (memory stays bounded whatever its size) and
screened column-wise, never with a Python loop per row:

1. Numbers are canonicalized (:func:`sltd.normalize.canonical_numbers`); types and
   countries are mapped over their *distinct* values only. Rows that cannot be read go
   to the rejects file with row, field, value and reason, and the run goes on.
2. Folded keys are hashed in NumPy and probed against the index's in-memory key set
   (sorted needles: one pass over the sorted key array). Rows that are certainly not
   listed, nearly all of them, stop here.
3. Near misses (on by default): each of the ~500 kinds of single edit (delete, swap,
   substitute or insert at position i) is applied to the whole batch as one matrix
   operation, hashed and probed against the (country, folded key) set. The loop runs over
   edit kinds, not rows.
4. The few candidates are joined with the records in DuckDB once, at the end, and
   classified exact / partial / near (score and explanation from rapidfuzz, per hit).

With ``since`` (a time or a list version), only records added or changed since then are
screened against (for a daily re-screen after an index update).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sltd import codes
from sltd.errors import SltdError, SourceError, ValidationError, reason_of
from sltd.keyhash import country_codes, fold_matrix, matrix_hashes
from sltd.keyset import KeySnapshot
from sltd.model import TYPED, MatchKind, Reading
from sltd.mrz import mrz_fields, parse_mrz
from sltd.normalize import MAX_LENGTH, MIN_LENGTH, canonical_number, canonical_numbers
from sltd.search import FOLDED_ALPHABET, Expiries, HitIds, classify_table, near_tier
from sltd.sources import (
    Problem,
    Source,
    csv_header,
    detect_format,
    iter_batches,
    read_file,
    refuse_overwrite,
    write_rejects,
)
from sltd.store import candidate_pairs, expiry_dates

#: Manifest columns sltd reads (by default name; map others with ``mapping``).
FIELDS = ("document_number", "document_type", "issuing_country")
OUTPUT_COLUMNS = ("row", "record_number", "record_type", "record_country", "hit_id",
                  "match", "score", "explanation", "error", "evidence")
_ALPHABET = np.frombuffer(FOLDED_ALPHABET.encode(), dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class ScreenReport:
    """What a screening run did.

    Attributes:
        rows_read: manifest rows read.
        rejected: rows that could not be screened (listed in the rejects file).
        hits: hits by kind (exact, partial, near); leads are not hits.
        rows_with_hits: manifest rows with at least one hit.
        leads: lead rows in the result (with ``leads`` only).
        seconds, rows_per_second: wall time, end to end.
        out, rejects: the files written.
        problems: every problem of the rejected rows (row, field, value, reason).
    """

    rows_read: int
    rejected: int
    hits: dict[str, int]
    rows_with_hits: int
    leads: int
    seconds: float
    out: str | None
    rejects: str | None
    problems: tuple[Problem, ...] = ()
    #: The list version every hit came from (one snapshot screens the whole manifest).
    list_version: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rows_per_second"] = round(self.rows_per_second)
        d["problems"] = len(self.problems)
        return d


def _require(columns: Sequence[str], names: Sequence[str], source: Source) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        where = "" if isinstance(source, (pa.Table, pa.RecordBatch)) else f"{source}: "
        raise SourceError(f"{where}missing column(s) {', '.join(missing)}; present: "
                          f"{', '.join(names)}; map other names with --map FIELD=COLUMN",
                          source=str(source) if where else None)


def _map_distinct(col: pa.Array, convert: Callable[[str], str]) -> tuple[pa.Array, pa.Array]:
    """Apply ``convert`` to each distinct value only: (codes, null where blank or
    invalid; invalid mask). A manifest has a few hundred distinct values at most."""
    enc = col if pa.types.is_dictionary(col.type) else col.cast(pa.string()).dictionary_encode()
    mapped: list[str | None] = []
    bad: list[bool] = []
    for value in enc.dictionary.to_pylist():
        if value is None or not value.strip():
            mapped.append(None)
            bad.append(False)
            continue
        try:
            mapped.append(convert(value))
            bad.append(False)
        except ValidationError:
            mapped.append(None)
            bad.append(True)
    if not mapped:
        return pa.nulls(len(col), pa.string()), pa.array(np.zeros(len(col), bool))
    # Kept dictionary-encoded: no 1M-row string copy per batch, only the (few) candidate
    # rows are ever taken. Blank and invalid values become null indices.
    indices = enc.indices
    if None in mapped:
        blank = pa.array([m is None for m in mapped], pa.bool_())
        indices = pc.if_else(pc.fill_null(blank.take(indices), True),
                             pa.nulls(len(indices), indices.type), indices)
    out = pa.DictionaryArray.from_arrays(
        indices, pa.array([m or "" for m in mapped], pa.string()))
    invalid = (pc.fill_null(pa.array(bad, pa.bool_()).take(enc.indices), False) if any(bad)
               else pa.array(np.zeros(len(col), bool)))
    return out, invalid


def screen(source: Source, *, keys: KeySnapshot, hit_ids: HitIds,
           con: duckdb.DuckDBPyConnection, now: dt.datetime, ncb: str,
           out: str | os.PathLike[str] | None = None,
           format: str | None = None, mapping: Mapping[str, str] | None = None,
           keep: Sequence[str] = (), rejects: str | os.PathLike[str] | None = None,
           exact_only: bool = False, since: dt.datetime | int | None = None,
           batch_rows: int = 1_000_000, mrz_column: str | None = None,
           progress: Callable[[int], None] | None = None,
           index_path: str | None = None, leads: bool = False,
           lapsed: frozenset[int] = frozenset()
           ) -> tuple[pa.Table, ScreenReport]:
    """Screen every document of a manifest; one result row per first-level hit.

    Args:
        source: CSV, Parquet, JSON Lines, Arrow IPC file or an Arrow table.
        keys: the index's key sets (one snapshot for the whole run).
        hit_ids: mints the hit ids of the result.
        con: a DuckDB cursor of the index (this thread's), for the join with ``since``.
        now: issue time of the hit ids.
        ncb: the searching NCB the hit ids are issued to.
        out: write the hits here (Parquet, or CSV by the file name) when given.
        mapping: sltd field -> manifest column (``document_number`` is required;
            ``document_type`` and ``issuing_country`` are used when present).
        keep: manifest columns carried through unchanged into each result row
            (e.g. ``passenger_id``).
        rejects: CSV file for rows that could not be screened (row, field, value, reason).
        exact_only: skip near-miss matching.
        leads: keep leads in the result (``match`` = ``lead``): listed numbers one edit
            away that no evidence supports (:func:`sltd.search.near_tier`). They are
            never counted as hits.
        since: screen only against records added or changed since this UTC time, or
            since this list version (by a later one).
        batch_rows: rows per batch (bounds memory).
        mrz_column: read number, type and country from this column of machine-readable
            zones instead (TD1, TD2, TD3, MRV; lines joined or separated by white space).
            Fields are sliced column-wise; the number's check digit is verified and, as in
            single MRZ checks, near misses it rules out are dropped (other check digits
            are not verified in bulk).
        progress: called with the number of rows done after each batch.
        index_path: the index file, which ``out`` and ``rejects`` must not be either.
        lapsed: ids of records whose review date has come: they no longer hit.

    Returns:
        (hits table, report). Columns: ``row`` (1-based position in the manifest), the
        ``keep`` columns, ``record_number, record_type, record_country, hit_id, match,
        score, explanation, error, evidence, list_version`` (the version every row was
        screened against; also in the report).
    """
    start = time.perf_counter()
    mapping = dict(mapping or {})
    src_cols = {f: mapping.get(f, f) for f in FIELDS}
    bad_fields = [c for c in keep if c in src_cols.values()]
    if bad_fields:
        raise SourceError(f"--keep {', '.join(bad_fields)}: already read as a document field")
    for target, what in ((out, "result file"), (rejects, "rejects file")):
        if target is not None:  # never over the manifest, nor the index read with it
            refuse_overwrite(target, [source, index_path], what=what)
    if out is not None and rejects is not None:
        refuse_overwrite(rejects, [out], what="rejects file")
    source, format, problems = _resolve(source, format)
    columns_present = _present_columns(source, format)
    if mrz_column is not None:
        wanted = [mrz_column]
        src_cols = {"mrz": mrz_column}
    else:
        wanted = [src_cols["document_number"]]
        for f in FIELDS[1:]:
            if src_cols[f] in columns_present:
                wanted.append(src_cols[f])
    wanted += [c for c in keep if c not in wanted]
    _require(wanted, columns_present, source)
    dictionary = [src_cols[f] for f in FIELDS[1:] if f in src_cols and src_cols[f] in wanted]
    cand_parts: list[pa.Table] = []
    rows_read = len(problems)
    # Batches are screened on both cores (NumPy and Arrow release the GIL); at most a few
    # are in flight, so memory stays bounded whatever the manifest's size.
    in_flight: list[Future[tuple[list[Problem], list[pa.Table]]]] = []

    def collect(fut: Future[tuple[list[Problem], list[pa.Table]]]) -> None:
        bad_rows, parts = fut.result()
        problems.extend(bad_rows)
        cand_parts.extend(parts)

    # An in-memory table of one batch (a batch search: Index.check_many) is screened in
    # this thread: a pool's thread start costs more than the batch gains.
    one_batch = isinstance(source, pa.Table) and source.num_rows <= batch_rows
    with contextlib.nullcontext(_Inline()) if one_batch \
            else ThreadPoolExecutor(max_workers=2) as pool:
        for batch, bad, rows in iter_batches(source, format=format, columns=wanted,
                                             batch_rows=batch_rows, dictionary=dictionary):
            problems.extend(bad)
            rows_read += batch.num_rows + len(bad)
            if batch.num_rows == 0:
                continue
            in_flight.append(pool.submit(_screen_batch, keys, batch, rows, src_cols,
                                         keep, exact_only))
            while len(in_flight) >= 3:
                collect(in_flight.pop(0))
                if progress:
                    progress(rows_read)
        for fut in in_flight:
            collect(fut)
    if progress:
        progress(rows_read)
    hits = _classify(keys, con, hit_ids, now, ncb, cand_parts, keep, since, exact_only,
                     leads, lapsed)
    if out is not None:
        _write(hits, out)
    problems.sort(key=lambda p: (p.row, p.field))
    if rejects is not None:
        write_rejects(rejects, problems)
    kinds = {k["values"]: k["counts"] for k in pc.value_counts(hits.column("match"))
             .to_pylist()} if hits.num_rows else {}
    n_leads = kinds.pop(MatchKind.LEAD.value, 0)
    counted = hits.filter(pc.not_equal(hits.column("match"), MatchKind.LEAD.value))
    report = ScreenReport(
        rows_read=rows_read, rejected=len({p.row for p in problems}), hits=kinds,
        rows_with_hits=len(pc.unique(counted.column("row"))) if counted.num_rows else 0,
        leads=n_leads,
        seconds=time.perf_counter() - start,
        out=os.fspath(out) if out is not None else None,
        rejects=os.fspath(rejects) if rejects is not None else None,
        problems=tuple(problems), list_version=keys.version.version)
    return hits, report


class _Inline:
    """An executor that runs what it is given at once, in the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - raised again by result(), as a pool does
            done.set_exception(e)
        return done


def _screen_batch(keys: KeySnapshot, batch: pa.RecordBatch, rows: np.ndarray,
                  src_cols: dict[str, str],
                  keep: Sequence[str], exact_only: bool
                  ) -> tuple[list[Problem], list[pa.Table]]:
    """Screen one batch against the key sets: its problems and its candidate rows."""
    n = batch.num_rows
    problems: list[Problem] = []
    parts: list[pa.Table] = []
    row = pa.array(rows)
    if "mrz" in src_cols:
        raw_mrz = batch.column(batch.schema.get_field_index(src_cols["mrz"]))
        fields, not_mrz = mrz_fields(raw_mrz)
        problems += _problems(row, raw_mrz, not_mrz, "mrz", _not_an_mrz)
    else:
        not_mrz = None
        fields = {f: (batch.column(i) if (i := batch.schema.get_field_index(src_cols[f])) >= 0
                      else None) for f in FIELDS}
    raw_number = fields["document_number"]
    assert raw_number is not None
    number = canonical_numbers(raw_number)
    invalid = pc.is_null(number)
    cols: dict[str, pa.Array] = {"number": number}
    for f, convert, name in (("document_type", codes.doc_type_code, "type"),
                             ("issuing_country", codes.country_code, "country")):
        column = fields[f]
        if column is None:
            cols[name] = pa.nulls(n, pa.string())
            continue
        mapped, bad_mask = _map_distinct(column, convert)
        cols[name] = mapped
        if not_mrz is not None:
            bad_mask = pc.and_(bad_mask, pc.invert(not_mrz))
        problems += _problems(row, column, bad_mask, f, convert)
        invalid = pc.or_(invalid, bad_mask)
    bad_number = pc.is_null(number)
    if not_mrz is not None:
        bad_number = pc.and_(bad_number, pc.invert(not_mrz))
        invalid = pc.or_(invalid, not_mrz)
    problems += _problems(row, raw_number, bad_number, "document_number", canonical_number)
    if pc.any(invalid).as_py():
        take: pa.Array | None = pa.array(np.flatnonzero(
            pc.invert(invalid).to_numpy(zero_copy_only=False)))
    else:
        take = None  # the common case: every row is valid, no copies
    if take is not None and len(take) == 0:
        return problems, parts

    def sel(a: pa.Array) -> pa.Array:
        return a if take is None else a.take(take)

    vnum, vtype, vcountry, vrow = (sel(cols["number"]), sel(cols["type"]),
                                   sel(cols["country"]), sel(row))
    extra = {c: sel(batch.column(batch.schema.get_field_index(c))) for c in keep}
    if "mrz" in src_cols:
        extra[_MRZ_TEXT] = sel(raw_mrz).cast(pa.string())
    folded = fold_matrix(vnum)
    hit_rows = np.flatnonzero(keys.present(matrix_hashes(folded)))
    if len(hit_rows):
        parts.append(_candidates(hit_rows, vrow, vnum, vtype, vcountry, folded, extra))
    if not exact_only:
        parts += _near_candidates(folded, vrow, vnum, vtype, vcountry, extra, keys)
    return problems, parts


def _not_an_mrz(value: Any) -> None:
    parse_mrz(str(value or ""))  # raises MRZError (or UnknownCountry) with the reason
    raise ValidationError("not an MRZ", field="mrz", value=value)  # pragma: no cover


def _resolve(source: Source, format: str | None
             ) -> tuple[Source, str | None, list[Problem]]:
    """A source as it will be streamed, and the problems met reading it so far: JSON Lines
    and Arrow files are read whole (their readers have no streaming mode here) and become
    a table (with ``__line``, the data row of each good row); others stay paths."""
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return source, None, []
    path = Path(os.fspath(source))
    if not path.is_file():
        raise SourceError(f"no such file: {path}", source=str(path))
    fmt = format or detect_format(path)
    if fmt in ("jsonl", "arrow"):
        table, problems = read_file(path, fmt)
        return table, None, problems
    return path, fmt, []


def _present_columns(source: Source, format: str | None) -> list[str]:
    """Column names of a resolved source (read from the Parquet footer or CSV header)."""
    if isinstance(source, pa.Table):
        return [c for c in source.column_names if c != "__line"]
    if isinstance(source, pa.RecordBatch):
        return source.schema.names
    try:
        if format == "parquet":
            return pq.ParquetFile(source).schema_arrow.names
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{source}: cannot read as parquet: {str(e).splitlines()[0]}",
                          source=str(source)) from None
    return csv_header(Path(os.fspath(source)))


def _problems(row: pa.Array, values: pa.Array, mask: pa.Array, field: str,
              check: Callable[[Any], Any]) -> list[Problem]:
    """Problems for the (few) masked rows, with the validator's own reason."""
    idx = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    return [Problem(i, field, value, reason_of(check, value))
            for i, value in zip(row.take(pa.array(idx)).to_pylist(),
                                values.take(pa.array(idx)).to_pylist(), strict=True)]


def _candidates(sel: np.ndarray, vrow: pa.Array, vnum: pa.Array, vtype: pa.Array,
                vcountry: pa.Array, folded: np.ndarray, extra: dict[str, pa.Array],
                probe: np.ndarray | None = None) -> pa.Table:
    take = pa.array(sel)
    keys = probe if probe is not None else folded[sel]
    fold = pa.array([bytes(k).rstrip(b"\0").decode() for k in keys], pa.string())
    return pa.table({"row": vrow.take(take), "number": vnum.take(take),
                     "type": vtype.take(take), "country": vcountry.take(take), "fold": fold,
                     "fold_hash": matrix_hashes(keys),
                     **{c: a.take(take) for c, a in extra.items()}})


def _near_candidates(folded: np.ndarray, vrow: pa.Array, vnum: pa.Array, vtype: pa.Array,
                     vcountry: pa.Array, extra: dict[str, pa.Array], keys: KeySnapshot
                     ) -> list[pa.Table]:
    """Rows with a listed folded key one edit away, one candidate per (row, variant)."""
    lengths = (folded != 0).sum(axis=1)
    has_country = pc.is_valid(vcountry).to_numpy(zero_copy_only=False)
    cc = country_codes(vcountry) if len(vcountry) else np.zeros(0, np.uint64)  # used with_c
    parts = []
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        block = folded[rows, :length]
        for variant, valid in _edits(block, int(length)):
            keep_rows = rows if valid is None else rows[valid]
            v = variant if valid is None else variant[valid]
            if len(keep_rows) == 0:
                continue
            padded = np.zeros((len(v), 24), dtype=np.uint8)
            padded[:, : v.shape[1]] = v
            h = matrix_hashes(padded)
            found = np.zeros(len(v), dtype=bool)
            with_c = has_country[keep_rows]
            if with_c.any():
                found[with_c] = keys.present(h[with_c], cc[keep_rows[with_c]])
            if (~with_c).any():
                found[~with_c] = keys.present(h[~with_c])
            hit = np.flatnonzero(found)
            if len(hit):
                parts.append(_candidates(keep_rows[hit], vrow, vnum, vtype, vcountry, folded,
                                         extra, probe=padded[hit]))
    return parts


def _edits(block: np.ndarray, n: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Every single edit of an (rows, n) block of folded keys, one kind at a time:
    (variant matrix, mask of rows where it differs from the key, or None for all)."""
    if n - 1 >= MIN_LENGTH:
        for i in range(n):
            yield np.delete(block, i, axis=1), None
    for i in range(n - 1):
        v = block.copy()
        v[:, [i, i + 1]] = v[:, [i + 1, i]]
        yield v, block[:, i] != block[:, i + 1]
    for i in range(n):
        for c in _ALPHABET:
            v = block.copy()
            v[:, i] = c
            yield v, block[:, i] != c
    if n + 1 <= MAX_LENGTH:
        for i in range(n + 1):
            for c in _ALPHABET:
                yield np.insert(block, i, c, axis=1), None


def _classify(keys: KeySnapshot, con: duckdb.DuckDBPyConnection, hit_ids: HitIds,
              now: dt.datetime, ncb: str,
              parts: list[pa.Table], keep: Sequence[str], since: dt.datetime | int | None,
              exact_only: bool, leads: bool = False,
              lapsed: frozenset[int] = frozenset()) -> pa.Table:
    schema = pa.schema([("row", pa.int64()), *((c, pa.string()) for c in keep),
                        ("record_number", pa.string()), ("record_type", pa.string()),
                        ("record_country", pa.string()), ("hit_id", pa.string()),
                        ("match", pa.string()), ("score", pa.float64()),
                        ("explanation", pa.string()), ("error", pa.string()),
                        ("evidence", pa.string()), ("list_version", pa.int64())])
    if not parts:
        return schema.empty_table()
    cands = pa.concat_tables(parts, promote_options="permissive")
    carried = [*keep, *([_MRZ_TEXT] if _MRZ_TEXT in cands.column_names else [])]
    # From the key table, which holds every first-level field; only records' change
    # times (--since) need DuckDB (130M records: a scan of records.fold_hash, ~3 s).
    pairs = keys.pairs(cands, carried) if since is None else \
        candidate_pairs(con, cands, carried, since)
    if lapsed and pairs.num_rows:  # records whose review date has come do not hit
        pairs = pairs.filter(pc.invert(pc.is_in(pairs.column("record_id"), value_set=pa.array(
            sorted(lapsed), pairs.schema.field("record_id").type))))
    hits = _tiers(classify_table(pairs, exact_only=exact_only), leads,
                  lambda ids: expiry_dates(con, ids), keys.carries)
    return pa.table({
        "row": hits["row"], **{k: hits[k].cast(pa.string()) for k in keep},
        "record_number": hits["record_number"], "record_type": hits["record_type"],
        "record_country": hits["record_country"],
        "hit_id": hit_ids.mint_many(hits["record_id"].to_pylist(), now.timestamp(), ncb),
        "match": hits["match"], "score": hits["score"],
        "explanation": hits["explanation"], "error": hits["error"],
        "evidence": hits["evidence"],
        "list_version": pa.repeat(pa.scalar(keys.version.version, pa.int64()),
                                  len(hits["row"]))}, schema=schema)


#: Candidate column of MRZ screening: the MRZ's text, read again for the few near rows.
_MRZ_TEXT = "_mrz_text"


def _reading(text: str) -> Reading:
    """What an MRZ that screening sliced says of its number (nothing, in the unlikely
    case that the full parser refuses what the column-wise slicing accepted)."""
    try:
        return parse_mrz(text).reading
    except SltdError:
        return TYPED


def _tiers(hits: pa.Table, leads: bool, expiries: Expiries,
           carries: Callable[[str, str, int, str], bool]) -> pa.Table:
    """The near-miss policy (:func:`sltd.search.near_tier`) on the near rows of
    classified pairs: each becomes a near hit or a lead with its error class and evidence
    (comma-separated), or is dropped; leads are kept only with ``leads``. An MRZ row
    gives what a single MRZ check reads (:attr:`sltd.mrz.MRZ.reading`: the number's check
    digit, the expiry date), its MRZ parsed again (near rows are few); a typed row gives
    only its number (a manifest's expiry dates are not read: typed edit-distance
    candidates stay leads); ``carries`` is :meth:`sltd.keyset.KeySnapshot.carries`."""
    n = hits.num_rows
    match = hits["match"].to_numpy(zero_copy_only=False).astype(object)
    error: list[str | None] = [None] * n
    evidence: list[str | None] = [None] * n
    keep = np.ones(n, bool)
    near = np.flatnonzero(match == MatchKind.NEAR.value)
    if len(near):
        idx = pa.array(near)
        mrz = _MRZ_TEXT in hits.column_names
        columns = [hits[c].take(idx).to_pylist() for c in (
            "number", "record_number", "record_id", "record_country", "record_type",
            *((_MRZ_TEXT,) if mrz else ()))]
        readings = {text: _reading(text) for text in set(columns[5])} if mrz else {}
        dated = [r for r, *text in zip(columns[2], *columns[5:], strict=True)
                 if text and readings[text[0]].expiry is not None]
        known = expiries(dated) if dated else {}
        for i, read, listed, record_id, country, doc_type, *text in zip(
                near.tolist(), *columns, strict=True):
            reading = readings[text[0]] if text else TYPED
            tier = near_tier(read, listed, reading, known.get(record_id),
                             functools.partial(carries, country, doc_type))
            if tier is None or (tier[0] is MatchKind.LEAD and not leads):
                keep[i] = False
                continue
            match[i], error[i] = tier[0].value, tier[1].value
            evidence[i] = ",".join(e.value for e in tier[2])
    hits = hits.set_column(hits.schema.get_field_index("match"), "match",
                           pa.array(match, pa.string())) \
        .append_column("error", pa.array(error, pa.string())) \
        .append_column("evidence", pa.array(evidence, pa.string()))
    hits = hits.filter(pa.array(keep))
    if leads and hits.num_rows:  # leads after the near hits of their row, as in checks
        tier = pc.equal(hits["match"], MatchKind.LEAD.value).cast(pa.int8())
        order = pc.sort_indices(hits.append_column("_lead", tier), sort_keys=[
            ("row", "ascending"), ("_lead", "ascending")])
        hits = hits.take(order)  # a stable sort keeps classify_table's order otherwise
    return hits


def _write(table: pa.Table, out: str | os.PathLike[str]) -> None:
    fmt = detect_format(out)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, out)
    elif fmt == "csv":
        import pyarrow.csv as pacsv
        pacsv.write_csv(table, out)
    else:
        raise SltdError(f"write results as .parquet or .csv, not {fmt}")
