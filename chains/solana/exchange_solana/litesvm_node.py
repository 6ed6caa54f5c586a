"""A Solana "node" on LiteSVM, in process: the tests' chain and a development chain.

LiteSVM executes transactions against real Solana programs (System, SPL Token, Associated Token Account, Memo,
Compute Budget) but has no blocks. This node adds them: transactions sent since the last block are pending, and
``mine(n)`` seals them into the next slot's block and advances the clock. Block hashes here are this node's own
(SHA-256 over the parent hash, slot and signatures); the *recent blockhash* that transactions carry is LiteSVM's,
which stays valid for ``blockhash_valid_blocks`` blocks (LiteSVM accepts only its latest one) and then expires.
``skip(n)`` passes slots without a block, as leaders that miss their slot do. There are no forks or reorgs.
"""

from __future__ import annotations

import hashlib

from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.state import TokenAccount
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from exchange_solana.node import NodeBlock, NodeTransaction, SignatureStatus

__all__ = ["LiteSvmNode"]


def _message_bytes(tx: VersionedTransaction) -> bytes:
    from solders.message import to_bytes_versioned

    return to_bytes_versioned(tx.message)


class LiteSvmNode:
    """LiteSVM with blocks: ``send_transaction`` executes at once (pending); ``mine`` seals a block per slot."""

    def __init__(self, *, blockhash_valid_blocks: int = 150) -> None:
        self.svm = LiteSVM()
        self.blockhash_valid_blocks = blockhash_valid_blocks
        self._slot = 0
        genesis = hashlib.sha256(b"litesvm genesis").digest()
        self._blocks: dict[int, NodeBlock] = {0: NodeBlock(0, str(Hash(genesis)), str(Hash(bytes(32))))}
        self._pending: list[NodeTransaction] = []
        self._status: dict[str, SignatureStatus | None] = {}  # None: executed, not yet in a block
        self._raw: dict[str, bytes] = {}  # signature -> the serialised transaction
        self._blockhash_age = 0
        self._last_block = 0
        self.svm.warp_to_slot(1)

    # -- chain control (tests, demos) ----------------------------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        """Seal the pending transactions into the next block, then add ``blocks - 1`` empty blocks."""
        for _ in range(blocks):
            parent = self._blocks[self._last_block]
            slot = self._slot + 1
            txs = tuple(self._pending)
            digest = hashlib.sha256(Hash.from_string(parent.blockhash).__bytes__() + slot.to_bytes(8, "little"))
            for tx in txs:
                digest.update(bytes(Signature.from_string(tx.signature)))
                self._status[tx.signature] = SignatureStatus(slot, tx.ok)
            self._blocks[slot] = NodeBlock(slot, str(Hash(digest.digest())), parent.blockhash, txs)
            self._pending = []
            self._slot = self._last_block = slot
            self.svm.warp_to_slot(slot + 1)
            self._blockhash_age += 1
            if self._blockhash_age >= self.blockhash_valid_blocks:
                self.expire_blockhash()

    def skip(self, slots: int = 1) -> None:
        """Pass ``slots`` slots without producing a block; pending transactions wait for the next block."""
        self._slot += slots
        self.svm.warp_to_slot(self._slot + 1)

    def expire_blockhash(self) -> None:
        """Make the current recent blockhash invalid (what happens on a real cluster after ~150 blocks)."""
        self.svm.expire_blockhash()
        self._blockhash_age = 0

    def airdrop(self, address: str, lamports: int) -> None:
        """Credit ``lamports`` to ``address`` outside any block (a faucet; not a transaction a scan can see)."""
        result = self.svm.airdrop(Pubkey.from_string(address), lamports)
        if isinstance(result, FailedTransactionMetadata):
            raise RuntimeError(f"airdrop failed: {result.err}")

    def execute(self, tx: VersionedTransaction | Transaction, *, skip_preflight: bool = False) -> str:
        """Run a transaction signed by local keypairs (test deposits, mint setup); it lands in the next block.

        With ``skip_preflight`` a transaction that fails still lands, failed, paying its fee (as on a cluster).
        """
        versioned = tx if isinstance(tx, VersionedTransaction) else VersionedTransaction.from_legacy(tx)
        return self._send(bytes(versioned), preflight=not skip_preflight)

    # -- SolanaNode ----------------------------------------------------------------------------------------------

    def slot(self) -> int:
        """Return the slot of the newest sealed block."""
        return self._slot

    def block(self, slot: int) -> NodeBlock | None:
        """Return the sealed block of ``slot`` (``None`` above the tip)."""
        return self._blocks.get(slot)

    def latest_blockhash(self) -> str:
        """Return LiteSVM's current recent blockhash."""
        return str(self.svm.latest_blockhash())

    def is_blockhash_valid(self, blockhash: str) -> bool:
        """LiteSVM accepts only its latest blockhash."""
        return blockhash == str(self.svm.latest_blockhash())

    def send_transaction(self, raw: bytes) -> str:
        """Simulate (preflight), then execute; ``ValueError`` with LiteSVM's error if the preflight fails."""
        return self._send(raw, preflight=True)

    def _send(self, raw: bytes, *, preflight: bool) -> str:
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except ValueError as exc:
            raise ValueError(f"not a serialised Solana transaction: {exc}") from None
        signature = str(tx.signatures[0])
        if signature in self._status:
            return signature
        simulated = self.svm.simulate_transaction(tx) if preflight else None
        if isinstance(simulated, FailedTransactionMetadata):
            raise ValueError(f"transaction refused in preflight: {simulated.err()}")
        result = self.svm.send_transaction(tx)
        ok = not isinstance(result, FailedTransactionMetadata)
        keys = tuple(str(k) for k in tx.message.account_keys)
        self._pending.append(NodeTransaction(signature, _message_bytes(tx), keys, ok))
        self._status[signature] = None
        self._raw[signature] = raw
        return signature

    def raw_transaction(self, signature: str) -> bytes | None:
        """The serialised transaction of ``signature`` as it was sent (``None`` if never sent here)."""
        return self._raw.get(signature)

    def signature_status(self, signature: str) -> SignatureStatus | None:
        """Return where ``signature`` landed; one executed but not yet sealed in a block has slot ``None``."""
        if signature not in self._status:
            return None
        status = self._status[signature]
        if status is None:
            ok = next(t.ok for t in self._pending if t.signature == signature)
            return SignatureStatus(None, ok)
        return status

    def balance(self, address: str) -> int:
        """Return the lamports of ``address``."""
        return int(self.svm.get_balance(Pubkey.from_string(address)) or 0)

    def token_balance(self, token_account: str) -> int:
        """Return the amount held by an SPL token account."""
        account = self.svm.get_account(Pubkey.from_string(token_account))
        if account is None or not account.data:
            return 0
        return int(TokenAccount.from_bytes(bytes(account.data)).amount)

    def rent_exempt_minimum(self, size: int) -> int:
        """Return LiteSVM's rent-exempt minimum for ``size`` bytes."""
        return int(self.svm.minimum_balance_for_rent_exemption(size))

    # -- helpers for tests and demos -----------------------------------------------------------------------------

    @staticmethod
    def new_keypair() -> Keypair:
        """A fresh random keypair (for test depositors and mint authorities)."""
        return Keypair()
