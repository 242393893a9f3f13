"""The ``sltd`` command: a thin click layer over the library.

Each command opens the index, makes one library call and renders the result. Library
errors become one line on stderr in one place (:class:`_Group`), never a traceback.

Exit codes:
    0  success; for ``check`` and ``screen``: not listed
    1  ``check`` or ``screen`` found at least one hit (and nothing else means 1)
    2  usage error (bad option or argument)
    3  any error (bad input, missing index, index busy, unreadable file, unexpected
       failure), as one line on stderr
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from sltd import demo as demo_mod
from sltd.errors import IndexBusy, SltdError, SourceError
from sltd.index import Index, LoadProgress, Pinned, Replay, default_db_path, open_index
from sltd.model import CONTROL_CHARACTERS, Hit, HitCase
from sltd.mrz import MRZ, parse_mrz
from sltd.sources import Problem, refuse_overwrite, write_rejects
from sltd.store import SCHEMA_VERSION
from sltd.synth import (
    NUMBERINGS,
    Numbering,
    synth_manifest,
    synth_records,
    write_synth,
    write_table,
)

EXIT_HIT = 1
EXIT_ERROR = 3
_CONTROL = re.compile(CONTROL_CHARACTERS)


class _Group(click.Group):
    """The one place errors are rendered: an SltdError, or anything unexpected (a file
    that cannot be written, a broken Parquet file, a database error), becomes one line on
    stderr and exit code 3, never a traceback, and never exit 1 (which means "hit")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.UsageError):
            raise
        except click.ClickException as e:  # click would exit 1, which means "hit"
            _fail(ctx, e.format_message())
        except (KeyboardInterrupt, click.Abort):  # click would print "Aborted!", exit 1
            _fail(ctx, "interrupted")
        except SltdError as e:
            _fail(ctx, str(e) or type(e).__name__)
        except Exception as e:  # noqa: BLE001 - the CLI boundary: nothing escapes as a trace
            _fail(ctx, f"{type(e).__name__}: {e}")


def _fail(ctx: click.Context, message: str) -> NoReturn:
    click.echo(f"error: {_one_line(message)}", err=True)
    ctx.exit(EXIT_ERROR)


def _one_line(message: str) -> str:
    """One terminal line: white space folded, control characters escaped (an input's
    bytes in a message must not drive the terminal), cut at 500 characters."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], " ".join(message.split()))
    return text if len(text) <= 500 else text[:500] + "..."


#: Commands that run against a service with --server.
_REMOTE = ("check", "reveal", "confirm", "reject", "hits", "alerts", "load", "withdraw",
           "stats")


def _open(ctx: click.Context, *, create: bool = False) -> Index:
    root = ctx.find_root().obj
    if root.get("server"):
        raise click.UsageError(f"`{ctx.info_name}` works on the index file, not with "
                               f"--server (which serves {', '.join(_REMOTE)})")
    try:
        index = open_index(root["db"], create=create, wait=root["wait"])
    except IndexBusy as e:
        served = _served_by(root["db"], e.pid)
        if served is None:
            raise
        command = ctx.info_name or ""
        if ctx.parent is not None and ctx.parent.parent is not None:  # a group's command
            command = f"{ctx.parent.info_name} {command}"
        what = (f"run this command with --server {served} (and $SLTD_TOKEN)"
                if command in _REMOTE else
                f"`{command}` needs the file itself: stop the service first"
                + (f" (or make keys through {served}/v1/keys with an admin key)"
                   if command.startswith("keys ") else ""))
        raise IndexBusy(f"{root['db']} is served by `sltd serve` at {served} (pid {e.pid}): "
                        f"{what}", path=e.path, pid=e.pid) from None
    ctx.call_on_close(index.close)
    return index


def _open_replica(ctx: click.Context) -> Any:
    """The index file for a command a sealed replica also serves (check, sync): an
    :class:`Index`, or a :class:`sltd.sealed.SealedReplica`."""
    from sltd.errors import SealedReplicaError

    try:
        return _open(ctx)
    except SealedReplicaError:
        from sltd.sealed import open_sealed

        replica = open_sealed(ctx.find_root().obj["db"])
        ctx.call_on_close(replica.close)
        return replica


def _served_by(db: str, pid: int | None) -> str | None:
    """The URL of the service holding ``db``, from the note it leaves beside the file."""
    from sltd.service import served_url

    return served_url(db, pid)


def _remote(ctx: click.Context) -> Any:
    """A client of the service given by --server (None: work on the file)."""
    root = ctx.find_root().obj
    if not root.get("server"):
        return None
    from sltd.client import Client

    client = Client(root["server"], root["token"])
    ctx.call_on_close(client.close)
    return client


def _shown(value: Any, limit: int = 60) -> str:
    """A rejected value as the terminal shows it: quoted, and cut if long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} chars)"


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str, sort_keys=False))


def ncb_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--ncb", envvar="SLTD_NCB", default=None, show_envvar=True,
                        help="Your NCB (country code); hit ids are bound to it "
                             "(default: the index's home NCB, see init --ncb).")(f)


def officer_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--officer", envvar="SLTD_OFFICER", default="", show_envvar=True,
                        help="Your name, for the audit trail.")(f)


