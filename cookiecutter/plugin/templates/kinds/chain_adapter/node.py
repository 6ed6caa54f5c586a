"""MemoryNode: a small in-process account-model chain to develop the adapter against, and its transaction format.

It does what a node does for the adapter: blocks linked by parent hashes, a mempool, signature, nonce and balance
checks on submission, and transaction status. Blocks are made on demand with :meth:`MemoryNode.mine`, and
:meth:`MemoryNode.faucet` creates coins, as on any development chain. To support a real network, replace it with a
client for the network's node RPC offering the same methods; the adapter calls nothing else.

A transaction is a :class:`TransferBody` serialised as canonical JSON (the unsigned payload); its one digest is
``sha256(DOMAIN || payload)``, signed with secp256k1 in the kernel's ``r || s || v`` format. An address is the
prefix and the hex of the first 20 bytes of ``sha256(public key)`` followed by a 4-byte checksum.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec
from exchange_framework.custody.signing import verify_signature
from exchange_framework.interfaces import BlockHeader, KeyScheme, TransactionStatus, Transfer, TxState

ADDRESS_PREFIX = "{{ (cookiecutter.__slug | replace('-', ''))[:8] }}1"
DOMAIN = b"{{ cookiecutter.__slug }}/transfer/v1:"
GENESIS_PARENT = "00" * 32


class TxRejected(ValueError):
    """The node refused a transaction; the message says why."""


class TransferBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An unsigned native-coin transfer: what the payload encodes, and all the node needs to check it."""

    chain_id: str
    public_key: str  # hex of the paying key's 33-byte compressed secp256k1 public key
    source: str
    destination: str
    amount: int
    fee: int
    nonce: int
    memo: str = ""


