"""``exchange compliance``: the SDN list's status and refresh, ad-hoc screening, and working compliance cases."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

import click
import msgspec

from exchange_framework.audit.log import AuditLog
from exchange_framework.cli import format_table, state
from exchange_framework.compliance.cases import Case, CaseError, CaseStore, Resolution
from exchange_framework.compliance.onboarding import OnboardingGate
from exchange_framework.compliance.refresh import OfacListKeeper, RefreshError
from exchange_framework.config import ExchangeConfig
from exchange_framework.identity import IdentityStore

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _keeper(config: ExchangeConfig) -> OfacListKeeper:
    from exchange_framework.default_sanctions import keeper_for

    keeper = keeper_for(config)
    if keeper is None:
        raise click.ClickException("no OFAC list is configured: set [compliance.ofac] source (see docs/compliance.md)")
    return keeper


@click.group()
def compliance() -> None:
    """Sanctions screening and compliance cases (docs/compliance.md)."""


def _add_monitoring() -> None:
    from exchange_framework.compliance.monitoring.cli import monitoring

    compliance.add_command(monitoring)


_add_monitoring()


@compliance.command(name="ofac")
@click.option("--refresh", is_flag=True, help="Download the list now (the last good copy stays if that fails).")
@click.option("--rescreen/--no-rescreen", default=True, help="After a refresh, screen every customer again.")
@_JSON
@click.pass_context
def ofac_cmd(ctx: click.Context, refresh: bool, rescreen: bool, as_json: bool) -> None:
    """Show the OFAC SDN list in use: source, size, publication date, last refresh and its error."""
    config = state(ctx).config_or_exit()
    keeper = _keeper(config)
    failed = ""
    if refresh:
        try:
            keeper.refresh()
        except RefreshError as exc:
            failed = str(exc)
        else:
            if rescreen and not as_json:
                _rescreen(config)
    status = keeper.status
    if as_json:
        click.echo(msgspec.json.encode(status).decode())
    else:
        rows = [
            ("source", status.source),
            ("loaded", "yes" if status.loaded else "NO: screening holds everything"),
            ("entries", status.entries),
            ("addresses", status.addresses),
            ("published", status.published or "-"),
            ("loaded from", status.loaded_from or "-"),
            ("last attempt", _when(status.last_attempt_ns)),
            ("last error", status.last_error or "-"),
        ]
        for line in format_table(("", ""), rows)[1:]:
            click.echo(line)
    if failed:
        raise click.ClickException(f"refresh failed, the previous list stays in use: {failed}")


@compliance.command(name="screen")
@click.argument("value")
@click.option("--name", "is_name", is_flag=True, help="Screen VALUE as a person's or company's name.")
@click.option("--threshold", type=click.FloatRange(0.5, 1.0), help="Jaro-Winkler threshold (default: the config's).")
@click.pass_context
def screen_cmd(ctx: click.Context, value: str, is_name: bool, threshold: float | None) -> None:
    """Screen an address (or, with --name, a name) against the OFAC SDN list; exit 1 on a hit."""
    config = state(ctx).config_or_exit()
    sdn = _keeper(config).current
    if sdn is None:
        raise click.ClickException("the OFAC list could not be loaded: run `exchange compliance ofac --refresh`")
    if is_name:
        limit = threshold if threshold is not None else float(config.compliance.ofac.name_threshold)
        explanations = [hit.explain() for hit in sdn.screen_name(value, threshold=limit)]
    else:
        explanations = [hit.explain() for hit in sdn.screen_address(value)]
    if not explanations:
        click.echo(f"{value!r}: no match on the OFAC SDN list")
        return
    for line in explanations:
        click.echo(line)
    ctx.exit(1)


def _store(ctx: click.Context) -> CaseStore:
    config = state(ctx).config_or_exit()
    return CaseStore.for_config(config, audit=AuditLog.from_config(config))


def _show(case: Case) -> None:
    click.echo(
        f"case {case.id}: {case.subject.value} {case.reference} (account {case.account}), "
        f"{case.outcome}{' FROZEN' if case.frozen else ''}, {case.status.value}"
    )
    for key, value in sorted(case.details.items()):
        click.echo(f"  {key}: {value}")
    click.echo("decisions:")
    for decision in case.decisions:
        click.echo(f"  {_when(decision.at_ns)}  {decision.provider}: {decision.outcome}")
        for reason in decision.reasons:
            click.echo(f"      {reason}")
    click.echo("history:")
    for event in case.history:
        click.echo(
            f"  {_when(event.at_ns)}  {event.actor}: {event.action}" + (f" ({event.note})" if event.note else "")
        )


@compliance.command(name="cases")
@click.option("--all", "everything", is_flag=True, help="Closed cases too, newest first.")
@_JSON
@click.pass_context
def cases_cmd(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """List the cases to work (open and escalated, oldest first)."""
    store = _store(ctx)
    cases = store.list_cases(limit=1000) if everything else store.open_cases(limit=1000)
    if as_json:
        click.echo(json.dumps([msgspec.to_builtins(case) for case in cases], indent=2))
        return
    rows = [
        (
            c.id,
            _when(c.opened_ns),
            c.subject.value,
            c.reference,
            c.account,
            c.outcome + (" frozen" if c.frozen else ""),
            c.status.value,
        )
        for c in cases
    ]
    for line in format_table(("id", "opened (UTC)", "subject", "reference", "account", "outcome", "status"), rows):
        click.echo(line)


class _CaseGroup(click.Group):
    """``exchange compliance case ID`` shows a case; ``exchange compliance case <action> ID ...`` acts on one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0].isdigit():
            args = ["show", *args]
        return super().parse_args(ctx, args)