def required_officer_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--officer", envvar="SLTD_OFFICER", required=True,
                        show_envvar=True, help="Who acts (audited).")(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object instead of text.")(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="Index file (default: $SLTD_DB, else ./sltd.duckdb).")
@click.option("--wait", type=click.FloatRange(min=0), envvar="SLTD_WAIT", default=5.0,
              show_default=True, show_envvar=True,
              help="Seconds to wait while another process holds the index file.")
@click.option("--server", envvar="SLTD_SERVER", show_envvar=True, metavar="URL",
              help="Run check, reveal, confirm, reject, hits, alerts, load, withdraw and "
                   "stats against `sltd serve` at URL instead of the file (key: "
                   "$SLTD_TOKEN).")
@click.option("--token", envvar="SLTD_TOKEN", show_envvar=True, hidden=True, default="")
@click.version_option(package_name="sltd")
@click.pass_context
def cli(ctx: click.Context, db: str | None, wait: float, server: str | None,
        token: str) -> None:
    """Check travel documents against a stolen and lost travel documents index.

    Exit codes: 0 success (check, screen: not listed), 1 check or screen found a hit,
    2 usage error, 3 error (bad input, missing index, index busy, unreadable file).
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db or default_db_path()
    ctx.obj["wait"] = wait
    ctx.obj["server"] = server or None
    ctx.obj["token"] = token


@cli.command()
@click.option("--ncb", help="The NCB this index belongs to (country code, or GS): the "
              "searching NCB of checks that name none.")
@click.option("--validation-minutes", type=float,
              help="Validation window for new hit cases, as national law sets it "
                   "(default 60).")
@click.option("--review-years", type=int,
              help="Years from a record's entry or update to its review date, when it "
                   "gives none (default 10).")
@officer_option
@click.pass_context
def init(ctx: click.Context, ncb: str | None, validation_minutes: float | None,
         review_years: int | None, officer: str) -> None:
    """Create an empty index, or change an existing one's settings (records are kept)."""
    index = _open(ctx, create=True)
    if ncb is not None:
        index.set_home_ncb(ncb, officer=officer)
    if validation_minutes is not None:
        index.set_validation_window(validation_minutes, officer=officer)
    if review_years is not None:
        index.set_review_years(review_years, officer=officer)
    minutes = index.validation_window.total_seconds() / 60
    home = f"home NCB {index.home_ncb}" if index.home_ncb else \
        "no home NCB: set one with `sltd init --ncb CODE`"
    click.echo(f"index ready: {index.path} ({len(index)} records, {home}, validation "
               f"window {minutes:g} min)")


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl", "arrow"]),
              help="Input format (default: from the file name).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Read FIELD from COLUMN, e.g. --map document_number=doc_no (repeatable).")
@click.option("--rejects", type=click.Path(dir_okay=False),
              help="Write the rejected rows here, even if none (default: "
                   "SOURCE.rejects.csv, only when some rows are rejected).")
