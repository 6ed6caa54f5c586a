"""``exchange audit``: check the operator audit log's hash chain, show its entries, print and anchor its head."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from exchange_framework.audit import (
    GENESIS_HASH,
    AuditError,
    AuditLog,
    CorruptAuditLogError,
    read_entries,
    verify,
)
from exchange_framework.audit.entry import AuditEntry
from exchange_framework.cli import format_table, state

PROGRESS_FROM_BYTES = 1 << 20  # show a progress bar for logs larger than this

_PATH = click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))


def _log_path(ctx: click.Context, path: Path | None) -> Path:
    return path if path is not None else state(ctx).config_or_exit().audit_path()


@click.group()
def audit() -> None:
    """The operator audit log: append-only and hash-chained (default: [audit] path of the config)."""


@audit.command(name="verify")
@_PATH
@click.option("--expect-head", metavar="HASH", help="A head hash written down earlier: the log must still contain it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, path: Path | None, expect_head: str | None, as_json: bool) -> None:
    """Check every entry's sequence, link and hash; report the first broken link and exit 1 if there is one."""
    path = _log_path(ctx, path)
    if expect_head is not None:
        expect_head = expect_head.strip().lower()
        if len(expect_head) != 64 or not all(c in "0123456789abcdef" for c in expect_head):
            raise click.BadParameter(
                "must be 64 hex digits, as `exchange audit head` prints", param_hint="'--expect-head'"
            )
    size = path.stat().st_size if path.is_file() else 0
    if size >= PROGRESS_FROM_BYTES and not as_json:
        with click.progressbar(length=size, label=f"verifying {path}", file=sys.stderr) as bar:
            done = 0

            def advance(position: int) -> None:
                nonlocal done
                bar.update(position - done)
                done = position

            report = verify(path, expect_head=expect_head, progress=advance)
    else:
        report = verify(path, expect_head=expect_head)
    if as_json:
        problem = report.problem
        click.echo(
            json.dumps(
                {
                    "path": str(report.path),
                    "ok": report.ok,
                    "entries": report.entries,
                    "head": report.head,
                    "problem": None
                    if problem is None
                    else {
                        "entry": problem.entry,
                        "offset": problem.offset,
                        "kind": problem.kind.name.lower(),
                        "message": problem.message,
                    },
                }
            )
        )
    elif report.problem is None:
        click.echo(f"ok: {report.entries} entries, head {report.head}")
    else:
        click.echo(f"{path}: BROKEN at {report.problem}", err=True)
        click.echo(f"the first {report.entries} entries are valid (head {report.head})", err=True)
    if not report.ok:
        ctx.exit(1)


@audit.command()
@_PATH
@click.pass_context
def head(ctx: click.Context, path: Path | None) -> None:
    """Print the newest entry's hash: write it down or publish it, and later `verify --expect-head` it."""
    path = _log_path(ctx, path)
    report = verify(path)
    if not report.ok:
        raise click.ClickException(f"{path}: the chain is broken at {report.problem}; no head to anchor")
    click.echo(report.head)
    click.echo(f"entry {report.entries}" if report.head != GENESIS_HASH else "the log is empty", err=True)


@audit.command()
@_PATH
@click.option("--actor", help="Only entries by this actor.")
@click.option("--action", help="Only this action; end it with '.' for every action under a prefix (custody.).")
@click.option("--target", help="Only entries about this target.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show the newest N matches.")
@click.option("--json", "as_json", is_flag=True, help="One JSON entry per line, exactly as stored.")
@click.pass_context
def show(
    ctx: click.Context,
    path: Path | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Print entries, oldest first (this reads the file; `verify` checks it)."""
    path = _log_path(ctx, path)
    if not path.is_file():
        raise click.ClickException(f"{path}: no audit log here")
    matches: list[AuditEntry] = []
    try:
        for entry in read_entries(path):
            if actor is not None and entry.actor != actor:
                continue
            if action is not None and not (
                entry.action.startswith(action) if action.endswith(".") else entry.action == action
            ):
                continue
            if target is not None and entry.target != target:
                continue
            matches.append(entry)
            if len(matches) > limit:
                del matches[0]
    except CorruptAuditLogError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        for entry in matches:
            click.echo(entry.line().decode().rstrip("\n"))
        return
    if not matches:
        click.echo("no matching entries")
        return
    rows = [
        (
            entry.seq,
            datetime.fromtimestamp(entry.ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            + f".{entry.ts_ns % 1_000_000_000 // 1000:06d}Z",
            entry.actor,
            entry.action,
            entry.target,
            json.dumps(dict(entry.fields()["details"]), sort_keys=True, ensure_ascii=False),
        )
        for entry in matches
    ]
    for line in format_table(["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "TARGET", "DETAILS"], rows):
        click.echo(line)


@audit.command()
@_PATH
@click.option("--actor", required=True, help="Who is recovering (recorded in the log).")
@click.pass_context
def recover(ctx: click.Context, path: Path | None, actor: str) -> None:
    """Move an incomplete last line (left by a crash) to PATH.torn-OFFSET and record that in the log."""
    path = _log_path(ctx, path)
    try:
        with AuditLog.open(path, recover_torn_tail=True, actor=actor) as log:
            store = log.store
            recovered = getattr(store, "recovered", None)
            if recovered is None:
                click.echo(f"{path}: nothing to recover (the last line is complete)")
            else:
                click.echo(f"{path}: moved {recovered.describe()} to {path.name}.torn-{recovered.offset}")
    except AuditError as exc:
        raise click.ClickException(str(exc)) from None