@compliance.group(name="case", cls=_CaseGroup)
def case_cmd() -> None:
    """One case: show it (``case ID``), assign, comment, export a SAR-style report, record its filing."""


@case_cmd.command(name="show")
@click.argument("case_id", type=int)
@click.pass_context
def case_show_cmd(ctx: click.Context, case_id: int) -> None:
    """Show one case: the subject, every provider's decision and reasons, and its history."""
    case = _store(ctx).get(case_id)
    if case is None:
        raise click.ClickException(f"there is no compliance case {case_id}")
    _show(case)


@case_cmd.command(name="assign")
@click.argument("case_id", type=int)
@click.option("--operator", required=True, help="Who assigns (recorded and audited).")
@click.option("--to", "assignee", required=True, help="The officer who works the case.")
@click.option("--note", default="assigned", show_default=True)
@click.pass_context
def case_assign_cmd(ctx: click.Context, case_id: int, operator: str, assignee: str, note: str) -> None:
    """Assign an open case to an officer."""
    try:
        _show(_store(ctx).assign(case_id, operator=operator, assignee=assignee, note=note))
    except CaseError as exc:
        raise click.ClickException(str(exc)) from None


@case_cmd.command(name="comment")
@click.argument("case_id", type=int)
@click.option("--operator", required=True, help="Who comments (recorded and audited).")
@click.option("--note", required=True)
@click.pass_context
def case_comment_cmd(ctx: click.Context, case_id: int, operator: str, note: str) -> None:
    """Add a comment to a case."""
    try:
        _show(_store(ctx).comment(case_id, operator=operator, note=note))
    except CaseError as exc:
        raise click.ClickException(str(exc)) from None


def _sar(config: ExchangeConfig, case: Case, fmt: str) -> tuple[bytes, tuple[str, ...]]:
    from exchange_framework.compliance.sar import build_report, customer_facts, render

    identity = _identity(config)
    try:
        facts = customer_facts(config, case.account, identity)
    finally:
        identity.close()
    report = build_report(case, config=config, customer=facts, now_ns=time.time_ns())
    return render(report, fmt), report.missing


@case_cmd.command(name="export-sar")
@click.argument("case_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xml"]), default="json", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write here (default: stdout).")
@click.pass_context
def case_export_cmd(ctx: click.Context, case_id: int, fmt: str, output: str | None) -> None:
    """Export a SAR-style report of a case (FinCEN SAR parts I-V); list the critical fields an officer must fill."""
    config = state(ctx).config_or_exit()
    case = _store(ctx).get(case_id)
    if case is None:
        raise click.ClickException(f"there is no compliance case {case_id}")
    data, missing = _sar(config, case, fmt)
    if output:
        with open(output, "wb") as out:
            out.write(data)
    else:
        click.echo(data.decode(), nl=False)
    from exchange_framework.compliance.sar import report_sha256

    click.echo(f"sha256 {report_sha256(data)}", err=True)
    if missing:
        click.echo(f"{len(missing)} critical field(s) an officer must fill before filing:", err=True)
        for item in missing:
            click.echo(f"  - {item}", err=True)


@case_cmd.command(name="file")
@click.argument("case_id", type=int)
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@click.option("--operator", required=True, help="The officer who filed it (recorded and audited).")
@click.option("--note", required=True, help="Where and when it was filed (e.g. the BSA E-Filing BSA ID).")
@click.pass_context
def case_file_cmd(ctx: click.Context, case_id: int, report: str, operator: str, note: str) -> None:
    """Record that REPORT (the report as filed) was filed for a case: its SHA-256 goes on the case and the audit log."""
    from exchange_framework.compliance.sar import report_sha256

    with open(report, "rb") as f:
        data = f.read()
    fmt = report.rpartition(".")[2].lower() if "." in report else "file"
    try:
        case = _store(ctx).file_report(
            case_id, operator=operator, report_sha256=report_sha256(data), fmt=fmt, note=note
        )
    except CaseError as exc:
        raise click.ClickException(str(exc)) from None
    _show(case)