@click.option("--create/--no-create", default=True, show_default=True,
              help="Create the index if it does not exist.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@officer_option
@json_option
@click.pass_context
def load(ctx: click.Context, source: str, fmt: str | None, mapping: tuple[str, ...],
         rejects: str | None, create: bool, quiet: bool, officer: str, as_json: bool) -> None:
    """Load or update records from a CSV, Parquet, JSON Lines or Arrow file.

    Default columns: document_number, document_type, issuing_country, status, owner_ncb,
    place_of_loss, date_of_loss, date_of_issue, date_of_expiry. Invalid rows are left out
    and written to the rejects file with row, field, value and reason; the load is one
    transaction (read in batches: any size of file loads) and reloading the same file
    changes nothing.
    """
    fields = _parse_mapping(mapping)
    client = _remote(ctx)
    if client is not None:
        if fields or fmt or rejects:
            raise click.UsageError("--map, --format and --rejects work on the file; the "
                                   "service reads default column names")
        _remote_load(client, source, as_json)
        return
    index = _open(ctx, create=create)
    with _LoadBar(show=not quiet and not as_json and _on_terminal()) as bar:
        report = index.load(source, format=fmt, mapping=fields, rejects=rejects,
                            officer=officer, progress=bar)
    if rejects is None and report.problems:
        rejects = _write_default_rejects(
            f"{source}.rejects.csv", report.problems, [source, index.path],
            done=f"{report.source}: loaded ({report.inserted} inserted, {report.updated} "
                 f"updated, {report.rejected} rejected)",
            again="load again with --rejects PATH (reloading changes nothing)")
        report = dataclasses.replace(report, rejects_path=rejects)
    if as_json:
        _echo_json(report.as_dict())
        return
    click.echo(f"{report.source}: {report.rows_read} rows read, {report.inserted} inserted, "
               f"{report.updated} updated, {report.unchanged} unchanged, "
               f"{report.rejected} rejected ({report.seconds:.1f} s)")
    if report.rejected:
        click.echo(f"rejected rows with reasons: {report.rejects_path}")
        for p in report.problems[:5]:
            click.echo(f"  row {p.row}: {p.field}={_shown(p.value)}: {p.reason}")
        if len(report.problems) > 5:
            click.echo(f"  ... {len(report.problems) - 5} more")


def _remote_load(client: Any, source: str, as_json: bool) -> None:
    report = client.load(source)
    if as_json:
        _echo_json({**report, "problems": len(report["problems"])})
        return
    click.echo(f"{source}: {report['rows_read']} rows read, {report['inserted']} inserted, "
               f"{report['updated']} updated, {report['unchanged']} unchanged, "
               f"{report['rejected']} rejected ({report['seconds']:.1f} s)")
    for p in report["problems"][:5]:
        click.echo(f"  row {p['row']}: {p['field']}={_shown(p['value'])}: {p['reason']}")
    if len(report["problems"]) > 5:
        click.echo(f"  ... {len(report['problems']) - 5} more")


def _on_terminal() -> bool:
    import sys

    return sys.stderr.isatty()


class _LoadBar:
    """A load's progress on stderr, if ``show``: a bar of rows read when the source's size
    is known (Parquet, Arrow), else a count; then what the load is doing after reading."""

    def __init__(self, *, show: bool, file: Any = None):
        import sys

        self.show, self.file = show, file or sys.stderr
        self.bar: Any = None
        self.shown = ""

    def __enter__(self) -> _LoadBar:
        return self

    def __call__(self, p: LoadProgress) -> None:
        if not self.show:
            return
        if self.bar is None and p.rows_total:
            self.bar = click.progressbar(length=p.rows_total, label="loading", show_pos=True,
                                         file=self.file).__enter__()
        label = "loading" if p.stage == "reading" else p.stage
        if self.bar is not None:
            self.bar.label = label
            self.bar.update(p.rows_read - self.bar.pos)
            self.bar.render_progress()
        else:
            self._line(f"{label}: {p.rows_read:,} rows read")

    def _line(self, text: str) -> None:
        click.echo(f"\r{text}{' ' * max(0, len(self.shown) - len(text))}", nl=False,
                   file=self.file)
        self.shown = text

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        elif self.shown:
            click.echo(file=self.file)


def _write_default_rejects(path: str, problems: Sequence[Problem], inputs: list[str], *,
                           done: str, again: str) -> str:
    """Write the rejected rows to the default rejects file, after the work is done: if
    that fails, the one error line says what was done all the same."""
    try:
        write_rejects(path, problems, inputs=inputs)
    except SourceError as e:
        raise SourceError(f"{done}, but {e}; {again}", source=path) from None
    return path


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
@click.option("--expiry", metavar="DATE", help="The document's expiry date (YYYY-MM-DD): "
              "a listed number one edit away with this expiry date is a near hit, not a "
              "lead.")
@click.option("--leads", is_flag=True, help="Also show leads: listed numbers one edit away "
              "that no evidence supports (never a hit: they do not change the exit code).")
@click.option("--as-of", "as_of", metavar="VERSION|TIME", help="Replay: answer as the list "
              "stood at this list version, or at this time (ISO 8601; UTC unless it says "
              "otherwise). Audited as a replay; its hits have no hit id (nothing to reveal).")
@ncb_option
@officer_option
@json_option
@click.pass_context
def check(ctx: click.Context, number: str | None, doc_type: str | None, country: str | None,
          mrz: str | None, exact_only: bool, expiry: str | None, leads: bool,
          as_of: str | None, ncb: str | None, officer: str, as_json: bool) -> None:
    """First-level check of one document, by NUMBER or --mrz. Exit 1 if listed (a hit;
    with --as-of: listed then), 0 if not (leads are not hits)."""
    if (number is None) == (mrz is None):
        raise click.UsageError("give either NUMBER or --mrz")
    if mrz is not None and (doc_type or country or expiry):
        raise click.UsageError("--type, --country and --expiry come from the MRZ; do not "
                               "give them")
    client = _remote(ctx)
    if client is not None and as_of is not None:
        raise click.UsageError("--as-of replays on the index file itself, not with --server")
    read: MRZ | None = None
    if client is not None:  # the searching NCB and officer are the key's
        from sltd.client import hit_of

        answer = client.check_json(number, doc_type, country, mrz=mrz,
                                   exact_only=exact_only, expiry=expiry, leads=leads)
        found = [hit_of(h) for h in answer["hits"] + answer.get("leads", [])]
        read = parse_mrz(mrz) if mrz is not None else None  # as the service parsed it
        version = answer["list_version"]
    else:
        from sltd.sealed import SealedReplica

        index = _open_replica(ctx)
        if isinstance(index, SealedReplica) and as_of is not None:
            raise click.UsageError("a sealed replica keeps no history: --as-of replays on "
                                   "a plain index")
        # the answer and the version it came from (a sealed replica's: the version it
        # holds, changed only by a sync, which this process does not run)
        pinned: Pinned | Replay | SealedReplica = index if isinstance(index, SealedReplica) \
            else index.pin() if as_of is None else index.replay(_as_of(as_of))
        if mrz is not None:
            result = pinned.check_mrz(mrz, exact_only=exact_only, ncb=ncb, officer=officer,
                                      leads=leads)
            found, read = result.hits, result.mrz
        else:
            assert number is not None
            found = pinned.check(number, doc_type, country, exact_only=exact_only, ncb=ncb,
                                 officer=officer, expiry=expiry, leads=leads)
        version = pinned.list_version.as_dict()
    hits = [h for h in found if h.match.is_hit]
    lead_hits = [h for h in found if not h.match.is_hit]
    if hits and client is None and not ncb and not index.home_ncb:
        click.echo("note: no searching NCB (no --ncb, and the index has no home NCB), so "
                   "no NCB can reveal these hit ids; set one with `sltd init --ncb CODE`",
                   err=True)
    if as_json:
        out: dict[str, Any] = {"hits": [h.as_dict() for h in hits]}
        if leads:
            out["leads"] = [h.as_dict() for h in lead_hits]
        if read is not None:
            out["mrz"] = read.as_dict()
        out["list_version"] = version
        _echo_json(out)
    else:
        if as_of is not None:
            click.echo(f"replay: as the list stood at {pinned.list_version}")
        if read is not None:
            state = ("check digits OK" if read.consistent else
                     "INCONSISTENT: check digit fails for " + ", ".join(read.failed_checks))
            click.echo(f"MRZ {read.format}: {read.number} {read.doc_type} {read.country}; "
                       f"{state}")
        if not hits:
            click.echo("no hit: not listed")
        for h in hits + lead_hits:
            click.echo(_hit_line(h))
        if client is None and index.replica_of and as_of is None:  # an offline copy: how old
            version = pinned.list_version
            click.echo(f"replica: {version}, {_age(index, version)}")
    ctx.exit(EXIT_HIT if hits else 0)


def _since(text: str) -> int | dt.datetime:
    """--since: a list version, or a date or time (UTC)."""
    if text.strip().isdigit():
        return int(text)
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        with contextlib.suppress(ValueError):
            return dt.datetime.strptime(text.strip(), fmt).replace(tzinfo=dt.UTC)
    raise click.BadParameter(f"{text!r}: expected a list version, YYYY-MM-DD or "
                             "YYYY-MM-DDTHH:MM:SS", param_hint="--since")


def _as_of(text: str) -> int | dt.datetime:
    """--as-of: a list version, or an ISO 8601 time (UTC unless it gives its offset)."""
    if text.strip().isdigit():
        return int(text)
    try:
        at = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a list version (a number) or a time "
                                 "such as 2026-11-23T14:05Z", param_hint="--as-of") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _hit_line(h: Hit) -> str:
    label = "HIT " + f"{h.match.value:<7}" if h.match.is_hit else "LEAD" + " " * 7
    line = f"{label} {h.number:<12} {h.doc_type!s:<2} {h.country}  " + (
        f"hit_id={h.hit_id}" if h.hit_id else "(replay: no hit id)")
    if h.explanation:
        evidence = "".join(f", {e}" for e in h.evidence)
        line += f"  ({h.explanation}; score {h.score:.0f}; {h.error}{evidence})"
    return line


