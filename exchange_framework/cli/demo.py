"""``exchange demo``: the complete branded demo exchange on the embedded defaults, served on localhost.

Portal, REST and WebSocket APIs, admin console, a market maker giving liquidity, demo users with balances, and (when
the development chain plugin is installed) deposits and withdrawals on an in-process chain that mines a block
every few seconds. State lives in the data directory: stop it with Ctrl-C and run it again to carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import click

from exchange_framework.api.context import ApiContext
from exchange_framework.api.loop import tune_for_serving
from exchange_framework.cli import state
from exchange_framework.config import DEMO_CONFIG, ExchangeConfig, PluginSettings
from exchange_framework.node import with_data_dir

PASSPHRASE_ENV = "EXCHANGE_KEYSTORE_PASSPHRASE"
DEMO_PASSPHRASE = "demo-only-passphrase"  # the demo's hot wallet keystore; never for real funds


def demo_config(config: ExchangeConfig, data_dir: Path) -> ExchangeConfig:
    """``config`` with its journal, ledger, dev chain and keystore under ``data_dir``."""
    moved = with_data_dir(config, data_dir)
    settings = {name: dict(values) for name, values in config.plugins.settings.items()}
    settings.setdefault("devchain", {})["data_dir"] = str(data_dir.resolve() / "devchain")
    settings.setdefault("software_keystore", {})["path"] = str(data_dir.resolve() / "keystore")
    plugins = PluginSettings(
        modules=config.plugins.modules,
        enabled=config.plugins.enabled,
        disabled=config.plugins.disabled,
        settings=settings,
    )
    result = moved.model_copy(update={"plugins": plugins})
    result._source = config._source
    return result


@click.command()
@click.option("--port", default=8000, show_default=True, help="Port to serve the portal and APIs on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it local).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the exchange keeps its state (default: the directory of [journal] path, var/demo for the "
    "packaged demo). Run again to carry on from it.",
)
@click.option("--fresh", is_flag=True, help="Delete the data directory first and start an empty exchange.")
@click.option("--no-bot", is_flag=True, help="Do not run the market maker.")
@click.option("--seed", default=7, show_default=True, help="Seed of the market maker's price path.")
@click.pass_context
def demo(ctx: click.Context, port: int, host: str, data_dir: Path | None, fresh: bool, no_bot: bool, seed: int) -> None:
    """Run the branded demo exchange: portal, REST and WebSocket APIs, admin console and a market maker.

    Prints the address and the demo logins. Stop it with Ctrl-C; its state stays in --data-dir.
    """
    import uvicorn

    from exchange_framework.api.app import create_app
    from exchange_framework.demo.marketmaker import MarketMaker
    from exchange_framework.demo.seed import DEMO_PASSWORD, quotes_for
    from exchange_framework.demo.seed import seed as seed_demo

    base = state(ctx).config_or_exit()
    directory = data_dir if data_dir is not None else base.journal_path().parent
    if fresh and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = demo_config(base, directory)
    if not os.environ.get(PASSPHRASE_ENV):
        if base.source is not None and base.source.resolve() != DEMO_CONFIG:
            raise click.UsageError(f"set {PASSPHRASE_ENV} to the passphrase of the hot wallet keystore")
        os.environ[PASSPHRASE_ENV] = DEMO_PASSPHRASE
    bot_task: dict[str, asyncio.Task[None]] = {}
    url = f"http://{host}:{port}"

    async def started(api: ApiContext) -> None:
        logins = await seed_demo(api)
        wallet: Any = api.extras.get("wallet")
        if wallet is not None:
            await _fund_deposits(wallet)
        if not no_bot:
            maker = MarketMaker(api.node, quotes_for(api), seed=seed)
            bot_task["maker"] = asyncio.create_task(maker.run(), name="market maker")
        click.echo(click.style(f"\n{config.brand.name} is running at {url}", bold=True))
        click.echo(f"  portal        {url}/")
        click.echo(f"  admin         {url}/admin")
        click.echo(f"  REST API      {url}/api/v3/exchangeInfo   (OpenAPI: {url}/openapi.json)")
        click.echo(f"  WebSocket     {url.replace('http', 'ws')}/ws/btcusdt@trade")
        click.echo(f"  data          {directory}")
        click.echo(click.style("\nDemo logins (password for all: " + DEMO_PASSWORD + ")", bold=True))
        for login in logins:
            line = f"  {login.email:<28} {login.role}"
            if login.key is not None:
                line += f"\n      API key {login.key.key}\n      secret  {login.key.secret}"
            click.echo(line)
        if wallet is not None:
            chains = ", ".join(sorted(wallet.adapters))
            click.echo(f"\nDeposits and withdrawals run on: {chains} (a block every few seconds).")
        else:
            click.echo(
                "\nNo chain plugin is installed: deposits and withdrawals are off (pip install -e chains/devchain)."
            )
        click.echo("Stop with Ctrl-C; run again to carry on.")

    app = create_app(config, on_started=started)
    tune_for_serving()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, bot_task))
    click.echo("stopped")


async def _serve(server: Any, tasks: dict[str, asyncio.Task[None]]) -> None:
    try:
        await server.serve()
    finally:
        for task in tasks.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _fund_deposits(wallet: Any) -> None:
    """Mint coins to the market maker's deposit addresses on development chains that can (``dev_mint``): the
    deposits are credited like any other, and the sweeper moves them into the hot wallet, which then pays the
    demo's withdrawals with custody and ledger in step (``exchange ledger check``)."""
    from exchange_framework.demo.marketmaker import MAKER_ACCOUNT

    for name, adapter in wallet.adapters.items():
        mint = getattr(adapter, "dev_mint", None)
        if mint is None:
            continue
        for asset in sorted(getattr(adapter, "assets", {adapter.native_asset})):
            decimals = wallet.decimals.get(asset)
            if decimals is not None:
                address, _memo = wallet.deposit_address(MAKER_ACCOUNT, asset, name)
                await asyncio.to_thread(mint, address, asset, 1000 * 10**decimals)