@compliance.command(name="escalate")
@click.argument("case_id", type=int)
@click.option("--operator", required=True, help="Who escalates (recorded and audited).")
@click.option("--note", required=True, help="Why.")
@click.pass_context
def escalate_cmd(ctx: click.Context, case_id: int, operator: str, note: str) -> None:
    """Escalate an open case to a senior officer."""
    try:
        _show(_store(ctx).escalate(case_id, operator=operator, note=note))
    except CaseError as exc:
        raise click.ClickException(str(exc)) from None


@compliance.command(name="resolve")
@click.argument("case_id", type=int)
@click.option("--operator", required=True, help="Who resolves (recorded and audited).")
@click.option("--resolution", required=True, type=click.Choice([r.value for r in Resolution]))
@click.option("--note", required=True, help="Why: the finding, any report filed.")
@click.pass_context
def resolve_cmd(ctx: click.Context, case_id: int, operator: str, resolution: str, note: str) -> None:
    """Close a case as cleared (false positive) or confirmed (true hit). Funds move only by the wallet's actions.

    Clearing an onboarding case lets the account proceed: a KYC tier approved meanwhile is applied.
    """
    config = state(ctx).config_or_exit()
    identity = _identity(config)
    try:
        case = _gate(config).resolve(
            case_id, operator=operator, resolution=resolution, note=note, identity=identity, store=_store(ctx)
        )
    except CaseError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        identity.close()
    _show(case)


def _identity(config: ExchangeConfig) -> IdentityStore:
    return IdentityStore(f"sqlite:///{config.journal_path().parent / 'identity.db'}")


def _gate(config: ExchangeConfig) -> OnboardingGate:
    return OnboardingGate(config, audit=AuditLog.from_config(config))


def _rescreen(config: ExchangeConfig) -> None:
    gate = _gate(config)
    fingerprint = _keeper(config).fingerprint
    applicants = len(gate.applicants())
    if not applicants:  # nobody has given identity data yet
        if fingerprint:
            gate.mark_rescreened(fingerprint)
        return
    with click.progressbar(length=max(applicants, 1), label="re-screening customers", file=sys.stderr) as bar:
        report = gate.rescreen(progress=bar.update)
    if fingerprint:
        gate.mark_rescreened(fingerprint)
    click.echo(
        f"re-screened {report.screened} customers: {report.allowed} clear, {report.already_cleared} hits already "
        f"cleared by an officer, {len(report.new_cases)} new case(s)"
        + (f": {', '.join(str(c) for c in report.new_cases)}" if report.new_cases else "")
    )


@compliance.command(name="rescreen")
@click.pass_context
def rescreen_cmd(ctx: click.Context) -> None:
    """Screen every customer's identity data again (after the sanctions list changed); new hits open cases."""
    config = state(ctx).config_or_exit()
    _keeper(config)  # the list must be loaded (or say why not)
    _rescreen(config)


@compliance.command(name="retention")
@click.option("--purge", is_flag=True, help="Delete what is past retention (default: a dry run that only reports).")
@click.option("--operator", help="Who purges (required with --purge; recorded in the audit log).")
@_JSON
@click.pass_context
def retention_cmd(ctx: click.Context, purge: bool, operator: str | None, as_json: bool) -> None:
    """Report (or with --purge delete) closed cases and screening decisions past [compliance.retention] years.

    Open cases, cases that still freeze funds and the audit log are never purged; a purge is audited first.
    """
    from exchange_framework.compliance import retention

    config = state(ctx).config_or_exit()
    now = time.time_ns()
    if purge:
        if not operator:
            raise click.ClickException("--purge needs --operator NAME (the purge is recorded in the audit log)")
        try:
            report = retention.purge(config, now_ns=now, operator=operator, audit=AuditLog.from_config(config))
        except retention.RetentionError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        report = retention.plan(config, now_ns=now)
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
        return
    verb = "purged" if report.purged else "past retention (dry run: nothing deleted; --purge to delete)"
    click.echo(f"retention {report.years} years: records closed or made before {report.cutoff} are past it")
    click.echo(f"cases {verb}: {len(report.cases)} of {report.total_cases}" + _ids(report.cases))
    click.echo(f"screening decisions {verb}: {len(report.screenings)} of {report.total_screenings}")
    click.echo(f"kept although old: {len(report.kept_open_cases)} open case(s)" + _ids(report.kept_open_cases))
    click.echo(
        f"kept although old: {len(report.kept_freezing_cases)} closed case(s) still freezing funds"
        + _ids(report.kept_freezing_cases)
    )


def _ids(ids: tuple[int, ...]) -> str:
    if not ids:
        return ""
    shown = ", ".join(str(i) for i in ids[:20])
    return f" ({shown}{', ...' if len(ids) > 20 else ''})"