@cli.command()
@officer_option
@json_option
@click.pass_context
def expire(ctx: click.Context, officer: str, as_json: bool) -> None:
    """Move the records whose review date has come to history (one list version). They
    stopped hitting at their review date already; `sltd serve` does this by itself."""
    index = _open(ctx)
    n = index.expire(officer=officer)
    if as_json:
        _echo_json({"expired": n, "list_version": index.list_version.as_dict()})
    else:
        click.echo(f"expired {n} record(s) whose review date has come"
                   + (f"; {index.list_version}" if n else ""))


@cli.command()
@click.argument("number")
@click.option("--type", "doc_type", required=True, help="Document type of the record.")
@click.option("--country", required=True, help="Issuing country of the record.")
@click.option("--reason", help="Why (e.g. 'document recovered').")
@officer_option
@click.pass_context
def withdraw(ctx: click.Context, number: str, doc_type: str, country: str,
             reason: str | None, officer: str) -> None:
    """Withdraw a record (document recovered): kept in history, no longer hit."""
    client = _remote(ctx)
    if client is not None:
        client.withdraw(number, doc_type, country, reason=reason)
    else:
        _open(ctx).withdraw(number, doc_type, country, reason=reason, officer=officer)
    click.echo(f"withdrawn: {number} {doc_type} {country}")


@cli.command()
@click.argument("number")
@click.option("--type", "doc_type", required=True, help="Document type of the record.")
@click.option("--country", required=True, help="Issuing country of the record.")
@officer_option
@ncb_option
@json_option
@click.pass_context
def history(ctx: click.Context, number: str, doc_type: str, country: str, officer: str,
            ncb: str | None, as_json: bool) -> None:
    """A document's statuses over time: each version of its record, when it was in force,
    and what ended it (update, withdrawal). Audited: it shows second-level details."""
    versions = _open(ctx).history(number, doc_type, country, officer=officer, ncb=ncb)
    if as_json:
        _echo_json({"versions": [v.as_dict() for v in versions]})
        return
    if not versions:
        click.echo(f"{number} {doc_type} {country}: never listed")
    for v in versions:
        until = (f"until {v.in_force_until:%Y-%m-%d %H:%M} UTC ({v.ended_by}"
                 + (f": {v.reason}" if v.reason else "") + ")"
                 if v.in_force_until else "in force")
        click.echo(f"{v.in_force_from:%Y-%m-%d %H:%M} UTC  "
                   f"{v.status.value.replace('_', ' '):<12} {until}")


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring an index made by an older sltd to this version, in one transaction (a writable
    open does the same on the way; a read-only one refuses an old index)."""
    root = ctx.find_root().obj
    index = open_index(root["db"], wait=root["wait"],
                       progress=lambda step: click.echo(f"  {step}", err=True))
    ctx.call_on_close(index.close)
    if index.migrated_from is None:
        click.echo(f"{index.path}: already at schema version {SCHEMA_VERSION}")
    else:
        click.echo(f"{index.path}: migrated from schema version {index.migrated_from} to "
                   f"{SCHEMA_VERSION} ({len(index)} records)")


@cli.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts of records by status, type and country; history; key-set memory (with
    --server: the service's status)."""
    client = _remote(ctx)
    if client is not None:
        status = client.stats()
        if as_json:
            _echo_json(status)
        else:
            click.echo(f"{client.url}: {status['records']} active records, "
                       f"{status['open_cases']} open cases (oldest "
                       f"{status['oldest_open_case'] or 'none'}), "
                       f"{status['alert_backlog']} alerts not delivered, key sets "
                       f"{status['key_set_bytes'] / 1e6:.1f} MB")
        return
    s = _open(ctx).stats()
    if as_json:
        _echo_json(s)
        return
    last = s["last_change"][:16].replace("T", " ") + " UTC" if s["last_change"] else "never"
    click.echo(f"{s['path']}: {s['records']} active records, last change {last} "
               f"(list version {s['list_version']['version']}), "
               f"home NCB {s['home_ncb'] or '(none)'}")
    for name in ("by_status", "by_type", "top_countries", "history"):
        items = ", ".join(f"{k} {v}" for k, v in s[name].items()) or "none"
        click.echo(f"  {name.replace('_', ' ')}: {items}")
    per = s["key_set_bytes"] / s["records"] if s["records"] else 0
    click.echo(f"  in-memory key sets: {s['key_set_bytes'] / 1e6:.1f} MB ({per:.1f} B/record)")
    reviews = ", ".join(f"{owner} {r['due']}/{r['within_30_days']}/{r['within_365_days']}"
                        for owner, r in s.get("reviews", {}).items()) or "none within a year"
    click.echo(f"  reviews by owner NCB (due / within 30 days / within 365 days): {reviews}")


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--records", "n", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="How many records.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--numbering", type=click.Choice(NUMBERINGS), default="ranges",
              show_default=True,
              help="ranges: each issuer numbers its documents from sequential ranges in its "
                   "own format, issue and expiry dates follow the serial, 1.6-5.8% of a "
                   "range is listed, plus batches of 20-500 consecutive stolen blanks; "
                   "written batch by batch in bounded memory, whatever the size. random: "
                   "numbers of the same shapes drawn at random, dates apart from them, made "
                   "in memory.")
@click.option("--manifest", "manifest_rows", type=click.IntRange(min=0),
              help="Write a passenger manifest of this many rows instead: --listed of them "
                   "carry documents drawn from the records (of --from, else generated from "
                   "--records, --seed and --numbering). The others carry clean documents: "
                   "for ranges-numbered records (a Parquet or Arrow file keeps the plan), "
                   "issued from the same ranges and still valid, with every document's "
                   "true issue and expiry dates and a `listed` column; else random numbers.")
