"""``[plugins.settings.solana]``: one Solana cluster, parsed once with errors that name the key.

::

    [plugins.settings.solana]
    name = "solana"                        # the chain's name in the exchange
    cluster = "mainnet-beta"               # for operators and logs
    chain_id = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"   # the cluster's genesis hash
    node = "rpc"                           # "rpc" (rpc_url) or "litesvm" (in-process dev chain, no persistence)
    rpc_url = "http://127.0.0.1:8899"
    commitment = "confirmed"
    confirmations = 32                     # slot depth at which a deposit is credited
    native_asset = "SOL"
    deposit_owner = "<base58 address>"     # memo deposits: the shared address, memo = account number
    account_addresses = { "7" = "<base58 address>" }   # optional per-account addresses (SLIP-10, derived offline)
    transaction_version = "v0"             # or "legacy"
    compute_unit_price = 0                 # priority fee, micro-lamports per compute unit
    lamports_per_signature = 5000

    [[plugins.settings.solana.tokens]]
    symbol = "USDC"
    mint = "EPjFWdd5AufqSSqeM2qFJWHEqXZwqhzwRBs3cEq4apAZ"
    decimals = 6
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

__all__ = ["SETTINGS_NAME", "SolanaSettings", "TokenSettings", "is_address", "parse_settings"]

SETTINGS_NAME = "solana"


def is_address(value: str) -> bool:
    """Whether ``value`` is a canonical base58 encoding of 32 bytes (Solana addresses carry no checksum)."""
    from solders.pubkey import Pubkey

    if not isinstance(value, str) or not 32 <= len(value) <= 44:
        return False
    try:
        return str(Pubkey.from_string(value)) == value
    except ValueError:
        return False


def _address(value: str, what: str) -> str:
    if not is_address(value):
        raise ValueError(f"{what} {value!r} is not a base58 Solana address")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenSettings(_Strict):
    """An SPL token (classic Token program) the adapter watches and withdraws."""

    symbol: StrictStr = Field(min_length=1, max_length=20)
    mint: StrictStr
    decimals: StrictInt = Field(ge=0, le=18)

    @field_validator("mint")
    @classmethod
    def _mint(cls, value: str) -> str:
        return _address(value, "mint")


class SolanaSettings(_Strict):
    """The whole ``[plugins.settings.solana]`` table."""

    name: StrictStr = Field(default="solana", min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    cluster: StrictStr = "mainnet-beta"
    chain_id: StrictStr = Field(min_length=1)
    node: Literal["rpc", "litesvm"] = "rpc"
    rpc_url: StrictStr = "http://127.0.0.1:8899"
    commitment: Literal["confirmed", "finalized"] = "confirmed"  # getBlock accepts no "processed"
    rpc_timeout: float = Field(default=10.0, gt=0)
    confirmations: StrictInt = Field(default=32, ge=1)
    native_asset: StrictStr = Field(default="SOL", min_length=1, max_length=20)
    deposit_owner: StrictStr
    account_addresses: dict[str, StrictStr] = {}
    tokens: tuple[TokenSettings, ...] = ()
    transaction_version: Literal["v0", "legacy"] = "v0"
    compute_unit_price: StrictInt = Field(default=0, ge=0, le=10**9)
    lamports_per_signature: StrictInt = Field(default=5000, ge=1)

    @field_validator("deposit_owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        return _address(value, "deposit_owner")

    @field_validator("account_addresses")
    @classmethod
    def _accounts(cls, value: dict[str, str]) -> dict[str, str]:
        for account, address in value.items():
            if not account.isdigit():
                raise ValueError(f"account_addresses key {account!r} is not an account number")
            _address(address, f"account_addresses[{account}]")
        if len(set(value.values())) != len(value):
            raise ValueError("account_addresses lists an address twice: every account needs its own")
        return value


def parse_settings(settings: Mapping[str, Any]) -> SolanaSettings:
    """Parse ``[plugins.settings.solana]``; raise ``ValueError`` naming every bad key and what is allowed."""
    try:
        parsed = SolanaSettings.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(table)'}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] is invalid: {problems}") from None
    symbols = [t.symbol for t in parsed.tokens] + [parsed.native_asset]
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] asset symbols must be unique, got {symbols}")
    return parsed
