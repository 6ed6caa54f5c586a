"""{{ cookiecutter.plugin_name.strip() }}: a chain adapter, developed against the in-process node in ``node.py``.

The adapter holds no private key: deposit addresses are derived from the custody side's extended public key with
the kernel's BIP32 helpers, and withdrawals are built unsigned, decoded for the custody policy engine, signed by a
custody signer and assembled here. Everything that needs the network goes through the node object; to support a
real chain, give the adapter a client for its node RPC with :class:`MemoryNode`'s methods. Settings, in
``exchange.toml``::

    [plugins.settings.{{ cookiecutter.__slug }}]
    xpub = "xpub..."                # deposit keys: child 0/<account>
    native_asset = "DEV"
    required_confirmations = 3
    fee = 1000                      # atomic units per withdrawal
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import msgspec
from exchange_framework import hookimpl
from exchange_framework.chains.hd import account_path, derive_public_key, validate_xpub
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.signing import verify_signature
from exchange_framework.interfaces import (
    BlockHeader,
    DecodedTransaction,
    DepositAddress,
    KeyScheme,
    ScannedBlock,
    TransactionStatus,
    UnsignedTransaction,
)
from exchange_framework.types import AccountId

from {{ cookiecutter.__package }}.node import (
    MemoryNode,
    SignedTransfer,
    TransferBody,
    address_of,
    decode_body,
    digest_of,
    encode_body,
    is_address,
)

PLUGIN_NAME = "{{ cookiecutter.__slug }}"
SETTINGS = f"[plugins.settings.{PLUGIN_NAME}]"
CHAIN_ID = f"{PLUGIN_NAME}-dev-1"


class LedgerChainAdapter:
    """A :class:`~exchange_framework.interfaces.ChainAdapter` for an account-model chain with native-coin transfers."""

    def __init__(
        self,
        node: MemoryNode,
        *,
        xpub: str,
        native_asset: str,
        required_confirmations: int,
        fee: int,
        name: str = PLUGIN_NAME,
    ) -> None:
        validate_xpub(xpub)
        self.name = name
        self.chain_id = node.chain_id
        self.native_asset = native_asset
        self.required_confirmations = required_confirmations
        self.node = node
        self.xpub = xpub
        self.fee = fee
        self._next_nonce: dict[str, int] = {}  # nonces handed out by build_withdrawal, per paying address

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], node: MemoryNode | None = None) -> LedgerChainAdapter:
        """Build the adapter from the plugin's settings table; raise ``ValueError`` naming a bad key."""
        known = {"xpub", "native_asset", "required_confirmations", "fee"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"{SETTINGS}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        xpub = settings.get("xpub")
        if not isinstance(xpub, str):
            raise ValueError(f"{SETTINGS} xpub is required: the custody side's extended public key")
        try:
            validate_xpub(xpub)
        except ValueError as exc:
            raise ValueError(f"{SETTINGS} xpub: {exc}") from None
        asset = settings.get("native_asset", "DEV")
        confirmations = settings.get("required_confirmations", 3)
        fee = settings.get("fee", 1000)
        if not isinstance(asset, str) or not asset:
            raise ValueError(f'{SETTINGS} native_asset must be an exchange asset symbol, such as "DEV"')
        for key, value, least in (("required_confirmations", confirmations, 1), ("fee", fee, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{SETTINGS} {key} must be a whole number of at least {least}, not {value!r}")
        return cls(
            node or MemoryNode(CHAIN_ID), xpub=xpub, native_asset=asset, required_confirmations=confirmations, fee=fee
        )

    def deposit_address(self, account: AccountId) -> DepositAddress:
        """Return the address of ``account``'s key, child ``0/<account>`` of the xpub (no memo on this chain)."""
        return DepositAddress(address_of(derive_public_key(self.xpub, account_path(account))))

    def validate_address(self, address: str) -> bool:
        """Return whether ``address`` is well formed, checksum included."""
        return is_address(address)

    def tip_height(self) -> int:
        """Return the height of the node's best block."""
        return self.node.tip_height()

    def block_header(self, height: int) -> BlockHeader | None:
        """Return the header of the block at ``height``, or ``None`` above the tip."""
        return self.node.header(height)

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Return blocks from ``from_height`` (at most ``max_blocks``) with their transfers paying ``addresses``."""
        watched = set(addresses)
        last = min(self.node.tip_height(), from_height + max_blocks - 1)
        blocks: list[ScannedBlock] = []
        for height in range(max(from_height, 0), last + 1):
            header = self.node.header(height)
            assert header is not None  # heights up to the tip exist
            transfers = tuple(
                msgspec.structs.replace(transfer, asset=self.native_asset)
                for transfer in self.node.transfers(height)
                if transfer.address in watched
            )
            blocks.append(ScannedBlock(header=header, transfers=transfers))
        return blocks

    def build_withdrawal(
        self,
        *,
        key_id: str,
        public_key: bytes,
        destination: str,
        asset: str,
        amount: int,
        memo: str = "",
    ) -> UnsignedTransaction:
        """Build an unsigned transfer of ``amount`` from ``public_key``'s address, with the next unused nonce."""
        if not is_address(destination):
            raise ValueError(f"{destination!r} is not a {self.name} address")
        if asset != self.native_asset:
            raise ValueError(f"{self.name} moves only {self.native_asset}, not {asset!r}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"amount must be a positive whole number of atomic units, not {amount!r}")
        source = address_of(public_key)
        shortfall = amount + self.fee - self.node.balance(source)
        if shortfall > 0:
            raise ValueError(f"{source} cannot pay {amount} plus fee {self.fee}: short by {shortfall} {asset}")
        nonce = max(self.node.next_nonce(source), self._next_nonce.get(source, 0))
        self._next_nonce[source] = nonce + 1
        body = TransferBody(
            chain_id=self.chain_id,
            public_key=public_key.hex(),
            source=source,
            destination=destination,
            amount=amount,
            fee=self.fee,
            nonce=nonce,
            memo=memo,
        )
        payload = encode_body(body)
        return UnsignedTransaction(chain=self.name, payload=payload, digests=(digest_of(payload),), key_id=key_id)

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """Decode what ``unsigned`` would do from its payload; raise ``ValueError`` if it or its digest is wrong."""
        body = decode_body(unsigned.payload)
        if unsigned.digests != (digest_of(unsigned.payload),):
            raise ValueError("the transaction's digest does not match its payload")
        return DecodedTransaction(
            chain=self.name,
            chain_id=body.chain_id,
            asset=self.native_asset,
            source=body.source,
            destination=body.destination,
            amount=body.amount,
            fee=body.fee,
            fee_asset=self.native_asset,
            memo=body.memo,
        )

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """Attach the one signature (secp256k1 ``r || s || v``) after checking it against the paying key."""
        body = decode_body(unsigned.payload)
        if len(signatures) != 1:
            raise ValueError(f"a {self.name} transfer takes exactly one signature, not {len(signatures)}")
        public_key = bytes.fromhex(body.public_key)
        if not verify_signature(KeyScheme.SECP256K1, public_key, digest_of(unsigned.payload), signatures[0]):
            raise ValueError("the signature does not verify against the digest and the paying key")
        return msgspec.json.encode(SignedTransfer(payload=unsigned.payload, signature=signatures[0]))

    def broadcast(self, signed_tx: bytes) -> str:
        """Send a signed transaction to the node and return its txid; sending it again returns the same txid."""
        return self.node.submit(signed_tx)

    def transaction_status(self, txid: str) -> TransactionStatus:
        """Return where ``txid`` stands on the node."""
        return self.node.status(txid)


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the plugin's settings as the exchange starts: a mistake stops the start with a clear error."""
    LedgerChainAdapter.from_settings(config.plugin_settings(PLUGIN_NAME))


@hookimpl
def register_chain_adapters(config: ExchangeConfig) -> list[LedgerChainAdapter]:
    """Register the adapter, under the plugin's name, with a fresh in-process node."""
    return [LedgerChainAdapter.from_settings(config.plugin_settings(PLUGIN_NAME))]
