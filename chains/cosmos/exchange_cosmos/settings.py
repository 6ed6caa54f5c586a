"""``[plugins.settings.cosmos]``: one Cosmos SDK chain, parsed once with errors that name the key.

::

    [plugins.settings.cosmos]
    name = "cosmoshub"              # the chain's name in the exchange
    chain_id = "cosmoshub-4"        # the chain-id string signed into every SignDoc
    hrp = "cosmos"                  # bech32 prefix of account addresses
    xpub = "xpub..."                # deposit keys: non-hardened child 0/<account> (m/44'/118'/0' exported)
    native_asset = "ATOM"
    native_denom = "uatom"
    assets = { "USDC" = "ibc/498A0751C798A0D9A389AA3691123DADA57DAA4FE165D5C75894505B876BA6E4" }
    gas_limit = 200000
    fee_amount = 5000               # in native_denom
    confirmations = 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from exchange_framework.chains.hd import HdError, validate_xpub

__all__ = ["SETTINGS_NAME", "CosmosSettings", "parse_settings"]

SETTINGS_NAME = "cosmos"


class CosmosSettings(BaseModel):
    """The whole ``[plugins.settings.cosmos]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(default="cosmoshub", min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    chain_id: StrictStr = Field(min_length=1, max_length=50)
    hrp: StrictStr = Field(default="cosmos", pattern=r"^[a-z]{1,20}$")
    xpub: StrictStr
    native_asset: StrictStr = Field(default="ATOM", min_length=1, max_length=20)
    native_denom: StrictStr = Field(default="uatom", min_length=1, max_length=128)
    assets: dict[StrictStr, StrictStr] = {}
    gas_limit: StrictInt = Field(default=200_000, ge=1)
    fee_amount: StrictInt = Field(default=5_000, ge=0)
    confirmations: StrictInt = Field(default=1, ge=1)

    @field_validator("xpub")
    @classmethod
    def _xpub(cls, value: str) -> str:
        try:
            validate_xpub(value)
        except HdError as exc:
            raise ValueError(str(exc)) from None
        return value


def parse_settings(settings: Mapping[str, Any]) -> CosmosSettings:
    """Parse ``[plugins.settings.cosmos]``; raise ``ValueError`` naming every bad key and what is allowed."""
    try:
        parsed = CosmosSettings.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(table)'}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] is invalid: {problems}") from None
    denoms = [parsed.native_denom, *parsed.assets.values()]
    if parsed.native_asset in parsed.assets or len(set(denoms)) != len(denoms):
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] asset symbols and denoms must be unique")
    return parsed
