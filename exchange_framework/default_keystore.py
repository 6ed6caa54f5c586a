"""Built-in plugin: the ``software`` custody signer, an encrypted keystore on the local disk.

Selected by ``[backends] keystore = "software"`` (the default). Settings live in
``[plugins.settings.software_keystore]`` (``path``, ``passphrase_env``, Argon2id cost, ``sign_attempts``); the
passphrase itself comes from the environment variable named there (``EXCHANGE_KEYSTORE_PASSPHRASE`` by default) and
is read only when a key is first used. Disable this plugin by name to replace ``software`` with another signer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exchange_framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.interfaces import CustodySigner

SETTINGS = "software_keystore"


@hookimpl(trylast=True)
def register_custody_signers(config: ExchangeConfig) -> list[CustodySigner]:
    """Register the ``software`` keystore, configured from ``[plugins.settings.software_keystore]``."""
    # Imported here so that loading the plugin manager does not load the cryptography libraries.
    from exchange_framework.custody.keystore import SoftwareKeystore

    return [SoftwareKeystore.from_settings(config.plugin_settings(SETTINGS), config.root)]