@click.option("--listed", type=click.FloatRange(0, 1), default=0.001, show_default=True,
              help="With --manifest: share of passengers carrying a listed document.")
@click.option("--from", "from_records", type=click.Path(dir_okay=False),
              help="With --manifest: records file whose documents some passengers carry.")
def synth(out: str, n: int, seed: int, numbering: Numbering, manifest_rows: int | None,
          listed: float, from_records: str | None) -> None:
    """Write synthetic records, or a passenger manifest (CSV, Parquet, JSON Lines, Arrow)."""
    if manifest_rows is not None:
        if from_records:
            refuse_overwrite(out, [from_records], what="manifest")
        records = from_records or synth_records(n, seed=seed, numbering=numbering)
        write_table(synth_manifest(records, manifest_rows, listed=listed, seed=seed), out)
        click.echo(f"wrote a manifest of {manifest_rows} passengers to {out}")
        return
    write_synth(out, n, seed=seed, numbering=numbering)
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


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Result file, one row per hit (.parquet or .csv).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl", "arrow"]),
              help="Manifest format (default: from the file name).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Read FIELD (document_number, document_type, issuing_country) from "
                   "COLUMN (repeatable).")
@click.option("--keep", multiple=True, metavar="COLUMN",
              help="Manifest column carried into each result row, e.g. passenger_id "
                   "(repeatable).")
@click.option("--rejects", type=click.Path(dir_okay=False),
              help="Rows that could not be screened, even if none (default: "
                   "OUT.rejects.csv, only when some rows are rejected).")
@click.option("--exact-only", is_flag=True, help="Skip near-miss matching.")
@click.option("--leads", is_flag=True, help="Also write leads (match=lead): listed numbers "
              "one edit away that no evidence supports; never counted as hits.")
@click.option("--mrz-column", metavar="COLUMN",
              help="Read number, type and country from this column of MRZs instead.")
@click.option("--since", metavar="DATE|VERSION",
              help="Screen only against records added or changed since then: a time "
              "(YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, UTC) or a list version (changed by a "
              "later one).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@ncb_option
@json_option
@click.pass_context
def screen(ctx: click.Context, manifest: str, out: str, fmt: str | None,
           mapping: tuple[str, ...], keep: tuple[str, ...], rejects: str | None,
           exact_only: bool, leads: bool, mrz_column: str | None, since: Any,
           quiet: bool, ncb: str | None, as_json: bool) -> None:
    """Screen a passenger manifest (API/PNR list) against the index; exit 1 if any hit."""
    import sys

    index = _open(ctx)
    show = not quiet and not as_json and sys.stderr.isatty()
    total = _manifest_rows(manifest)
    with click.progressbar(length=total or 0, label="screening", file=sys.stderr,
                           hidden=not show or not total) as bar:
        done = [0]

        def progress(rows: int) -> None:
            bar.update(rows - done[0])
            done[0] = rows

        _, report = index.screen(
            manifest, out=out, format=fmt, mapping=_parse_mapping(mapping), keep=keep,
            rejects=rejects, exact_only=exact_only,
            since=_since(since) if since else None, ncb=ncb,
            mrz_column=mrz_column, progress=progress, leads=leads)
    if rejects is None and report.problems:
        default = _write_default_rejects(
            f"{out}.rejects.csv", report.problems, [manifest, out, index.path],
            done=f"screened {report.rows_read} rows ({report.rows_with_hits} with hits, "
                 f"written to {out})",
            again="screen again with --rejects PATH")
        report = dataclasses.replace(report, rejects=default)
    if as_json:
        _echo_json(report.as_dict())
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.hits.items())) or "none"
        click.echo(f"{report.rows_read} rows read, {report.rejected} rejected, hits: {kinds} "
                   f"({report.rows_with_hits} rows) in {report.seconds:.1f} s "
                   f"({report.rows_per_second:,.0f} rows/s) -> {report.out}")
        if leads:
            click.echo(f"leads (not hits): {report.leads}")
        if report.rejected:
            click.echo(f"rejected rows with reasons: {report.rejects}")
    ctx.exit(EXIT_HIT if report.hits else 0)


def _manifest_rows(path: str) -> int | None:
    if path.lower().endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:  # noqa: BLE001 - the screen itself reports unreadable files
            return None
    return None


@cli.command()
@click.argument("hit_id")
@officer_option
@ncb_option
@click.option("--document", nargs=3, metavar="NUMBER TYPE COUNTRY",
              help="On a sealed replica: the hit's number, type and country (its details "
              "open only with them).")
@json_option
@click.pass_context
def reveal(ctx: click.Context, hit_id: str, officer: str, ncb: str | None,
           document: tuple[str, str, str] | None, as_json: bool) -> None:
    """Open the details of a hit; alerts the owner NCB, your NCB and the CCC, and starts
    the validation deadline."""
    from sltd.sealed import SealedReplica

    client = _remote(ctx)
    index = _open_replica(ctx) if client is None else None
    if isinstance(index, SealedReplica):
        if document is None:
            raise click.UsageError("a sealed replica opens a hit's details with its "
                                   "number, type and country: give --document NUMBER "
                                   "TYPE COUNTRY (as the hit line shows them)")
        number, doc_type, country = document
        d = index.reveal(hit_id, number=number, doc_type=doc_type, country=country,
                         officer=officer, ncb=ncb)
    elif client is not None:
        d = client.reveal(hit_id)
    else:
        assert index is not None
        d = index.reveal(hit_id, officer=officer, ncb=ncb)
    if as_json:
        _echo_json(d.as_dict())
        return
    click.echo(f"case {d.case_id}: {d.number} {d.doc_type} {d.country} is "
               f"{d.status.value.replace('_', ' ').upper()}")
    click.echo(f"  owner: {'General Secretariat' if d.owner == 'GS' else 'NCB ' + d.owner}")
    for label, value in (("place of loss", d.place_of_loss), ("date of loss", d.date_of_loss),
                         ("issued", d.date_of_issue), ("expires", d.date_of_expiry)):
        if value:
            click.echo(f"  {label}: {value}")
    click.echo(f"  validation due by {d.deadline:%Y-%m-%d %H:%M} UTC; keep the holder in "
               "secondary inspection until the owner NCB answers")


