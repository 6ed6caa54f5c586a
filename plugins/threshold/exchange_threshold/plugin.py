"""The ``threshold`` plugin: registers a :class:`~exchange_threshold.signer.ThresholdSigner` named ``threshold``
and the ``exchange threshold`` command (key epochs, proactive refresh, repair of a node).

Select it with ``[backends] keystore = "threshold"`` (or use it as the warm wallet's signer) and configure it in
``[plugins.settings.threshold]``::

    [plugins.settings.threshold]
    path = "var/threshold"                        # the coordinator's sealed store (identity key, key records)
    passphrase_env = "EXCHANGE_THRESHOLD_PASSPHRASE"
    threshold = 3
    refresh_interval_hours = 168                  # proactive refresh: `exchange threshold refresh --due`
    nodes = [
        { identifier = 1, host = "10.0.0.11", port = 7101, public_key = "<hex X25519 key printed by node init>" },
        # ... one per node, five in all for 3-of-5
    ]
"""

from __future__ import annotations

import click

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import CustodySigner
from exchange_threshold.signer import SETTINGS_NAME, ThresholdSettings, ThresholdSigner

__all__ = ["register_commands", "register_custody_signers", "startup"]


@hookimpl
def register_custody_signers(config: ExchangeConfig) -> list[CustodySigner] | None:
    """Register the threshold signer when ``[plugins.settings.threshold]`` configures it."""
    settings = config.plugin_settings(SETTINGS_NAME)
    if not settings:
        return None
    return [ThresholdSigner.from_settings(settings, config.root)]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``exchange threshold`` (status, refresh, repair)."""
    from exchange_threshold.cli import threshold

    cli.add_command(threshold)


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Fail fast when the threshold signer is selected but not configured."""
    if config.backends.keystore != SETTINGS_NAME:
        return
    settings = config.plugin_settings(SETTINGS_NAME)
    if not settings:
        raise ValueError(
            f'[backends] keystore = "{SETTINGS_NAME}" needs [plugins.settings.{SETTINGS_NAME}] with the nodes '
            "(see docs/threshold-signing.md)"
        )
    ThresholdSettings.parse(settings)
