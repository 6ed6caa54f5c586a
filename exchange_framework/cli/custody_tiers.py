"""``exchange custody tiers``: tier holdings against their bands, the withdrawal-demand forecast and sweep proposals;
``--propose`` stores the plan's proposals, ``--approve ID`` / ``--deny ID`` record an operator's decision.

Decisions are written to the audit log first (no audit log, no decision) and then to the sweep store, where the
running exchange picks them up and hands them to the custody policy engine (``docs/custody-tiers.md``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click

from exchange_framework.cli import format_table, state
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.tiers import TIERS, TierConfig, tier_config
from exchange_framework.custody.tiers_service import (
    TierStatus,
    current_holdings,
    history_from_rows,
    pending_from_rows,
    plan_all,
)
from exchange_framework.custody.tiers_store import SweepRow, SweepStage, SweepStore
from exchange_framework.custody.tiers_sweeps import SweepError, TierSweeper
from exchange_framework.money import format_atomic

__all__ = ["tiers"]

_SHOWN = (
    SweepStage.PROPOSED,
    SweepStage.CEREMONY,
    SweepStage.AWAITING_APPROVAL,
    SweepStage.APPROVED,
    SweepStage.SIGNED,
    SweepStage.BROADCAST,
)


def _store(config: ExchangeConfig, tiers: TierConfig) -> SweepStore:
    return SweepStore(config.resolve_path(tiers.state_path))


def _amount(config: ExchangeConfig, asset: str, units: int) -> str:
    asset_config = config.assets.get(asset)
    return format_atomic(units, asset_config.decimals, trim=True) if asset_config is not None else str(units)


def _share(part: int, total: int) -> str:
    if total == 0:
        return "-"
    bp = part * 10_000 // total
    return f"{bp // 100}.{bp % 100:02d} %"


def _statuses(ctx: click.Context, config: ExchangeConfig, tiers: TierConfig) -> tuple[list[TierStatus], list[str]]:
    from exchange_framework.wallet.store import WalletStore

    pm = state(ctx).plugin_manager()
    try:
        holdings, unmatched = asyncio.run(current_holdings(config, pm, source=tiers.balances))
    except Exception as exc:
        raise click.ClickException(f"the tier holdings cannot be read ({tiers.balances}): {exc}") from None
    wallet_path = config.journal_path().parent / "wallet.db"
    rows = []
    if wallet_path.exists():
        store = WalletStore(wallet_path)
        try:
            rows = store.withdrawals(limit=1_000_000)
        finally:
            store.close()
    notes = [f"report of {r.source} for wallet {r.wallet!r} matches no [[custody.wallets]] address" for r in unmatched]
    statuses = plan_all(
        tiers, holdings, history_from_rows(rows), now_ns=time.time_ns(), pending=pending_from_rows(rows)
    )
    return statuses, notes


def _sweeper(config: ExchangeConfig, store: SweepStore, log: Any) -> TierSweeper:
    """A sweeper that only stores proposals and records decisions (the running exchange executes them)."""
    return TierSweeper(
        store=store, policy=lambda: None, wallets=[], adapters={}, signers={}, record_move=_no_move, audit=lambda: log
    )


async def _no_move(_move: Any) -> None:
    raise RuntimeError("the command line never records custody moves")


def _audit_log(config: ExchangeConfig) -> Any:
    from exchange_framework.audit import AuditError, AuditLog

    try:
        return AuditLog.from_config(config)
    except (AuditError, OSError) as exc:
        raise click.ClickException(f"the audit log cannot be written, so nothing was done: {exc}") from None


def _row_json(config: ExchangeConfig, row: SweepRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "asset": row.asset,
        "chain": row.chain,
        "source": row.source.value,
        "destination": row.destination.value,
        "amount": _amount(config, row.asset, row.amount),
        "stage": row.stage.value,
        "ceremony": row.ceremony,
        "reason": row.reason,
        "reasons": row.reasons,
        "error": row.error,
        "txid": row.txid,
    }


def _status_json(config: ExchangeConfig, s: TierStatus) -> dict[str, Any]:
    h = s.holdings
    return {
        "asset": h.asset,
        "chain": h.chain,
        "total": _amount(config, h.asset, h.total),
        "tiers": {
            t.value: {
                "holds": _amount(config, h.asset, h.of(t)),
                "band_percent": str(s.bands.band(t)),
                "band": [_amount(config, h.asset, x) for x in s.plan.bands[t]],
                "in_band": s.plan.in_band(t),
            }
            for t in TIERS
        },
        "forecast": {
            "horizon_hours": s.forecast.horizon_hours,
            "demand": _amount(config, h.asset, s.forecast.demand),
            "hourly": [_amount(config, h.asset, x) for x in s.forecast.hourly],
            "basis": s.forecast.basis,
        },
        "pending": _amount(config, h.asset, s.pending),
        "plan": [
            {
                "source": w.source.value,
                "destination": w.destination.value,
                "amount": _amount(config, h.asset, w.amount),
                "ceremony": w.ceremony,
                "reason": w.reason,
            }
            for w in s.plan.sweeps
        ],
    }


def _show(config: ExchangeConfig, statuses: list[TierStatus], rows: list[SweepRow], notes: list[str]) -> None:
    if not statuses:
        click.echo("no custody holdings in hot, warm or cold accounts yet")
    for s in statuses:
        h = s.holdings
        click.echo(f"{h.asset} on {h.chain}: {_amount(config, h.asset, h.total)} in custody")
        table = []
        for t in TIERS:
            low, high = s.plan.bands[t]
            where = "within" if s.plan.in_band(t) else ("below" if h.of(t) < low else "above")
            band = f"{_amount(config, h.asset, low)}-{_amount(config, h.asset, high)}"
            table.append(
                (
                    t.value,
                    _amount(config, h.asset, h.of(t)),
                    _share(h.of(t), h.total),
                    str(s.bands.band(t)),
                    band,
                    where,
                )
            )
        for line in format_table(["TIER", "HOLDS", "SHARE", "BAND", "BAND (UNITS)", "STATUS"], table):
            click.echo("  " + line)
        f = s.forecast
        click.echo(f"  forecast {f.horizon_hours} h: {_amount(config, h.asset, f.demand)} ({f.basis})")
        if s.pending:
            click.echo(f"  open withdrawals not yet final: {_amount(config, h.asset, s.pending)} (added to the demand)")
        if not s.plan.sweeps:
            click.echo("  plan: nothing to do")
        for w in s.plan.sweeps:
            kind = "CEREMONY " if w.ceremony else ""
            amount = _amount(config, h.asset, w.amount)
            click.echo(f"  plan: {kind}{w.source.value} -> {w.destination.value} {amount} ({w.reason})")
    click.echo("proposals:" if rows else "proposals: none open")
    table = [
        (
            f"#{r.id}",
            f"{r.asset}/{r.chain}",
            f"{r.source.value} -> {r.destination.value}",
            _amount(config, r.asset, r.amount),
            r.stage.value,
            r.error or (r.reasons[-1] if r.reasons else r.reason),
        )
        for r in rows
    ]
    if rows:
        for line in format_table(["ID", "ASSET", "MOVE", "AMOUNT", "STAGE", "NOTE"], table):
            click.echo("  " + line)
    for note in notes:
        click.echo(f"warning: {note}", err=True)


@click.command(name="tiers")
@click.option("--json", "as_json", is_flag=True, help="Print holdings, bands, forecasts, plans and proposals as JSON.")
@click.option("--propose", is_flag=True, help="Store the plan's proposals now (the running exchange does it itself).")
@click.option("--approve", "approve_id", type=int, metavar="ID", help="Approve sweep proposal ID.")
@click.option("--deny", "deny_id", type=int, metavar="ID", help="Deny sweep proposal ID (needs --note).")
@click.option("--note", default="", help="Why (required with --deny).")
@click.option(
    "--actor", help="Who decides or proposes: recorded in the audit log; approvers must be in the policy group."
)
@click.pass_context
def tiers(
    ctx: click.Context,
    as_json: bool,
    propose: bool,
    approve_id: int | None,
    deny_id: int | None,
    note: str,
    actor: str | None,
) -> None:
    """Custody tiers: holdings against their bands, the demand forecast, sweep proposals and their approval.

    \b
    Examples:
      exchange custody tiers                                  show holdings, bands, forecasts, proposals
      exchange custody tiers --propose --actor ops@example.com
      exchange custody tiers --approve 7 --actor alice@example.com
      exchange custody tiers --deny 7 --note "market is moving" --actor bob@example.com
    """
    config = state(ctx).config_or_exit()
    tier_settings = tier_config(config)
    if approve_id is not None and deny_id is not None:
        raise click.UsageError("give --approve or --deny, not both")
    deciding = approve_id is not None or deny_id is not None
    if (deciding or propose) and not actor:
        raise click.UsageError("--actor is required to propose, approve or deny (it is recorded in the audit log)")
    store = _store(config, tier_settings)
    try:
        if deciding:
            assert actor is not None
            sweep_id = approve_id if approve_id is not None else deny_id
            assert sweep_id is not None
            with _audit_log(config) as log:
                try:
                    row = _sweeper(config, store, log).record_decision(
                        sweep_id, operator=actor, approve=approve_id is not None, note=note
                    )
                except SweepError as exc:
                    raise click.ClickException(str(exc)) from None
            verb = "approval" if approve_id is not None else "denial"
            click.echo(
                f"recorded {actor}'s {verb} of sweep #{row.id} ({row.source.value} -> {row.destination.value} "
                f"{_amount(config, row.asset, row.amount)} {row.asset} on {row.chain}); the running exchange hands "
                "it to the custody policy engine"
            )
            return
        statuses, notes = _statuses(ctx, config, tier_settings)
        if propose:
            assert actor is not None
            with _audit_log(config) as log:
                log.append(
                    actor=actor, action="custody.tiers.plan", target="custody.tiers", details={"assets": len(statuses)}
                )
                _sweeper(config, store, log).propose([s.plan for s in statuses])
        rows = store.sweeps(stages=_SHOWN, limit=500, oldest_first=True)
        if as_json:
            payload = {
                "statuses": [_status_json(config, s) for s in statuses],
                "proposals": [_row_json(config, r) for r in rows],
                "warnings": notes,
            }
            click.echo(json.dumps(payload, indent=2))
            return
        _show(config, statuses, rows, notes)
    finally:
        store.close()