@cli.command()
@click.argument("case_id")
@required_officer_option
@click.option("--reason", help="Note to keep with the decision.")
@json_option
@click.pass_context
def confirm(ctx: click.Context, case_id: str, officer: str, reason: str | None,
            as_json: bool) -> None:
    """The owner NCB confirmed the record: act on the hit."""
    client = _remote(ctx)
    _decided(client.confirm(case_id, reason=reason) if client is not None else
             _open_replica(ctx).confirm(case_id, officer=officer, reason=reason), as_json)


@cli.command()
@click.argument("case_id")
@click.option("--reason", required=True,
              help="Why: record no longer valid, not this document ...")
@required_officer_option
@json_option
@click.pass_context
def reject(ctx: click.Context, case_id: str, reason: str, officer: str,
           as_json: bool) -> None:
    """The hit is not confirmed: release the holder."""
    client = _remote(ctx)
    _decided(client.reject(case_id, reason=reason) if client is not None else
             _open_replica(ctx).reject(case_id, officer=officer, reason=reason), as_json)


def _decided(case: HitCase, as_json: bool) -> None:
    decided = case.decided_at or case.revealed_at  # always set once decided
    if as_json:
        _echo_json(case.as_dict(decided))
        return
    late = case.late_by(decided)
    click.echo(f"case {case.case_id}: {case.state.value.replace('_', ' ')}"
               + (f" (late by {_span(late)})" if late else ""))


def _span(td: Any) -> str:
    secs = int(abs(td.total_seconds()))
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else \
        f"{secs // 60}m{secs % 60:02d}s"


@cli.command()
@click.option("--state", "states", multiple=True,
              type=click.Choice(["pending", "overdue", "confirmed", "not_confirmed", "open",
                                 "closed"]),
              help="Only these states (repeatable); open = pending + overdue.")
@json_option
@click.pass_context
def hits(ctx: click.Context, states: tuple[str, ...], as_json: bool) -> None:
    """Hit cases with their state, deadline and time left or lateness."""
    wanted: list[str] = []
    for s in states:
        wanted += {"open": ["pending", "overdue"],
                   "closed": ["confirmed", "not_confirmed"]}.get(s, [s])
    client = _remote(ctx)
    if client is not None:  # the cases of the key's NCB
        now = dt.datetime.now(dt.UTC)
        cases = client.cases(wanted or None)
    else:
        index = _open_replica(ctx)
        now = index.clock.now()
        cases = index.cases(wanted or None)
    if as_json:
        _echo_json({"cases": [c.as_dict(now) for c in cases]})
        return
    if not cases:
        click.echo("no hit cases")
    for c in cases:
        late = c.late_by(now)
        when = (f"late by {_span(late)}" if late else f"{_span(c.time_left(now))} left")
        if c.state.closed:
            when = f"decided {c.decided_at:%Y-%m-%d %H:%M}" + (
                f", late by {_span(late)}" if late else "")
        click.echo(f"{c.case_id}  {c.state.value:<13} {c.number:<12} {c.doc_type:<2} "
                   f"{c.country}  owner {c.owner:<3} due {c.deadline:%Y-%m-%d %H:%M} UTC  "
                   f"{when}")


def _router(sinks: tuple[str, ...], timeout: float) -> Any:
    from sltd.alerts import Router

    return Router.parse(list(sinks) or ["-"], timeout=timeout)


@cli.command()
@click.option("--sink", "sinks", multiple=True, metavar="[RECIPIENT=]TARGET",
              help="Where alerts go: a JSONL file, an http(s) webhook or - for stdout; "
                   "per recipient with owner=, searching=, CCC=, owner:FRA= (repeatable; "
                   "default: stdout).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=5.0, show_default=True,
              help="Seconds between rounds.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Webhook timeout in seconds.")
@click.option("--once", is_flag=True, help="Run one round and exit.")
@click.pass_context
def watch(ctx: click.Context, sinks: tuple[str, ...], interval: float, timeout: float,
          once: bool) -> None:
    """Escalate overdue cases and deliver alerts until stopped (Ctrl-C or SIGTERM).

    Safe to kill at any moment: deadlines and alerts live in the index, so a restart
    escalates each overdue case once and delivers every alert at least once. The index
    file is held only during each round, so other commands can use it meanwhile."""
    import threading

    from sltd import watch as watcher

    root = ctx.find_root().obj
    router = _router(sinks, timeout)

    def report(r: watcher.Round) -> None:
        if r.delivered:
            click.echo(f"delivered {r.delivered} alert(s)", err=True)
        for c in r.escalated:
            click.echo(f"escalated {c.case_id} (deadline {c.deadline:%H:%M} UTC passed)",
                       err=True)
        if r.failed or r.unrouted:
            click.echo(f"delivery: {r.delivered} delivered, {r.failed} failed (will retry), "
                       f"{r.unrouted} without a route", err=True)
        if r.busy:
            click.echo(f"round skipped: {r.busy}", err=True)

    with watcher.stop_on_signals(threading.Event()) as stop:
        watcher.run(root["db"], router, interval=interval, once=once, stop=stop,
                    wait=root["wait"], on_round=report)
    click.echo("watch stopped", err=True)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8300, show_default=True)
@click.option("--sink", "sinks", multiple=True, metavar="[RECIPIENT=]TARGET",
              help="Where the service delivers alerts (as for watch; repeatable; default: "
                   "none, alerts wait in the outbox).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=5.0, show_default=True,
              help="Seconds between alert rounds (escalation and delivery).")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False),
              help="TLS certificate (PEM); with --keyfile, serve HTTPS.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False),
              help="TLS private key (PEM).")