class SignedTransfer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A payload and its signature: what is broadcast."""

    payload: bytes
    signature: bytes


def address_of(public_key: bytes) -> str:
    """Return the address paid to and from by ``public_key``."""
    body = hashlib.sha256(public_key).digest()[:20]
    return ADDRESS_PREFIX + (body + _checksum(body)).hex()


def is_address(address: str) -> bool:
    """Return whether ``address`` has the prefix, 24 lower-case hex bytes and a matching checksum."""
    if not address.startswith(ADDRESS_PREFIX):
        return False
    data = address[len(ADDRESS_PREFIX) :]
    if len(data) != 48 or data != data.lower():
        return False
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        return False
    return raw[20:] == _checksum(raw[:20])


def encode_body(body: TransferBody) -> bytes:
    """Return the canonical payload of ``body``."""
    return msgspec.json.encode(body, order="sorted")


def decode_body(payload: bytes) -> TransferBody:
    """Parse a payload; raise ``ValueError`` if it is not a canonical transfer body."""
    try:
        body = msgspec.json.decode(payload, type=TransferBody)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a transfer payload: {exc}") from None
    if encode_body(body) != payload:
        raise ValueError("transfer payload is not in canonical form")
    return body


def digest_of(payload: bytes) -> bytes:
    """Return the 32-byte digest the custody key signs for ``payload``."""
    return hashlib.sha256(DOMAIN + payload).digest()


def txid_of(signed_tx: bytes) -> str:
    """Return the id of a signed transaction."""
    return hashlib.sha256(signed_tx).hexdigest()


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4]


@dataclass
class _Block:
    header: BlockHeader
    transfers: list[Transfer] = field(default_factory=list)


@dataclass
class _Pending:
    txid: str
    body: TransferBody | None  # None for a faucet payment
    transfer: Transfer


class MemoryNode:
    """An in-process chain: blocks, a mempool, balances and nonces, all in memory."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        genesis = BlockHeader(height=0, hash=_block_hash(0, GENESIS_PARENT, []), parent_hash=GENESIS_PARENT)
        self._blocks = [_Block(genesis)]
        self._mempool: list[_Pending] = []
        self._balances: dict[str, int] = {}
        self._nonces: dict[str, int] = {}  # confirmed transactions sent per address
        self._heights: dict[str, int] = {}  # txid -> height of its block

    def tip_height(self) -> int:
        """Return the height of the newest block."""
        return len(self._blocks) - 1

    def header(self, height: int) -> BlockHeader | None:
        """Return the header of the block at ``height``, or ``None`` above the tip."""
        return self._blocks[height].header if 0 <= height < len(self._blocks) else None

    def transfers(self, height: int) -> list[Transfer]:
        """Return every transfer in the block at ``height``, in block order."""
        return list(self._blocks[height].transfers)

    def balance(self, address: str) -> int:
        """Return the confirmed balance of ``address`` less what its pending transactions spend."""
        return self._balances.get(address, 0) - sum(
            p.body.amount + p.body.fee for p in self._mempool if p.body is not None and p.body.source == address
        )

    def next_nonce(self, address: str) -> int:
        """Return the nonce the next transaction from ``address`` must carry (pending ones counted)."""
        pending = sum(1 for p in self._mempool if p.body is not None and p.body.source == address)
        return self._nonces.get(address, 0) + pending

    def faucet(self, address: str, amount: int) -> str:
        """Create ``amount`` new coins for ``address`` in the next block and return the payment's txid."""
        if not is_address(address) or amount <= 0:
            raise ValueError(f"faucet needs a valid address and a positive amount, not {address!r}, {amount!r}")
        txid = hashlib.sha256(b"faucet:%d:%s:%d" % (len(self._heights) + len(self._mempool), address.encode(), amount))
        transfer = Transfer(txid=txid.hexdigest(), index=0, asset="", amount=amount, address=address)
        self._mempool.append(_Pending(transfer.txid, None, transfer))
        return transfer.txid

    def submit(self, signed_tx: bytes) -> str:
        """Check a signed transaction and add it to the mempool; return its txid (again, if already known)."""
        txid = txid_of(signed_tx)
        if txid in self._heights or any(p.txid == txid for p in self._mempool):
            return txid
        try:
            signed = msgspec.json.decode(signed_tx, type=SignedTransfer)
            body = decode_body(signed.payload)
            public_key = bytes.fromhex(body.public_key)
        except (msgspec.DecodeError, ValueError) as exc:
            raise TxRejected(f"malformed transaction: {exc}") from None
        if body.chain_id != self.chain_id:
            raise TxRejected(f"transaction is for chain {body.chain_id!r}, this node is {self.chain_id!r}")
        if address_of(public_key) != body.source:
            raise TxRejected("the public key does not belong to the paying address")
        if not verify_signature(KeyScheme.SECP256K1, public_key, digest_of(signed.payload), signed.signature):
            raise TxRejected("bad signature")
        if not is_address(body.destination) or body.amount <= 0 or body.fee < 0:
            raise TxRejected("bad destination, amount or fee")
        if body.nonce != self.next_nonce(body.source):
            raise TxRejected(f"nonce {body.nonce} is not the next one ({self.next_nonce(body.source)})")
        if body.amount + body.fee > self.balance(body.source):
            raise TxRejected(f"{body.source} cannot pay {body.amount + body.fee}")
        transfer = Transfer(
            txid=txid, index=0, asset="", amount=body.amount, address=body.destination, source_addresses=(body.source,)
        )
        self._mempool.append(_Pending(txid, body, transfer))
        return txid

    def mine(self, blocks: int = 1) -> int:
        """Make ``blocks`` new blocks, the first holding the whole mempool; return the new tip height."""
        for _ in range(blocks):
            pending, self._mempool = self._mempool, []
            for p in pending:
                if p.body is not None:
                    self._balances[p.body.source] -= p.body.amount + p.body.fee
                    self._nonces[p.body.source] = self._nonces.get(p.body.source, 0) + 1
                self._balances[p.transfer.address] = self._balances.get(p.transfer.address, 0) + p.transfer.amount
            parent = self._blocks[-1].header
            height = parent.height + 1
            txids = [p.txid for p in pending]
            header = BlockHeader(height=height, hash=_block_hash(height, parent.hash, txids), parent_hash=parent.hash)
            self._blocks.append(_Block(header, [p.transfer for p in pending]))
            self._heights.update(dict.fromkeys(txids, height))
        return self.tip_height()

    def status(self, txid: str) -> TransactionStatus:
        """Return where ``txid`` stands: unknown, pending, or confirmed with its depth (this chain never drops)."""
        height = self._heights.get(txid)
        if height is not None:
            block = self._blocks[height].header
            return TransactionStatus(
                txid=txid,
                state=TxState.CONFIRMED,
                confirmations=self.tip_height() - height + 1,
                block_height=height,
                block_hash=block.hash,
            )
        if any(p.txid == txid for p in self._mempool):
            return TransactionStatus(txid=txid, state=TxState.PENDING)
        return TransactionStatus(txid=txid, state=TxState.UNKNOWN)


def _block_hash(height: int, parent: str, txids: list[str]) -> str:
    return hashlib.sha256(f"{height}:{parent}:{','.join(txids)}".encode()).hexdigest()
