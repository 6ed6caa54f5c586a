"""The small "node" interface the Solana adapter talks to, and the block and transaction records it returns.

Two implementations: :class:`~exchange_solana.rpc.JsonRpcNode` (a real node over Solana's documented JSON-RPC) and
:class:`~exchange_solana.litesvm_node.LiteSvmNode` (LiteSVM in process: the tests' chain and a dev chain).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["NodeBlock", "NodeFault", "NodeTransaction", "SignatureStatus", "SolanaNode"]


class NodeFault(RuntimeError):
    """The node is down, timed out or answered something that does not parse; the caller retries."""


class NodeTransaction(msgspec.Struct, frozen=True):
    """A transaction in a block: its first signature (the txid), its serialised message, resolved account keys."""

    signature: str
    message: bytes  # the versioned message bytes (what the fee payer signed)
    account_keys: tuple[str, ...]  # static keys, then address-table loaded writable, then readonly keys
    ok: bool  # executed without error (a failed transaction moves no funds but its fee)


class NodeBlock(msgspec.Struct, frozen=True):
    """A produced slot: its blockhash, the previous block's blockhash, and its transactions in order."""

    slot: int
    blockhash: str
    previous_blockhash: str
    transactions: tuple[NodeTransaction, ...] = ()


class SignatureStatus(msgspec.Struct, frozen=True):
    """Where a signature landed: its slot (``None`` while processed but not yet in a confirmed block) and outcome."""

    slot: int | None
    ok: bool


@runtime_checkable
class SolanaNode(Protocol):
    """What the adapter needs from a Solana node; every method raises :class:`NodeFault` on node failure."""

    def slot(self) -> int:
        """Return the current slot at the node's commitment."""
        ...

    def block(self, slot: int) -> NodeBlock | None:
        """Return the block produced in ``slot``, or ``None`` for a skipped slot or one not yet produced."""
        ...

    def latest_blockhash(self) -> str:
        """Return a recent blockhash for new transactions."""
        ...

    def is_blockhash_valid(self, blockhash: str) -> bool:
        """Return whether a transaction with ``blockhash`` can still land (unknown or expired: ``False``)."""
        ...

    def send_transaction(self, raw: bytes) -> str:
        """Submit a signed transaction (after a preflight check) and return its signature.

        ``ValueError`` if the node refuses it; a transaction already processed returns its signature again.
        """
        ...

    def signature_status(self, signature: str) -> SignatureStatus | None:
        """Return the slot and outcome of ``signature``, or ``None`` if the node has not seen it."""
        ...

    def balance(self, address: str) -> int:
        """Return the lamports held by ``address`` (0 for an account that does not exist)."""
        ...

    def token_balance(self, token_account: str) -> int:
        """Return the atomic amount held by an SPL token account (0 if it does not exist)."""
        ...

    def rent_exempt_minimum(self, size: int) -> int:
        """Return the lamports an account of ``size`` bytes needs to be rent exempt."""
        ...
