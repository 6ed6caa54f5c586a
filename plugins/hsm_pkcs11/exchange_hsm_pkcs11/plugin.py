"""The ``hsm_pkcs11`` plugin: registers a :class:`~exchange_hsm_pkcs11.signer.Pkcs11Signer` named ``hsm_pkcs11``.

Select it with ``[backends] keystore = "hsm_pkcs11"`` and configure it in ``[plugins.settings.hsm_pkcs11]``::

    [plugins.settings.hsm_pkcs11]
    module = "/usr/lib/softhsm/libsofthsm2.so"   # Thales Luna: /usr/safenet/lunaclient/lib/libCryptoki2_64.so
    token_label = "exchange-hot"
    pin_env = "EXCHANGE_HSM_PIN"                 # the variable holding the user PIN (never the PIN itself)
    sign_attempts = 3
"""

from __future__ import annotations

import os
from pathlib import Path

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import CustodySigner
from exchange_hsm_pkcs11.signer import SETTINGS_NAME, HsmSettings, Pkcs11Signer

__all__ = ["register_custody_signers", "startup"]


@hookimpl
def register_custody_signers(config: ExchangeConfig) -> list[CustodySigner] | None:
    """Register the HSM signer when ``[plugins.settings.hsm_pkcs11]`` configures it."""
    settings = config.plugin_settings(SETTINGS_NAME)
    if not settings:
        return None
    return [Pkcs11Signer.from_settings(settings)]


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Fail fast when the HSM signer is selected but its settings, module or PIN variable are missing."""
    if config.backends.keystore != SETTINGS_NAME:
        return
    settings = config.plugin_settings(SETTINGS_NAME)
    if not settings:
        raise ValueError(
            f'[backends] keystore = "{SETTINGS_NAME}" needs [plugins.settings.{SETTINGS_NAME}] with module and '
            "token_label (see docs/custody-signers.md)"
        )
    parsed = HsmSettings.parse(settings)
    if not Path(parsed.module).is_file():
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] module: {parsed.module} does not exist")
    if not os.environ.get(parsed.pin_env):
        raise ValueError(f"the HSM user PIN is not set: export it in the environment variable {parsed.pin_env}")
