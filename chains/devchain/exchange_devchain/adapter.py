"""The devchain's :class:`~exchange_framework.interfaces.ChainAdapter`.

Deposit addresses are BIP32 children ``0/<account>`` of the configured xpub; withdrawals are single-signature
transfers whose payload is the msgpack transfer body and whose one digest is ``sha256(DOMAIN || body)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence

from exchange_devchain.node import DevChain, TxRejected
from exchange_devchain.tx import (
    Mint,
    SignedTransfer,
    TransferBody,
    address_of,
    decode_body,
    digest_of,
    encode_body,
    encode_tx,
    is_address,
    verify,
)
from exchange_framework.chains.hd import account_path, derive_public_key, validate_xpub
from exchange_framework.interfaces import (
    BlockHeader,
    DecodedTransaction,
    DepositAddress,
    ScannedBlock,
    TransactionStatus,
    Transfer,
    UnsignedTransaction,
)

__all__ = ["NONCE_HOLD_SECONDS", "DevChainAdapter", "InsufficientFunds"]

NONCE_HOLD_SECONDS = 120.0


class InsufficientFunds(ValueError):
    """The paying wallet cannot cover a withdrawal and its fee; the message names the shortfall."""


class DevChainAdapter:
    """A chain adapter for one :class:`DevChain` node (given, or opened lazily by ``node_factory``)."""

    def __init__(
        self,
        node: DevChain | Callable[[], DevChain],
        *,
        xpub: str,
        name: str = "devchain",
        chain_id: str = "devchain-1",
        required_confirmations: int = 3,
        native_asset: str = "DEV",
        assets: Collection[str] = ("DEV", "DUSD"),
        memo_deposits: bool = False,
        dev_deposit_xprv: str = "",
    ) -> None:
        validate_xpub(xpub)
        if not isinstance(required_confirmations, int) or required_confirmations < 1:
            raise ValueError(f"required_confirmations must be a positive integer, got {required_confirmations!r}")
        if native_asset not in assets:
            raise ValueError(f"the native asset {native_asset!r} must be one of assets {sorted(assets)}")
        self.name = name
        self.chain_id = chain_id
        self.native_asset = native_asset
        self.required_confirmations = required_confirmations
        self.assets = frozenset(assets)
        self.memo_deposits = memo_deposits
        self.dev_deposit_xprv = dev_deposit_xprv
        """The published root behind :attr:`xpub` when it is the public dev key: lets the demo sweep deposits."""
        self._xpub = xpub
        self._node_or_factory = node
        self._node: DevChain | None = node if isinstance(node, DevChain) else None
        self._nonce_lock = threading.Lock()
        # address -> (next nonce handed out by build_withdrawal, when): a built transaction that is never
        # broadcast (refused by policy, say) stops holding its nonce after NONCE_HOLD_SECONDS.
        self._reserved: dict[str, tuple[int, float]] = {}

    @property
    def node(self) -> DevChain:
        """The node this adapter talks to (opened on first use, so registering the plugin touches no file)."""
        if self._node is None:
            factory = self._node_or_factory
            assert callable(factory)
            self._node = factory()
            if self._node.chain_id != self.chain_id:
                raise ValueError(f"node is chain {self._node.chain_id!r}, adapter expects {self.chain_id!r}")
        return self._node

    # -- addresses -------------------------------------------------------------------------------------------------

    def deposit_address(self, account: int) -> DepositAddress:
        """Return ``account``'s address: child ``0/<account>`` of the xpub.

        With ``memo_deposits`` (to exercise memo chains) every account shares child ``0/0`` and is told apart by
        its memo, the account number in decimal.
        """
        path = account_path(account)
        if self.memo_deposits:
            return DepositAddress(address_of(derive_public_key(self._xpub, (0, 0))), memo=str(account))
        return DepositAddress(address_of(derive_public_key(self._xpub, path)))

    def validate_address(self, address: str) -> bool:
        """Return whether ``address`` is a devchain address with a valid checksum."""
        return is_address(address)

    # -- watching --------------------------------------------------------------------------------------------------

    def tip_height(self) -> int:
        """Return the best block's height."""
        return self.node.height()

    def block_header(self, height: int) -> BlockHeader | None:
        """Return the best chain's header at ``height``, ``None`` above the tip."""
        block = self.node.block(height)
        return BlockHeader(block.height, block.hash, block.parent_hash) if block is not None else None

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Return best-chain blocks from ``from_height`` with the transfers paying ``addresses``."""
        node = self.node
        watched = addresses if isinstance(addresses, set | frozenset) else set(addresses)
        scanned: list[ScannedBlock] = []
        for block in node.blocks(from_height, max_blocks):
            transfers: list[Transfer] = []
            for txid in block.txids:
                tx = node.transaction(txid)
                if isinstance(tx, Mint):
                    if tx.to in watched and tx.asset in self.assets:
                        transfers.append(Transfer(txid, 0, tx.asset, tx.amount, tx.to))
                elif isinstance(tx, SignedTransfer):
                    body = tx.body
                    if body.to in watched and body.asset in self.assets:
                        transfers.append(
                            Transfer(txid, 0, body.asset, body.amount, body.to, body.memo, (address_of(body.sender),))
                        )
            header = BlockHeader(block.height, block.hash, block.parent_hash)
            scanned.append(ScannedBlock(header, tuple(transfers)))
        return scanned

    # -- withdrawals -----------------------------------------------------------------------------------------------

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
        """Build a transfer from ``public_key``'s address, with the node's minimum fee and the next free nonce.

        Nonces handed out in the last :data:`NONCE_HOLD_SECONDS` stay reserved, so concurrent builds do not collide;
        after that the node's pending nonce wins again (a transaction that was never broadcast leaves no gap).
        """
        if not self.validate_address(destination):
            raise ValueError(f"{destination!r} is not a devchain address")
        if asset not in self.assets:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.assets))}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"amount must be a positive integer of atomic units, got {amount!r}")
        node = self.node
        source = address_of(public_key)
        fee = node.min_fee
        native_needed = fee + (amount if asset == self.native_asset else 0)
        have_native = node.balance(source, self.native_asset)
        if have_native < native_needed:
            raise InsufficientFunds(
                f"{source} holds {have_native} {self.native_asset}, needs {native_needed} (amount and fee)"
            )
        if asset != self.native_asset and (have := node.balance(source, asset)) < amount:
            raise InsufficientFunds(f"{source} holds {have} {asset}, needs {amount}")
        with self._nonce_lock:
            nonce = node.next_nonce(source)
            reserved, when = self._reserved.get(source, (0, 0.0))
            if time.monotonic() - when < NONCE_HOLD_SECONDS:
                nonce = max(nonce, reserved)
            self._reserved[source] = (nonce + 1, time.monotonic())
        body = TransferBody(self.chain_id, nonce, bytes(public_key), destination, asset, amount, fee, memo)
        payload = encode_body(body)
        return UnsignedTransaction(self.name, payload, (digest_of(payload),), key_id)

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """Decode the payload bytes; refuse a payload for another chain or with digests that do not match it."""
        if unsigned.chain != self.name:
            raise ValueError(f"transaction was built for chain {unsigned.chain!r}, not {self.name!r}")
        body = decode_body(unsigned.payload)
        if unsigned.digests != (digest_of(unsigned.payload),):
            raise ValueError("the digests do not match the payload: refusing to describe it")
        return DecodedTransaction(
            chain=self.name,
            chain_id=body.chain_id,
            asset=body.asset,
            source=address_of(body.sender),
            destination=body.to,
            amount=body.amount,
            fee=body.fee,
            fee_asset=self.native_asset,
            memo=body.memo,
        )

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """Attach the one signature (65-byte ``r || s || v`` or 64-byte ``r || s``, low-S) after verifying it."""
        body = decode_body(unsigned.payload)
        if len(signatures) != 1:
            raise ValueError(f"a devchain transfer takes exactly one signature, got {len(signatures)}")
        if not verify(body.sender, digest_of(unsigned.payload), signatures[0]):
            raise ValueError("the signature does not verify against the paying key and the payload's digest")
        return encode_tx(SignedTransfer(body, bytes(signatures[0][:64])))

    def broadcast(self, signed_tx: bytes) -> str:
        """Submit to the node; the same bytes twice give the same txid. ``ValueError`` if the node refuses."""
        try:
            return self.node.submit(signed_tx)
        except TxRejected as exc:
            raise ValueError(f"{self.name} refused the transaction: {exc}") from None

    def transaction_status(self, txid: str) -> TransactionStatus:
        """Return the node's view of ``txid``."""
        return self.node.status(txid)

    # -- custody: balances for reconciliation, deposit keys for sweeping ------------------------------------------

    @property
    def xpub(self) -> str:
        """The extended public key deposit addresses derive from."""
        return self._xpub

    def balance(self, address: str, asset: str) -> int:
        """Return what ``address`` holds of ``asset`` on chain (confirmed), in atomic units."""
        if asset not in self.assets:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.assets))}")
        return self.node.balance(address, asset)

    def address_of_key(self, public_key: bytes) -> str:
        """Return the address that ``public_key`` (a custody key, such as the hot wallet's) pays from."""
        return address_of(public_key)

    def deposit_key_path(self, account: int) -> tuple[int, ...]:
        """Return the path below :attr:`xpub` of the key behind ``account``'s deposit address (what sweeps sign).

        With ``memo_deposits`` every account shares the key at ``0/0``.
        """
        return (0, 0) if self.memo_deposits else account_path(account)

    def transfer_fee(self, asset: str) -> int:
        """Return the fee a transfer of ``asset`` pays now (the node's minimum fee, in the native asset)."""
        if asset not in self.assets:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.assets))}")
        return self.node.min_fee

    def paid_fee(self, txid: str) -> int:
        """Return the network fee ``txid`` paid, in atomic units of the native asset (the transfer's fee field)."""
        tx = self.node.transaction(txid)
        if not isinstance(tx, SignedTransfer):
            raise ValueError(f"{txid} is not a transfer this node knows")
        return tx.body.fee

    # -- development only ------------------------------------------------------------------------------------------

    def dev_faucet(self, public_key: bytes, asset: str, amount: int) -> str:
        """Mint ``amount`` of ``asset`` to the address of ``public_key`` (a demo's hot wallet); return the txid.

        Only a development chain has this: ``exchange demo`` funds its hot wallet with it when the adapter offers it.
        """
        return self.node.faucet(address_of(public_key), amount, asset)

    def dev_mint(self, address: str, asset: str, amount: int) -> str:
        """Mint ``amount`` of ``asset`` to ``address`` (a demo customer's deposit address); return the txid."""
        if not self.validate_address(address):
            raise ValueError(f"{address!r} is not a devchain address")
        return self.node.faucet(address, amount, asset)
