"""The Cosmos SDK chain adapter: bank ``MsgSend`` withdrawals built, decoded and assembled offline.

A withdrawal's payload is the SIGN_MODE_DIRECT ``SignDoc`` bytes (body, auth info, chain id, account number); its
one digest is their SHA-256, which the custody signer signs as ``KeyScheme.SECP256K1`` (65 bytes ``r || s || v``,
low-S). ``assemble`` checks the signature recovers the signer's key and writes a ``TxRaw`` with the 64-byte
``r || s`` Cosmos expects. Everything that needs a node (the tip, blocks, deposits, broadcasting, status, account
numbers and sequences) is not implemented here: those methods raise :class:`NodeRequired` (see
``docs/chains-cosmos.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence

import coincurve
import msgspec

from exchange_cosmos.address import address_of_public_key, is_address
from exchange_cosmos.proto import SIGN_MODE_DIRECT, AuthInfo, Coin, MsgSend, SignDoc, TxBody, TxRaw
from exchange_framework.chains.hd import account_path, derive_public_key
from exchange_framework.interfaces import (
    BlockHeader,
    DecodedTransaction,
    DepositAddress,
    ScannedBlock,
    TransactionStatus,
    UnsignedTransaction,
)
from exchange_framework.types import AccountId

__all__ = ["AccountState", "CosmosAdapter", "NodeRequired", "tx_hash"]

_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_MEMO = 256  # the SDK's default MaxMemoCharacters


class NodeRequired(RuntimeError):
    """The operation needs a Cosmos node (CometBFT RPC / REST), which this adapter does not talk to yet."""


class AccountState(msgspec.Struct, frozen=True):
    """An account's number and next sequence, as the chain's ``x/auth`` module reports them."""

    account_number: int
    sequence: int


def tx_hash(signed_tx: bytes) -> str:
    """The transaction hash Cosmos nodes report: upper-case hex SHA-256 of the ``TxRaw`` bytes."""
    return hashlib.sha256(signed_tx).hexdigest().upper()


class CosmosAdapter:
    """A ``ChainAdapter`` for one Cosmos SDK chain: offline withdrawals; node methods raise :class:`NodeRequired`."""

    def __init__(
        self,
        *,
        chain_id: str,
        xpub: str,
        name: str = "cosmoshub",
        hrp: str = "cosmos",
        native_asset: str = "ATOM",
        native_denom: str = "uatom",
        assets: Mapping[str, str] | None = None,
        gas_limit: int = 200_000,
        fee_amount: int = 5_000,
        confirmations: int = 1,
        accounts: Callable[[str], AccountState] | None = None,
    ) -> None:
        self.name = name
        self.chain_id = chain_id
        self.hrp = hrp
        self.xpub = xpub
        self.native_asset = native_asset
        self.required_confirmations = confirmations
        self.denoms = {native_asset: native_denom, **(assets or {})}
        self._assets = {denom: symbol for symbol, denom in self.denoms.items()}
        self.native_denom = native_denom
        self.gas_limit = gas_limit
        self.fee_amount = fee_amount
        self._accounts = accounts
        self._issued: dict[str, int] = {}  # address -> last sequence handed out (this process)

    # -- addresses -----------------------------------------------------------------------------------------------

    def deposit_address(self, account: AccountId) -> DepositAddress:
        """The bech32 address of the xpub's non-hardened child ``0/<account>``."""
        return DepositAddress(address_of_public_key(derive_public_key(self.xpub, account_path(account)), self.hrp))

    def validate_address(self, address: str) -> bool:
        """Whether ``address`` is a bech32 account address with this chain's prefix (checksum included)."""
        return is_address(address, self.hrp)

    # -- withdrawals ---------------------------------------------------------------------------------------------

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
        """A SignDoc for one ``MsgSend`` from ``public_key``'s address, with the next unused sequence."""
        if not self.validate_address(destination):
            raise ValueError(f"{destination!r} is not a {self.hrp}1... address")
        if asset not in self.denoms:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: known are {sorted(self.denoms)}")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 2**256:
            raise ValueError(f"amount must be a positive integer of atomic units, got {amount!r}")
        if len(memo) > MAX_MEMO:
            raise ValueError(f"memo longer than {MAX_MEMO} characters")
        source = address_of_public_key(public_key, self.hrp)
        if source == destination:
            raise ValueError("the destination is the hot wallet itself")
        state = self.account_state(source)
        sequence = max(state.sequence, self._issued.get(source, -1) + 1)
        self._issued[source] = sequence
        return self.build_sign_doc(
            key_id=key_id,
            public_key=public_key,
            destination=destination,
            coin=Coin(self.denoms[asset], amount),
            memo=memo,
            account_number=state.account_number,
            sequence=sequence,
        )

    def account_state(self, address: str) -> AccountState:
        """The account number and sequence of ``address`` from the configured source (a node, normally)."""
        if self._accounts is None:
            raise NodeRequired(f"the account number and sequence of {address} need a node (x/auth account query)")
        return self._accounts(address)

    def build_sign_doc(
        self,
        *,
        key_id: str,
        public_key: bytes,
        destination: str,
        coin: Coin,
        memo: str,
        account_number: int,
        sequence: int,
    ) -> UnsignedTransaction:
        """The unsigned transaction for explicit account number and sequence (offline building)."""
        source = address_of_public_key(public_key, self.hrp)
        body = TxBody((MsgSend(source, destination, (coin,)),), memo)
        fee = (Coin(self.native_denom, self.fee_amount),) if self.fee_amount else ()
        auth = AuthInfo(public_key, sequence, fee, self.gas_limit)
        payload = SignDoc(body.encode(), auth.encode(), self.chain_id, account_number).encode()
        return UnsignedTransaction(self.name, payload, (hashlib.sha256(payload).digest(),), key_id)

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """What the SignDoc does, from its bytes; ``chain_id`` is the one signed into it."""
        if unsigned.chain != self.name:
            raise ValueError(f"transaction is for chain {unsigned.chain!r}, not {self.name!r}")
        if tuple(unsigned.digests) != (hashlib.sha256(unsigned.payload).digest(),):
            raise ValueError("the digest must be the SHA-256 of the SignDoc bytes")
        return self._decode_doc(SignDoc.decode(unsigned.payload))[0]

    def _decode_doc(self, doc: SignDoc) -> tuple[DecodedTransaction, AuthInfo]:
        body = TxBody.decode(doc.body_bytes)
        auth = AuthInfo.decode(doc.auth_info_bytes)
        if len(body.messages) != 1 or len(body.messages[0].amount) != 1:
            raise ValueError("a withdrawal is one MsgSend of one coin")
        if body.timeout_height:
            raise ValueError("timeout_height is not used in withdrawals")
        if auth.sign_mode != SIGN_MODE_DIRECT or auth.payer or auth.granter:
            raise ValueError("the signer must sign in SIGN_MODE_DIRECT and pay its own fee")
        if any(c.denom != self.native_denom for c in auth.fee) or len(auth.fee) > 1:
            raise ValueError(f"the fee must be paid in {self.native_denom}")
        message = body.messages[0]
        if message.from_address != address_of_public_key(auth.public_key, self.hrp):
            raise ValueError("the MsgSend is not from the signer's address")
        if not self.validate_address(message.to_address):
            raise ValueError(f"{message.to_address!r} is not a {self.hrp}1... address")
        coin = message.amount[0]
        if coin.denom not in self._assets or coin.amount <= 0:
            raise ValueError(f"denom {coin.denom!r} is not a known asset (or the amount is zero)")
        decoded = DecodedTransaction(
            chain=self.name,
            chain_id=doc.chain_id,
            asset=self._assets[coin.denom],
            source=message.from_address,
            destination=message.to_address,
            amount=coin.amount,
            fee=sum(c.amount for c in auth.fee),
            fee_asset=self.native_asset,
            memo=body.memo,
        )
        return decoded, auth

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """A ``TxRaw`` carrying the 64-byte ``r || s`` of the custody signer's 65-byte low-S signature."""
        self.decode(unsigned)
        doc = SignDoc.decode(unsigned.payload)
        auth = AuthInfo.decode(doc.auth_info_bytes)
        if len(signatures) != 1 or len(signatures[0]) != 65:
            raise ValueError("a Cosmos withdrawal takes one 65-byte r || s || v secp256k1 signature")
        signature = bytes(signatures[0])
        if signature[64] not in (0, 1) or int.from_bytes(signature[32:64], "big") > _ORDER // 2:
            raise ValueError("the signature must be low-S with a recovery id of 0 or 1")
        try:
            recovered = coincurve.PublicKey.from_signature_and_message(signature, unsigned.digests[0], hasher=None)
        except Exception:  # coincurve raises ValueError or its own errors for an unusable signature
            raise ValueError("the signature does not recover a public key") from None
        if recovered.format() != auth.public_key:
            raise ValueError("the signature is not the signer's over this SignDoc")
        return TxRaw(doc.body_bytes, doc.auth_info_bytes, (signature[:64],)).encode()

    def decode_tx_raw(self, signed_tx: bytes, *, account_number: int) -> DecodedTransaction:
        """Decode a signed ``TxRaw`` and check its 64-byte signature against this chain id and ``account_number``."""
        raw = TxRaw.decode(signed_tx)
        if len(raw.signatures) != 1 or len(raw.signatures[0]) != 64:
            raise ValueError("expected one 64-byte signature")
        doc = SignDoc(raw.body_bytes, raw.auth_info_bytes, self.chain_id, account_number)
        decoded, auth = self._decode_doc(doc)
        r, s = int.from_bytes(raw.signatures[0][:32], "big"), int.from_bytes(raw.signatures[0][32:], "big")
        if not (0 < r < _ORDER and 0 < s <= _ORDER // 2):
            raise ValueError("the signature is not a low-S secp256k1 signature")
        digest = hashlib.sha256(doc.encode()).digest()
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(raw.signatures[0]))
        if not coincurve.PublicKey(auth.public_key).verify(der, digest, hasher=None):
            raise ValueError("the signature does not verify for this chain id and account number")
        return decoded

    # -- what needs a node ---------------------------------------------------------------------------------------

    def _node(self, what: str) -> NodeRequired:
        return NodeRequired(f"{what} on {self.name} needs a Cosmos node (CometBFT RPC): not implemented yet")

    def tip_height(self) -> int:
        """Not implemented: needs a node."""
        raise self._node("the tip height")

    def block_header(self, height: int) -> BlockHeader | None:
        """Not implemented: needs a node."""
        raise self._node("block headers")

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Not implemented: needs a node."""
        raise self._node("scanning for deposits")

    def broadcast(self, signed_tx: bytes) -> str:
        """Not implemented: needs a node (the txid would be :func:`tx_hash` of ``signed_tx``)."""
        raise self._node("broadcasting")

    def transaction_status(self, txid: str) -> TransactionStatus:
        """Not implemented: needs a node."""
        raise self._node("transaction status")