@click.option("--max-body-mb", type=click.IntRange(min=1), default=256, show_default=True,
              help="Largest request body accepted (413 above).")
@click.option("--feed", "feed_dir", type=click.Path(file_okay=False, exists=True),
              help="Serve this feed directory (written by sltd publish) at /v1/feed, for "
              "replicas that sync over the network.")
@click.option("--sync-every", type=click.FloatRange(min=1), default=300.0, show_default=True,
              metavar="SECONDS", help="On a replica: how often the service syncs with its "
              "feed (the URL or directory it was made from; $SLTD_TOKEN for a URL).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, sinks: tuple[str, ...], interval: float,
          certfile: str | None, keyfile: str | None, max_body_mb: int,
          feed_dir: str | None, sync_every: float) -> None:
    """Serve the index over HTTP (JSON; see /docs and /openapi.json) until SIGTERM.

    Every call needs an API key (`sltd keys add`). The service owns the index file:
    other sltd commands reach it through it. Alerts are delivered and overdue cases
    escalated inside the service (--sink); a replica's service also syncs with its feed.
    """
    from sltd.alerts import JsonlSink
    from sltd.service import serve as run
    from sltd.sources import refuse_overwrite

    if (certfile is None) != (keyfile is None):
        raise click.UsageError("give both --certfile and --keyfile, or neither")
    index = _open(ctx)
    router = _router(sinks, 5.0) if sinks else None
    if router is not None:
        for sink in router.routes.values():
            if isinstance(sink, JsonlSink):
                refuse_overwrite(sink.path, [index.path], what="alert sink")
    scheme = "https" if certfile else "http"
    click.echo(f"serving {index.path} ({len(index)} records) on {scheme}://{host}:{port} "
               "(docs: /docs); stop with Ctrl-C or SIGTERM", err=True)
    from pathlib import Path

    run(index, host=host, port=port, router=router, alert_interval=interval,
        certfile=certfile, keyfile=keyfile, max_body=max_body_mb << 20,
        feed=Path(feed_dir) if feed_dir else None,
        sync_every=sync_every if index.replica_of else None,
        sync_token=ctx.find_root().obj.get("token", ""))
    click.echo("service stopped", err=True)


@cli.group()
def keys() -> None:
    """API keys of the service: add, list, revoke."""


@keys.command("add")
@click.option("--ncb", required=True, help="The NCB the key searches and reveals for.")
@click.option("--officer", required=True, help="The officer or system it is for (audited).")
@click.option("--role", type=click.Choice(["search", "reveal", "manage", "admin"]),
              required=True, help="search: checks; reveal: also details and cases of its "
              "NCB; manage: add/withdraw records of --country; admin: keys.")
@click.option("--country", "countries", multiple=True,
              help="Issuing country a manage key may change records of (repeatable).")
@json_option
@click.pass_context
def keys_add(ctx: click.Context, ncb: str, officer: str, role: str,
             countries: tuple[str, ...], as_json: bool) -> None:
    """Make a key and print its token, once (only its hash is kept)."""
    index = _open(ctx)
    key, token = index.add_key(ncb=ncb, officer=officer, role=role, countries=countries,
                               by=os.environ.get("SLTD_OFFICER", ""))
    if as_json:
        _echo_json({**key.as_dict(), "token": token})
    else:
        click.echo(f"key {key.key_id}: {key.role} for {key.ncb} ({key.officer})", err=True)
        click.echo(token)


@keys.command("list")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """Every key (never a token)."""
    found = _open(ctx).api_keys()
    if as_json:
        _echo_json({"keys": [k.as_dict() for k in found]})
        return
    for k in found:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "live"
        more = f" countries {','.join(k.countries)}" if k.countries else ""
        click.echo(f"{k.key_id}  {k.role:<7} {k.ncb}  {k.officer}{more}  ({state})")


@keys.command("revoke")
@click.argument("key_id")
@officer_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, officer: str) -> None:
    """Revoke a key (kept, revoked, for the audit trail)."""
    key = _open(ctx).revoke_key(key_id, by=officer)
    click.echo(f"revoked {key.key_id} ({key.role} for {key.ncb}, {key.officer})")


@cli.command()
@click.option("--case", "case_id", help="Only this case's alerts.")
@click.option("--pending", is_flag=True, help="Only alerts not yet delivered.")
@click.option("--redeliver", "redeliver_ids", multiple=True, metavar="ALERT_ID",
              help="Queue this alert for delivery again (repeatable).")
