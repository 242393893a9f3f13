"""The ``sltd`` command: a thin click layer over the library.

Each command opens the index, makes one library call and renders the result. Library
errors become one line on stderr in one place (:class:`_Group`), never a traceback.

Exit codes:
    0  success; for ``check``: not listed
    1  ``check`` found at least one hit
    2  usage error (bad option or argument)
    3  sltd error (bad input, missing index, unreadable file ...)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sltd import demo as demo_mod
from sltd.errors import SltdError
from sltd.index import Index, default_db_path, open_index
from sltd.model import Hit
from sltd.mrz import MRZ

EXIT_HIT = 1
EXIT_ERROR = 3


class _Group(click.Group):
    """Turns every SltdError into one line on stderr and exit code 3."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SltdError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_ERROR)


def _open(ctx: click.Context, *, create: bool = False) -> Index:
    index = open_index(ctx.obj["db"], create=create)
    ctx.call_on_close(index.close)
    return index


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str, sort_keys=False))


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object instead of text.")(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="Index file (default: $SLTD_DB, else ./sltd.duckdb).")
@click.version_option(package_name="sltd")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Check travel documents against a stolen and lost travel documents index.

    Exit codes: 0 success (check: not listed), 1 check found a hit, 2 usage error,
    3 error (bad input, missing index, unreadable file).
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db or default_db_path()


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create an empty index (does nothing to an existing one)."""
    index = _open(ctx, create=True)
    click.echo(f"index ready: {index.path} ({len(index)} records)")


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl", "arrow"]),
              help="Input format (default: from the file name).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Read FIELD from COLUMN, e.g. --map document_number=doc_no (repeatable).")
@click.option("--rejects", type=click.Path(dir_okay=False),
              help="Write rejected rows here (default: SOURCE.rejects.csv).")
@click.option("--create/--no-create", default=True, show_default=True,
              help="Create the index if it does not exist.")
@json_option
@click.pass_context
def load(ctx: click.Context, source: str, fmt: str | None, mapping: tuple[str, ...],
         rejects: str | None, create: bool, as_json: bool) -> None:
    """Load or update records from a CSV, Parquet, JSON Lines or Arrow file.

    Default columns: document_number, document_type, issuing_country, status, owner_ncb,
    place_of_loss, date_of_loss, date_of_issue, date_of_expiry. Invalid rows are left out
    and written to the rejects file with row, field, value and reason; the load is one
    transaction and reloading the same file changes nothing.
    """
    fields = _parse_mapping(mapping)
    index = _open(ctx, create=create)
    rejects = rejects or f"{source}.rejects.csv"
    report = index.load(source, format=fmt, mapping=fields, rejects=rejects)
    if as_json:
        _echo_json(report.as_dict())
        return
    click.echo(f"{report.source}: {report.rows_read} rows read, {report.inserted} inserted, "
               f"{report.updated} updated, {report.unchanged} unchanged, "
               f"{report.rejected} rejected ({report.seconds:.1f} s)")
    if report.rejected:
        click.echo(f"rejected rows with reasons: {report.rejects_path}")
        for p in report.problems[:5]:
            click.echo(f"  row {p.row}: {p.field}={p.value!r}: {p.reason}")
        if len(report.problems) > 5:
            click.echo(f"  ... {len(report.problems) - 5} more")


def _parse_mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(f"{pair!r}: expected FIELD=COLUMN", param_hint="--map")
        out[field.strip()] = column.strip()
    return out


@cli.command()
@click.argument("number", required=False)
@click.option("--type", "doc_type", help="Document type: code or name (P, passport, I ...).")
@click.option("--country", help="Issuing country: ICAO code (FRA, D, UNO ...).")
@click.option("--mrz", help="Check by machine-readable zone instead of NUMBER (lines "
              "separated by newlines).")
@click.option("--exact-only", is_flag=True, help="Skip near-miss search.")
@click.option("--searcher", envvar="SLTD_SEARCHER", default="",
              help="Who searches (NCB code); hit ids are bound to it [env: SLTD_SEARCHER].")
@json_option
@click.pass_context
def check(ctx: click.Context, number: str | None, doc_type: str | None, country: str | None,
          mrz: str | None, exact_only: bool, searcher: str, as_json: bool) -> None:
    """First-level check of one document, by NUMBER or --mrz. Exit 1 if listed, 0 if not."""
    if (number is None) == (mrz is None):
        raise click.UsageError("give either NUMBER or --mrz")
    if mrz is not None and (doc_type or country):
        raise click.UsageError("--type and --country come from the MRZ; do not give them")
    index = _open(ctx)
    read: MRZ | None = None
    if mrz is not None:
        result = index.check_mrz(mrz, exact_only=exact_only, searcher=searcher)
        hits, read = result.hits, result.mrz
    else:
        assert number is not None
        hits = index.check(number, doc_type, country, exact_only=exact_only,
                           searcher=searcher)
    if as_json:
        out: dict[str, Any] = {"hits": [h.as_dict() for h in hits]}
        if read is not None:
            out["mrz"] = read.as_dict()
        _echo_json(out)
    else:
        if read is not None:
            state = ("check digits OK" if read.consistent else
                     "INCONSISTENT: check digit fails for " + ", ".join(read.failed_checks))
            click.echo(f"MRZ {read.format}: {read.number} {read.doc_type} {read.country}; "
                       f"{state}")
        if not hits:
            click.echo("no hit: not listed")
        for h in hits:
            click.echo(_hit_line(h))
    ctx.exit(EXIT_HIT if hits else 0)


def _hit_line(h: Hit) -> str:
    line = (f"HIT {h.match.value:<7} {h.number:<12} {h.doc_type!s:<2} {h.country}  "
            f"hit_id={h.hit_id}")
    if h.explanation:
        line += f"  ({h.explanation}; score {h.score:.0f})"
    return line


@cli.command()
@click.argument("number")
@click.option("--type", "doc_type", required=True, help="Document type of the record.")
@click.option("--country", required=True, help="Issuing country of the record.")
@click.option("--reason", help="Why (e.g. 'document recovered').")
@click.pass_context
def withdraw(ctx: click.Context, number: str, doc_type: str, country: str,
             reason: str | None) -> None:
    """Withdraw a record (document recovered): kept in history, no longer hit."""
    index = _open(ctx)
    index.withdraw(number, doc_type, country, reason=reason)
    click.echo(f"withdrawn: {number} {doc_type} {country}")


@cli.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts of records by status, type and country; history; key-set memory."""
    s = _open(ctx).stats()
    if as_json:
        _echo_json(s)
        return
    click.echo(f"{s['path']}: {s['records']} active records, last change {s['last_change']}")
    for name in ("by_status", "by_type", "top_countries", "history"):
        items = ", ".join(f"{k} {v}" for k, v in s[name].items()) or "none"
        click.echo(f"  {name.replace('_', ' ')}: {items}")
    per = s["key_set_bytes"] / s["records"] if s["records"] else 0
    click.echo(f"  in-memory key sets: {s['key_set_bytes'] / 1e6:.1f} MB ({per:.1f} B/record)")


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--records", "n", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="How many records.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def synth(out: str, n: int, seed: int) -> None:
    """Write synthetic records (CSV, Parquet or JSON Lines, by OUT's name)."""
    from sltd.synth import synth_records, write_table

    write_table(synth_records(n, seed=seed), out)
    click.echo(f"wrote {n} synthetic records to {out}")


@cli.command()
@click.option("--records", "n", type=click.IntRange(min=100), default=100_000,
              show_default=True, help="Size of the demo index.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="sltd-demo",
              show_default=True, help="Where the demo writes its files.")
def demo(n: int, workdir: str) -> None:
    """Build a demo index of synthetic records and check a few documents against it."""
    for line in demo_mod.run(Path(workdir), n):
        click.echo(line)


def main() -> None:
    """Console entry point."""
    cli(prog_name="sltd")

