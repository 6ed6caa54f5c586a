"""``exchange config``: validate ``exchange.toml`` and show what the engine will make of it."""

from __future__ import annotations

import json
from pathlib import Path

import click
import msgspec

from exchange_framework.cli import format_table, state
from exchange_framework.config import ConfigError, ExchangeConfig, load_config
from exchange_framework.money import format_atomic, format_decimal, rate_to_ppm


@click.group()
def config() -> None:
    """Inspect and validate the exchange's configuration file."""


@config.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the engine's asset and market specs as JSON.")
@click.pass_context
def check(ctx: click.Context, path: Path | None, as_json: bool) -> None:
    """Validate PATH (default: the --config file) and summarise it in engine units.

    Prints every problem, one per line with its key path, and exits with status 2 if there is any.
    """
    path = path if path is not None else state(ctx).config_path
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        count = len(exc.lines)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found in {path}", err=True)
        ctx.exit(2)
    if as_json:
        click.echo(json.dumps(_as_json(cfg), indent=2))
        return
    for line in _summary(path, cfg):
        click.echo(line)


def _as_json(cfg: ExchangeConfig) -> dict[str, object]:
    return {
        "assets": msgspec.to_builtins(cfg.engine_assets()),
        "markets": msgspec.to_builtins(cfg.engine_markets()),
    }


def _summary(path: Path, cfg: ExchangeConfig) -> list[str]:
    out = [f"{path}: OK ({cfg.brand.name})", ""]
    out.append("Assets (amounts are integers of the atomic unit)")
    rows = [
        [symbol, asset.decimals, format_atomic(1, asset.decimals, trim=True), asset.name or ""]
        for symbol, asset in cfg.assets.items()
    ]
    out += ["  " + line for line in format_table(["SYMBOL", "DECIMALS", "ATOMIC UNIT", "NAME"], rows)]
    out += ["", "Markets (engine units: prices in ticks, quantities in lots, notional in quote atomic units)"]
    markets = cfg.engine_markets()
    if not markets:
        out.append("  none")
    for symbol, spec in markets.items():
        market = cfg.markets[symbol]
        out.append(
            f"  {symbol}  {spec.base}/{spec.quote}  {market.status}  "
            f"tick {format_decimal(market.tick_size)}  lot {format_decimal(market.lot_size)}"
        )
        out.append(
            f"    base_per_lot={spec.base_per_lot} quote_per_tick_lot={spec.quote_per_tick_lot} "
            f"min_qty={spec.min_qty} max_qty={spec.max_qty} max_price={spec.max_price}"
        )
        out.append(
            f"    min_notional={spec.min_notional} maker_fee_ppm={spec.maker_fee_ppm} "
            f"taker_fee_ppm={spec.taker_fee_ppm}"
        )
    fees = cfg.fees
    out += [
        "",
        f"Fees: maker {format_decimal(fees.maker)} ({rate_to_ppm(fees.maker)} ppm), "
        f"taker {format_decimal(fees.taker)} ({rate_to_ppm(fees.taker)} ppm); "
        f"{len(fees.tiers)} volume tier(s), {len(fees.overrides)} account override(s)",
        f"Backends: journal={cfg.backends.journal} ledger={cfg.backends.ledger} "
        f"keystore={cfg.backends.keystore}; journal file {cfg.journal_path()}",
    ]
    return out
