"""``[plugins.settings.evm]``: one adapter per configured EVM network, parsed once with errors that name the key.

::

    [plugins.settings.evm]
    data_dir = "var/evm"                      # nonce book per network (relative to exchange.toml)

    [[plugins.settings.evm.networks]]
    name = "ethereum"                         # the chain's name in the exchange
    chain_id = 1                              # EIP-155 chain id, enforced before anything is signed
    rpc_url = "http://127.0.0.1:8545"
    confirmations = 12
    native_symbol = "ETH"
    native_decimals = 18
    xpub = "xpub..."                          # deposit keys: the BIP44 account (m/44'/60'/0') or its chain (.../0)
    hot_wallet_address = "0x..."              # optional: withdrawals must be paid from this address
    hot_wallet_key_id = "eth-hot-1"           # optional: ... and signed by this custody key

    [[plugins.settings.evm.networks.tokens]]
    symbol = "USDC"
    contract = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    decimals = 6
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from exchange_evm.address import is_checksum_address

__all__ = ["SETTINGS_NAME", "EvmSettings", "NetworkSettings", "TokenSettings", "parse_settings"]

SETTINGS_NAME = "evm"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _checksummed(value: str, what: str) -> str:
    if not is_checksum_address(value):
        raise ValueError(f"{what} {value!r} is not an EIP-55 checksummed address (copy it from a block explorer)")
    return value


class TokenSettings(_Strict):
    """An ERC-20 token the adapter watches and withdraws."""

    symbol: StrictStr = Field(min_length=1, max_length=20)
    contract: StrictStr
    decimals: StrictInt = Field(ge=0, le=36)

    @field_validator("contract")
    @classmethod
    def _contract(cls, value: str) -> str:
        return _checksummed(value, "contract")


class NetworkSettings(_Strict):
    """One EVM network: its node, depth, native coin, tokens and the keys of its wallets."""

    name: StrictStr = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    chain_id: StrictInt = Field(ge=1)
    rpc_url: StrictStr
    confirmations: StrictInt = Field(ge=1)
    native_symbol: StrictStr = Field(min_length=1, max_length=20)
    native_decimals: StrictInt = Field(default=18, ge=0, le=36)
    xpub: StrictStr
    hot_wallet_address: StrictStr | None = None
    hot_wallet_key_id: StrictStr | None = None
    tokens: tuple[TokenSettings, ...] = ()
    legacy: StrictBool = False  # build legacy EIP-155 transactions (for networks without EIP-1559)
    trace_internal_transfers: StrictBool = False  # find coin paid by contracts (needs the node's debug_ namespace)
    rpc_timeout: float = Field(default=10.0, gt=0)
    gas_margin_percent: StrictInt = Field(default=25, ge=0, le=400)  # added to eth_estimateGas (not to 21,000)
    nonce_hold_seconds: StrictInt = Field(default=900, ge=1)  # a built, never broadcast nonce is free again after this

    @field_validator("hot_wallet_address")
    @classmethod
    def _hot(cls, value: str | None) -> str | None:
        return None if value is None else _checksummed(value, "hot_wallet_address")

    @model_validator(mode="after")
    def _unique_tokens(self) -> NetworkSettings:
        symbols = [t.symbol for t in self.tokens] + [self.native_symbol]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"asset symbols on {self.name} must be unique, got {symbols}")
        contracts = [t.contract for t in self.tokens]
        if len(set(contracts)) != len(contracts):
            raise ValueError(f"a token contract is listed twice on {self.name}")
        return self


class EvmSettings(_Strict):
    """The whole ``[plugins.settings.evm]`` table."""

    data_dir: StrictStr = "var/evm"
    networks: tuple[NetworkSettings, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> EvmSettings:
        names = [n.name for n in self.networks]
        if len(set(names)) != len(names):
            raise ValueError(f"network names must be unique, got {names}")
        return self


def parse_settings(settings: Mapping[str, Any]) -> EvmSettings:
    """Parse ``[plugins.settings.evm]``; raise ``ValueError`` naming every bad key and what is allowed."""
    try:
        return EvmSettings.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(table)'}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] is invalid: {problems}") from None
