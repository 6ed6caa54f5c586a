"""``exchange threshold``: the threshold signer's keys: ``status``, proactive ``refresh`` and ``repair`` of a node.

Schedule ``exchange threshold refresh --due --actor scheduler`` (cron, a systemd timer) more often than
``refresh_interval_hours`` (default 168, weekly): it refreshes the keys whose last refresh is that old. Every refresh
and repair is written to the audit log before it starts (no audit log, nothing done) and after it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from exchange_framework.cli import format_table, state
from exchange_framework.interfaces import SigningError, SigningRefusedError
from exchange_threshold.resharing import Refresher
from exchange_threshold.signer import SETTINGS_NAME, ThresholdSigner

__all__ = ["threshold"]


def _signer(ctx: click.Context) -> ThresholdSigner:
    config = state(ctx).config_or_exit()
    settings = config.plugin_settings(SETTINGS_NAME)
    if not settings:
        raise click.ClickException(
            f"no [plugins.settings.{SETTINGS_NAME}] in {state(ctx).config_path}: see docs/threshold-signing.md"
        )
    try:
        return ThresholdSigner.from_settings(settings, config.root)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: int | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _frost_keys(signer: ThresholdSigner, wanted: Sequence[str]) -> list[str]:
    """The FROST keys among ``wanted`` (default: all); a named key that is not one is an error."""
    out = []
    for key_id in list(wanted) or signer.key_ids():
        try:
            signer.key_state(key_id)
        except SigningRefusedError as exc:  # a threshold-ECDSA key: it has its own refresh
            if wanted:
                raise click.ClickException(str(exc)) from None
            continue
        except SigningError as exc:
            raise click.ClickException(str(exc)) from None
        out.append(key_id)
    return out


def _audit(ctx: click.Context, actor: str) -> tuple[Any, Callable[[str, str, dict[str, Any]], None]]:
    from exchange_framework.audit import AuditError, AuditFormatError, AuditLog

    try:
        log = AuditLog.from_config(state(ctx).config_or_exit())
    except (AuditError, OSError) as exc:
        raise click.ClickException(f"the audit log cannot be written, so nothing was done: {exc}") from None

    def append(action: str, target: str, details: dict[str, Any]) -> None:
        try:
            log.append(actor=actor, action=action, target=target, details=details)
        except (AuditError, AuditFormatError, OSError) as exc:
            raise click.ClickException(f"the audit log cannot be written ({action}): {exc}") from None

    return log, append


@click.group("threshold")
def threshold() -> None:
    """Threshold signer (FROST) keys: epochs, proactive refresh, repair of a node that missed one."""


@threshold.command("status")
@click.argument("key_ids", nargs=-1)
@click.option("--nodes", "ask_nodes", is_flag=True, help="Also ask every node which epoch it holds.")
@click.pass_context
def status(ctx: click.Context, key_ids: tuple[str, ...], ask_nodes: bool) -> None:
    """Show each key's epoch, last refresh, whether a refresh is due, and the nodes needing repair."""
    signer = _signer(ctx)
    rows = []
    try:
        for key_id in _frost_keys(signer, key_ids):
            s = signer.key_state(key_id)
            row = [
                key_id,
                s.epoch,
                _when(s.refreshed_at),
                "yes" if signer.refresh_due(key_id) else "no",
                ",".join(map(str, sorted(s.needs_repair))) or "-",
            ]
            if ask_nodes:
                epochs = Refresher(signer).node_epochs(key_id)
                row.append(" ".join(f"{i}:{'?' if r is None else r.epoch}" for i, r in sorted(epochs.items())))
            rows.append(row)
    except SigningError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        signer.close()
    if not rows:
        click.echo("no threshold (FROST) keys")
        return
    headers = ["KEY", "EPOCH", "LAST REFRESH", "DUE", "NEEDS REPAIR"] + (["NODES (id:epoch)"] if ask_nodes else [])
    click.echo("\n".join(format_table(headers, rows)))


@threshold.command("refresh")
@click.argument("key_ids", nargs=-1)
@click.option("--due", is_flag=True, help="Only the keys whose last refresh is refresh_interval_hours old or more.")
@click.option("--actor", required=True, help="Who refreshes (recorded in the audit log).")
@click.pass_context
def refresh(ctx: click.Context, key_ids: tuple[str, ...], due: bool, actor: str) -> None:
    """Refresh the shares of the given keys (default: every FROST key): same public keys, old shares deleted."""
    signer = _signer(ctx)
    log, audit = _audit(ctx, actor)
    failed = []
    try:
        keys = _frost_keys(signer, key_ids)
        if due:
            keys = [k for k in keys if signer.refresh_due(k)]
        if not keys:
            click.echo("no key to refresh")
        for key_id in keys:
            target = f"{SETTINGS_NAME}:{key_id}"
            audit("custody.threshold.refresh", target, {"epoch": signer.key_state(key_id).epoch})
            try:
                result = signer.refresh(key_id)
            except SigningError as exc:
                audit("custody.threshold.refresh_failed", target, {"error": str(exc)})
                click.echo(f"{key_id}: refresh failed: {exc}", err=True)
                failed.append(key_id)
                continue
            details = {
                "epoch": result.epoch,
                "prepared": list(result.prepared),
                "needs_repair": list(result.needs_repair),
                "repaired": list(result.repaired),
                "blamed": {str(d): a for d, a in sorted(result.blamed.items())},
                "milliseconds": round(result.seconds * 1000),
            }
            audit("custody.threshold.refreshed", target, details)
            line = f"{key_id}: epoch {result.epoch}, prepared by {list(result.prepared)}"
            if result.repaired:
                line += f", repaired {list(result.repaired)}"
            if result.needs_repair:
                line += f", NEEDS REPAIR {list(result.needs_repair)} (exchange threshold repair {key_id} NODE)"
            for dealer, accuser in sorted(result.blamed.items()):
                line += f"; node {accuser} reported a bad sub-share from node {dealer}"
            click.echo(line)
    finally:
        log.close()
        signer.close()
    if failed:
        raise click.ClickException(f"refresh failed for {failed}: those keys keep their current shares")


@threshold.command("repair")
@click.argument("key_id")
@click.argument("node", type=int)
@click.option("--actor", required=True, help="Who repairs (recorded in the audit log).")
@click.pass_context
def repair(ctx: click.Context, key_id: str, node: int, actor: str) -> None:
    """Give NODE its share of KEY_ID's current epoch back from threshold helper nodes (it missed a refresh)."""
    signer = _signer(ctx)
    log, audit = _audit(ctx, actor)
    target = f"{SETTINGS_NAME}:{key_id}"
    try:
        audit("custody.threshold.repair", target, {"node": node})
        try:
            result = signer.repair(key_id, node)
        except SigningError as exc:
            audit("custody.threshold.repair_failed", target, {"node": node, "error": str(exc)})
            raise click.ClickException(str(exc)) from None
        audit(
            "custody.threshold.repaired", target, {"node": node, "epoch": result.epoch, "helpers": list(result.helpers)}
        )
    finally:
        log.close()
        signer.close()
    click.echo(f"{key_id}: node {node} holds epoch {result.epoch} (helpers {list(result.helpers)})")
