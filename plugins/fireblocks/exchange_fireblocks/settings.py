"""``[plugins.settings.fireblocks]``: where the Fireblocks API is, whose keys to use, and how webhooks are checked.

Secrets never live in ``exchange.toml``: the API key comes from an environment variable, and the API user's RSA
private key from a file whose path is set here or in an environment variable. Both are read on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["PUBLISHED_WEBHOOK_KEYS", "SETTINGS_NAME", "FireblocksConfigError", "Settings"]

SETTINGS_NAME = "fireblocks"

# Fireblocks' published keys for the legacy ``Fireblocks-Signature`` header, shipped in ``keys/``.
PUBLISHED_WEBHOOK_KEYS = {"production": "production.pem", "sandbox": "sandbox.pem"}


class FireblocksConfigError(ValueError):
    """The plugin's settings, or a secret they point to, are missing or wrong; the message says what to set."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The plugin's settings; see ``docs/custody-fireblocks.md`` for an example."""

    vault_account_id: str = ""  # the vault account withdrawals are paid from
    assets: dict[str, str] = {}  # exchange asset symbol -> Fireblocks asset id ("ETH" -> "ETH", "USDC" -> "USDC")
    signing_assets: dict[str, str] = {}  # the raw-signing signer: key scheme -> asset ({secp256k1 = "ETH"})
    sign_timeout_seconds: float = 300  # how long a raw signing request may wait for Fireblocks' approvals
    base_url: str = "https://api.fireblocks.io/v1"  # sandbox: https://sandbox-api.fireblocks.io/v1
    api_key_env: str = "FIREBLOCKS_API_KEY"  # the variable holding the API user's key (the X-API-Key header)
    secret_key_file: str = ""  # PEM file of the API user's RSA private key (or name it in secret_key_file_env)
    secret_key_file_env: str = "FIREBLOCKS_SECRET_KEY_FILE"
    timeout_seconds: float = 10
    poll_interval_seconds: float = 2
    balance_vault_ids: list[str] = []  # vault accounts whose balances are reported; empty: every vault account
    webhook_path: str = "/hooks/fireblocks"
    webhook_public_key: str = "production"  # a published key ("production", "sandbox"), or "" for none
    webhook_public_key_file: str = ""  # a PEM public key for Fireblocks-Signature instead of a published one
    webhook_jwks_url: str = ""  # Webhooks v2: your region's JWKS (US: https://keys.fireblocks.io/.well-known/jwks.json)

    def __post_init__(self) -> None:
        where = f"[plugins.settings.{SETTINGS_NAME}]"
        if not self.assets and not self.signing_assets:
            raise FireblocksConfigError(f'{where} assets: map exchange assets to Fireblocks ids, e.g. ETH = "ETH"')
        if self.assets and not self.vault_account_id:
            raise FireblocksConfigError(f"{where} vault_account_id: set the vault account withdrawals are paid from")
        schemes = ("secp256k1", "ed25519")
        unknown = sorted(set(self.signing_assets) - set(schemes))
        if unknown:
            raise FireblocksConfigError(f"{where} signing_assets: {', '.join(unknown)}: use {' or '.join(schemes)}")
        if min(self.timeout_seconds, self.poll_interval_seconds, self.sign_timeout_seconds) <= 0:
            raise FireblocksConfigError(f"{where} the timeouts and poll_interval_seconds must be positive")
        if self.webhook_public_key and self.webhook_public_key not in PUBLISHED_WEBHOOK_KEYS:
            known = ", ".join(PUBLISHED_WEBHOOK_KEYS)
            raise FireblocksConfigError(f'{where} webhook_public_key: use one of {known}, or "" with a key file')
        if not self.webhook_path.startswith("/"):
            raise FireblocksConfigError(f"{where} webhook_path must start with /")

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Settings:
        """Convert the settings table, naming the setting that is wrong."""
        try:
            return msgspec.convert(dict(raw), cls)
        except msgspec.ValidationError as exc:
            raise FireblocksConfigError(f"[plugins.settings.{SETTINGS_NAME}]: {exc}") from None

    def api_key(self) -> str:
        """Return the API key from its environment variable."""
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise FireblocksConfigError(f"set the Fireblocks API key in the environment variable {self.api_key_env}")
        return key

    def secret_key_path(self) -> Path:
        """Return the path of the API user's private key file."""
        path = self.secret_key_file or os.environ.get(self.secret_key_file_env, "")
        if not path:
            raise FireblocksConfigError(
                f"name the Fireblocks API private key file in [plugins.settings.{SETTINGS_NAME}] secret_key_file "
                f"or in the environment variable {self.secret_key_file_env}"
            )
        return Path(path)

    def secret_key(self) -> str:
        """Read the API user's private key (PEM). Errors name the file, never its content."""
        path = self.secret_key_path()
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            problem = type(exc).__name__
            raise FireblocksConfigError(f"cannot read the Fireblocks API private key file {path}: {problem}") from None
        if "PRIVATE KEY-----" not in text:
            raise FireblocksConfigError(f"{path} is not a PEM private key (Fireblocks needs the API user's RSA key)")
        return text

    def webhook_public_key_pem(self) -> bytes | None:
        """Return the PEM public key that checks ``Fireblocks-Signature``, or None if that scheme is off."""
        if self.webhook_public_key_file:
            try:
                return Path(self.webhook_public_key_file).read_bytes()
            except OSError as exc:
                raise FireblocksConfigError(f"cannot read webhook_public_key_file: {exc}") from None
        if self.webhook_public_key:
            name = PUBLISHED_WEBHOOK_KEYS[self.webhook_public_key]
            return resources.files("exchange_fireblocks").joinpath("keys", name).read_bytes()
        return None
