"""``exchange run``: serve the exchange described by the config (portal, APIs, admin), with no demo data or bots."""

from __future__ import annotations

from pathlib import Path

import click

from exchange_framework.api.loop import tune_for_serving
from exchange_framework.cli import state
from exchange_framework.node import with_data_dir


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (behind a TLS proxy).")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Move the journal and an SQLite ledger here (default: where the config puts them).",
)
@click.option("--proxy-headers", is_flag=True, help="Trust X-Forwarded-For/-Proto from the proxy in front.")
@click.pass_context
def run(ctx: click.Context, host: str, port: int, data_dir: Path | None, proxy_headers: bool) -> None:
    """Serve the exchange: portal, REST and WebSocket APIs and admin console, on one worker.

    Unlike ``exchange demo`` it creates no users, funds nothing and runs no market maker. Put a TLS-terminating
    proxy in front of it; the custody keystore passphrase comes from its environment variable. Stop with Ctrl-C.
    """
    import uvicorn

    from exchange_framework.api.app import create_app

    config = state(ctx).config_or_exit()
    if data_dir is not None:
        config = with_data_dir(config, data_dir)
    app = create_app(config)
    click.echo(f"{config.brand.name}: serving on http://{host}:{port} (Ctrl-C stops)")
    tune_for_serving()
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=proxy_headers, access_log=False)
