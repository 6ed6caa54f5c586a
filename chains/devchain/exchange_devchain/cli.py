"""``exchange devchain``: look at and drive the development chain (status, faucet, mine, reorg)."""

from __future__ import annotations

import click

from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.plugin import SETTINGS_NAME, adapter_from_settings
from exchange_framework.cli import state


def _adapter(ctx: click.Context) -> DevChainAdapter:
    config = state(ctx).config_or_exit()
    try:
        return adapter_from_settings(config.plugin_settings(SETTINGS_NAME), config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("devchain")
def devchain() -> None:
    """Drive the development chain: its status, the faucet, mining and scripted reorgs."""


@devchain.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the chain's tip and mempool."""
    node = _adapter(ctx).node
    tip = node.block(node.height())
    assert tip is not None
    click.echo(f"chain {node.chain_id}: height {tip.height}, tip {tip.hash}")


@devchain.command("faucet")
@click.argument("address")
@click.argument("amount", type=int)
@click.option("--asset", default=None, help="asset symbol (default: the native coin)")
@click.pass_context
def faucet(ctx: click.Context, address: str, amount: int, asset: str | None) -> None:
    """Mint AMOUNT atomic units to ADDRESS (mined with the next block)."""
    node = _adapter(ctx).node
    try:
        click.echo(node.faucet(address, amount, asset))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@devchain.command("mine")
@click.argument("blocks", type=click.IntRange(1, 10_000), default=1)
@click.pass_context
def mine(ctx: click.Context, blocks: int) -> None:
    """Mine BLOCKS blocks (default 1)."""
    for block in _adapter(ctx).node.mine(blocks):
        click.echo(f"{block.height} {block.hash} ({len(block.txids)} transactions)")


@devchain.command("reorg")
@click.argument("depth", type=click.IntRange(1))
@click.option("--drop", multiple=True, help="txid to leave out of the new branch (repeatable)")
@click.pass_context
def reorg(ctx: click.Context, depth: int, drop: tuple[str, ...]) -> None:
    """Replace the last DEPTH blocks with a longer branch."""
    try:
        branch = _adapter(ctx).node.reorg(depth, drop=drop)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    for block in branch:
        click.echo(f"{block.height} {block.hash} ({len(block.txids)} transactions)")