@click.option("--retry-failed", is_flag=True, help="Retry every failing alert now.")
@officer_option
@json_option
@click.pass_context
def alerts(ctx: click.Context, case_id: str | None, pending: bool,
           redeliver_ids: tuple[str, ...], retry_failed: bool, officer: str,
           as_json: bool) -> None:
    """The alert outbox: recipient, kind, case and delivery state of each alert."""
    client = _remote(ctx)
    if client is not None:  # the alerts to the key's NCB
        if redeliver_ids or retry_failed:
            raise click.UsageError("--redeliver and --retry-failed work on the file")
        items = client.alerts(case_id=case_id, undelivered=pending)
    else:
        index = _open(ctx)
        if redeliver_ids or retry_failed:
            n = index.redeliver(redeliver_ids, failed=retry_failed, officer=officer)
            click.echo(f"{n} alert(s) queued; `sltd watch` delivers them", err=True)
        items = index.alerts(case_id=case_id, undelivered=pending)
    if as_json:
        _echo_json({"alerts": [a.as_dict() for a in items]})
        return
    if not items:
        click.echo("no alerts")
    for a in items:
        state = (f"delivered {a.delivered_at:%Y-%m-%d %H:%M:%S} to {a.delivered_to}"
                 if a.delivered_at else
                 f"{a.state}, {a.attempts} attempt(s)" + (f": {a.last_error}"
                                                          if a.last_error else ""))
        click.echo(f"{a.alert_id:<40} {a.kind:<10} {a.recipient:<14} {state}")


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute the hash chain; name the first broken entry (exit 3 if broken)."""
    report = _open(ctx).verify_audit()
    if as_json:
        _echo_json({"ok": report.ok, "entries": report.entries,
                    "first_broken": report.first_broken, "reason": report.reason})
    elif report.ok:
        click.echo(f"audit trail intact: {report.entries} entries")
    else:
        click.echo(f"audit trail BROKEN at entry {report.first_broken}: {report.reason}",
                   err=True)
    if not report.ok:
        ctx.exit(EXIT_ERROR)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The Ed25519 private key (PEM) that signs the feed.")
@click.option("--new-key", is_flag=True, help="First make the key pair: --key and "
              "--key.pub (which replicas trust); never overwrites a file.")
@click.option("--sealed", "seal_key", type=click.Path(dir_okay=False), metavar="SEAL_KEY",
              help="Write a sealed feed: no document number in plaintext, for sealed "
              "replicas holding the same seal key (a feed directory is sealed or not "
              "from its first unit).")
@click.option("--new-seal-key", is_flag=True, help="First make the seal key --sealed "
              "names (32 random bytes; give it to the sealed replicas by hand, never with "
              "the feed); never overwrites a file.")
@json_option
@click.pass_context
def publish(ctx: click.Context, directory: str, key_path: str, new_key: bool,
            seal_key: str | None, new_seal_key: bool, as_json: bool) -> None:
    """Write the next signed unit of the list's feed into DIRECTORY: a snapshot the first
    time, then the changes since the last unit (for replicas: sltd replica init, sync)."""
    from sltd import feed, sealed

    if new_seal_key and seal_key is None:
        raise click.UsageError("--new-seal-key makes the file --sealed names: give it")
    if new_key:
        private, public = feed.new_key(key_path)
        click.echo(f"made {private} (keep it secret) and {public} (give it to replicas)",
                   err=True)
    if new_seal_key:
        assert seal_key is not None
        made = sealed.new_seal_key(seal_key)
        click.echo(f"made {made} (keep it secret; give it to sealed replicas by hand)",
                   err=True)
    done = feed.publish(_open(ctx), directory, key_path, sealed=seal_key)
    if as_json:
        _echo_json(done.as_dict())
    elif done.unit is None:
        click.echo(f"{directory}: already at list version {done.to_version}; nothing to "
                   "publish")
    else:
        what = (f"{done.records:,} records" if done.kind == "snapshot" else
                f"{done.records:,} records added or changed, {done.withdrawals:,} withdrawn")
        click.echo(f"{directory}/{done.unit}: {done.kind}, list versions {done.from_version}"
                   f" to {done.to_version}: {what} ({done.seconds:.1f} s)")


@cli.group()
def replica() -> None:
    """A national copy of the list that follows a signed feed (offline posts)."""


@replica.command("init")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--from", "source", required=True, metavar="DIR|URL",
              help="The feed directory (as copied from the publisher, by any means), or "
              "the /v1/feed URL of a service that serves it (with $SLTD_TOKEN).")
@click.option("--trust", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The publisher's public key (the .pub file of sltd publish --new-key).")
@click.option("--ncb", help="This post's NCB: the searching NCB of its checks and reveals.")
@click.option("--seal-key", type=click.Path(dir_okay=False, exists=True),
              help="For a sealed feed (sltd publish --sealed): its seal key, this device's "
              "key; the replica reads it from this path when it opens.")
@json_option
@click.pass_context
def replica_init(ctx: click.Context, path: str, source: str, trust: str, ncb: str | None,
                 seal_key: str | None, as_json: bool) -> None:
    """Make a replica in the new index file PATH from a feed, and bring it up to date."""
    from sltd import feed

    index = feed.init_replica(path, source, trust, token=ctx.find_root().obj.get("token", ""),
                              seal_key=seal_key)
    try:
        if ncb:
            index.set_home_ncb(ncb)
        version = index.list_version
        if as_json:
            _echo_json({"path": path, "feed_id": index.replica_of, "records": len(index),
                        "sealed": seal_key is not None, "list_version": version.as_dict()})
        else:
            click.echo(f"{path}: {'sealed ' if seal_key else ''}replica of feed "
                       f"{index.replica_of}, {len(index):,} records, {version}")
    finally:
        index.close()


@cli.command()
@click.option("--from", "source", metavar="DIR|URL",
              help="The feed directory or service URL (default: the one the replica was "
              "made from; $SLTD_TOKEN for a URL).")
@click.option("--every", type=float, metavar="SECONDS",
              help="Keep syncing, every SECONDS, until Ctrl-C/SIGTERM (a refused unit is "
              "reported and tried again next time).")
@json_option
@click.pass_context
def sync(ctx: click.Context, source: str | None, every: float | None, as_json: bool) -> None:
    """Bring a replica (--db) up to its feed: each new unit checked (signature, hashes,
    order) and applied in one transaction."""
    import signal
    import threading

    from sltd import SltdError, feed

    index = _open_replica(ctx)

    token = ctx.find_root().obj.get("token", "")

    def once() -> None:
        report = feed.sync(index, source, token=token)
        if as_json:
            _echo_json(report.as_dict())
        else:
            click.echo(f"{index.path}: {len(report.applied)} unit(s) applied"
                       + (f" ({', '.join(report.applied)})" if report.applied else "")
                       + f"; {report.version}, {_age(index, report.version)}")

    if every is None:
        once()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            try:
                once()
            except SltdError as e:  # reported; the replica keeps its version and checks
                click.echo(f"error: {_one_line(str(e))}", err=True)
            stop.wait(every)
    except KeyboardInterrupt:
        pass


def _age(index: Any, version: Any) -> str:
    """How old a list version is, for people: "6 h old"."""
    if version.committed_at is None:
        return "no list yet"
    seconds = max(0.0, (index.clock.now() - version.committed_at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} old"
    return f"{seconds:.0f} s old"


def main() -> None:
    """Console entry point."""
    cli(prog_name="sltd")

