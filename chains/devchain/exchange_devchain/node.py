"""The development chain itself: blocks, mempool, mining, balances, reorgs, persistence.

An account-model chain with a native coin (fees) and any number of token assets. Blocks link to their parent by
hash; the best chain is simply the list of blocks. Balances and nonces are derived by applying the blocks'
transactions in order (rebuilt after a reorg). Everything is saved to ``<data_dir>/chain.msgpack`` after every
change (written to a temporary file, fsynced, renamed), so a restarted process finds the chain where it was.

Test and demo controls (:meth:`DevChain.mine`, :meth:`DevChain.faucet`, :meth:`DevChain.reorg`,
:meth:`DevChain.set_reachable`) act like the network itself; the query and submit methods are what an adapter
calls, and they raise :class:`NodeUnavailable` while the node is unreachable.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Collection
from pathlib import Path
from typing import ClassVar

import msgspec

from exchange_devchain.tx import (
    AnyTx,
    Mint,
    SignedTransfer,
    address_of,
    decode_tx,
    digest_of,
    encode_body,
    encode_tx,
    is_address,
    txid_of,
    verify,
)
from exchange_framework.interfaces import TransactionStatus, TxState

__all__ = ["STATE_FILE", "Block", "DevChain", "NodeUnavailable", "TxRejected"]

STATE_FILE = "chain.msgpack"
ZERO_HASH = "0" * 64


class NodeUnavailable(ConnectionError):
    """The node cannot be reached (as a real node's RPC would time out); retry later."""


class TxRejected(ValueError):
    """The node refused a transaction; the message says why (signature, chain id, nonce, funds, fee)."""


class Block(msgspec.Struct, frozen=True, array_like=True):
    """A block: its place, its hash, its parent's hash and its transactions in order."""

    height: int
    hash: str
    parent_hash: str
    salt: int
    txids: tuple[str, ...]


class _State(msgspec.Struct):
    chain_id: str
    blocks: list[Block]
    txs: dict[str, bytes]  # every transaction the node has seen, by txid
    mempool: list[str]
    dropped: list[str]
    mint_serial: int = 0
    salt: int = 0


def _block_hash(height: int, parent_hash: str, salt: int, txids: tuple[str, ...]) -> str:
    return hashlib.sha256(msgspec.msgpack.encode([height, parent_hash, salt, list(txids)])).hexdigest()


class DevChain:
    """One development chain, optionally saved under ``data_dir`` (``None``: in memory only)."""

    _open: ClassVar[dict[Path, DevChain]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        data_dir: Path | str | None,
        *,
        chain_id: str = "devchain-1",
        native_asset: str = "DEV",
        min_fee: int = 1_000,
    ) -> None:
        if not chain_id:
            raise ValueError("chain_id must not be empty")
        if not isinstance(min_fee, int) or min_fee < 0:
            raise ValueError(f"min_fee must be a non-negative integer of atomic units, got {min_fee!r}")
        self.native_asset = native_asset
        self.min_fee = min_fee
        self._lock = threading.RLock()
        self._reachable = True
        self._miner: threading.Event | None = None
        self._path = Path(data_dir) / STATE_FILE if data_dir is not None else None
        if self._path is not None and self._path.exists():
            self._state = msgspec.msgpack.decode(self._path.read_bytes(), type=_State)
            if self._state.chain_id != chain_id:
                raise ValueError(
                    f"{self._path} holds chain {self._state.chain_id!r}, not {chain_id!r}: "
                    "use another data_dir or the same chain_id"
                )
        else:
            genesis = Block(0, _block_hash(0, ZERO_HASH, 0, (chain_id,)), ZERO_HASH, 0, ())
            self._state = _State(chain_id, [genesis], {}, [], [])
            self._save()
        self._rebuild()

    @classmethod
    def open(cls, data_dir: Path | str, **kwargs: object) -> DevChain:
        """Return the process's one node for ``data_dir``, creating or loading it on first use."""
        key = Path(data_dir).resolve()
        with cls._open_lock:
            node = cls._open.get(key)
            if node is None:
                node = cls._open[key] = cls(key, **kwargs)  # type: ignore[arg-type]  # keyword settings
            return node

    # -- derived state ---------------------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self._balances: dict[tuple[str, str], int] = {}
        self._nonces: dict[str, int] = {}
        self._where: dict[str, int] = {}
        for block in self._state.blocks:
            for txid in block.txids:
                applied = self._apply(decode_tx(self._state.txs[txid]), self._balances, self._nonces)
                if not applied:  # only a hand-edited state file gets here
                    raise ValueError(f"block {block.height} holds invalid transaction {txid}")
                self._where[txid] = block.height

    def _apply(self, tx: AnyTx, balances: dict[tuple[str, str], int], nonces: dict[str, int]) -> bool:
        if isinstance(tx, Mint):
            if tx.chain_id != self._state.chain_id or tx.amount <= 0 or not is_address(tx.to):
                return False
            balances[(tx.to, tx.asset)] = balances.get((tx.to, tx.asset), 0) + tx.amount
            return True
        body = tx.body
        sender = address_of(body.sender)
        native = self.native_asset
        if body.chain_id != self._state.chain_id or body.nonce != nonces.get(sender, 0) or body.amount <= 0:
            return False
        if body.fee < 0 or not is_address(body.to):
            return False
        need_native = body.fee + (body.amount if body.asset == native else 0)
        if balances.get((sender, native), 0) < need_native:
            return False
        if body.asset != native and balances.get((sender, body.asset), 0) < body.amount:
            return False
        balances[(sender, native)] = balances.get((sender, native), 0) - need_native
        if body.asset != native:
            balances[(sender, body.asset)] -= body.amount
        balances[(body.to, body.asset)] = balances.get((body.to, body.asset), 0) + body.amount
        nonces[sender] = body.nonce + 1
        return True

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.msgpack.encode(self._state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- reachability ----------------------------------------------------------------------------------------------

    def set_reachable(self, reachable: bool) -> None:
        """Make the node (un)reachable for adapters: while unreachable every query and submit raises."""
        self._reachable = reachable

    def _check(self) -> None:
        if not self._reachable:
            raise NodeUnavailable(f"devchain {self._state.chain_id!r} node is not reachable")

    # -- queries (what an adapter calls) ---------------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        """The network id every transaction must carry."""
        return self._state.chain_id

    def height(self) -> int:
        """Return the best block's height."""
        self._check()
        with self._lock:
            return len(self._state.blocks) - 1

    def block(self, height: int) -> Block | None:
        """Return the best chain's block at ``height``, or ``None`` outside it."""
        self._check()
        with self._lock:
            blocks = self._state.blocks
            return blocks[height] if 0 <= height < len(blocks) else None

    def blocks(self, from_height: int, count: int) -> list[Block]:
        """Return up to ``count`` consecutive best-chain blocks from ``from_height``."""
        self._check()
        with self._lock:
            return list(self._state.blocks[max(from_height, 0) : max(from_height, 0) + max(count, 0)])

    def transaction(self, txid: str) -> AnyTx | None:
        """Return a transaction the node has seen (in a block, the mempool or dropped), or ``None``."""
        self._check()
        with self._lock:
            raw = self._state.txs.get(txid)
            return decode_tx(raw) if raw is not None else None

    def balance(self, address: str, asset: str) -> int:
        """Return ``address``'s confirmed balance of ``asset`` in atomic units."""
        self._check()
        with self._lock:
            return self._balances.get((address, asset), 0)

    def next_nonce(self, address: str) -> int:
        """Return the nonce the next transfer from ``address`` must carry (pending transfers counted)."""
        self._check()
        with self._lock:
            nonce = self._nonces.get(address, 0)
            pending = {
                tx.body.nonce
                for tx in map(self._tx, self._state.mempool)
                if isinstance(tx, SignedTransfer) and address_of(tx.body.sender) == address
            }
            while nonce in pending:
                nonce += 1
            return nonce

    def status(self, txid: str) -> TransactionStatus:
        """Return where ``txid`` stands on the best chain."""
        self._check()
        with self._lock:
            height = self._where.get(txid)
            if height is not None:
                tip = len(self._state.blocks) - 1
                return TransactionStatus(
                    txid, TxState.CONFIRMED, tip - height + 1, height, self._state.blocks[height].hash
                )
            if txid in self._state.mempool:
                return TransactionStatus(txid, TxState.PENDING)
            if txid in self._state.dropped:
                return TransactionStatus(txid, TxState.DROPPED)
            return TransactionStatus(txid, TxState.UNKNOWN)

    def _tx(self, txid: str) -> AnyTx:
        return decode_tx(self._state.txs[txid])

    # -- submitting ------------------------------------------------------------------------------------------------

    def submit(self, raw: bytes) -> str:
        """Accept a signed transfer into the mempool and return its txid; the same bytes again change nothing.

        Raise :class:`TxRejected` for garbage, a mint, a wrong chain id, a bad signature, a fee below the
        minimum, a nonce already used or out of order, or a balance that cannot pay.
        """
        self._check()
        try:
            tx = decode_tx(raw)
        except ValueError as exc:
            raise TxRejected(str(exc)) from None
        txid = txid_of(raw)
        with self._lock:
            if txid in self._where or txid in self._state.mempool:
                return txid
            if not isinstance(tx, SignedTransfer):
                raise TxRejected("mints cannot be broadcast: new coins come from the faucet")
            body = tx.body
            if body.chain_id != self.chain_id:
                raise TxRejected(f"transaction is for chain {body.chain_id!r}, this node is {self.chain_id!r}")
            if len(tx.signature) != 64 or not verify(body.sender, digest_of(encode_body(body)), tx.signature):
                raise TxRejected("signature does not verify against the sender's public key")
            if body.fee < self.min_fee:
                raise TxRejected(f"fee {body.fee} is below the minimum {self.min_fee}")
            if body.amount <= 0 or not is_address(body.to):
                raise TxRejected("amount must be positive and the destination a devchain address")
            sender = address_of(body.sender)
            expected = self.next_nonce(sender)
            if body.nonce != expected:
                raise TxRejected(f"nonce {body.nonce} is not the sender's next nonce {expected}")
            trial_balances = dict(self._balances)
            if not self._apply(tx, trial_balances, {sender: body.nonce}):
                raise TxRejected(f"{sender} cannot pay {body.amount} {body.asset} plus fee {body.fee}")
            if txid in self._state.dropped:
                self._state.dropped.remove(txid)
            self._state.txs[txid] = raw
            self._state.mempool.append(txid)
            self._save()
            return txid

    # -- the network's side: faucet, mining, reorgs ----------------------------------------------------------------

    def run_miner(self, stop: threading.Event, interval: float) -> None:
        """Mine a block every ``interval`` seconds until ``stop`` is set (a demo's background block producer)."""
        while not stop.wait(interval):
            self.mine()

    def start_miner(self, interval: float) -> threading.Event:
        """Start :meth:`run_miner` on a daemon thread (once per node); return the event that stops it."""
        with self._lock:
            if self._miner is None:
                if interval <= 0:
                    raise ValueError(f"block time must be positive, got {interval!r}")
                self._miner = threading.Event()
                threading.Thread(
                    target=self.run_miner, args=(self._miner, interval), name="devchain-miner", daemon=True
                ).start()
            return self._miner

    def faucet(self, address: str, amount: int, asset: str | None = None) -> str:
        """Queue a mint of ``amount`` atomic units of ``asset`` (default: the native coin) to ``address``."""
        if not is_address(address):
            raise ValueError(f"{address!r} is not a devchain address")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"faucet amount must be a positive integer of atomic units, got {amount!r}")
        with self._lock:
            self._state.mint_serial += 1
            raw = encode_tx(Mint(self.chain_id, self._state.mint_serial, address, asset or self.native_asset, amount))
            txid = txid_of(raw)
            self._state.txs[txid] = raw
            self._state.mempool.append(txid)
            self._save()
            return txid

    def mine(self, n: int = 1, *, include_mempool: bool = True) -> list[Block]:
        """Mine ``n`` blocks on the tip (taking valid mempool transactions unless told not to)."""
        with self._lock:
            mined = [self._mine_one(include_mempool) for _ in range(n)]
            self._save()
            return mined

    def _mine_one(self, include_mempool: bool) -> Block:
        state = self._state
        included: list[str] = []
        if include_mempool:
            keep: list[str] = []
            for txid in state.mempool:
                tx = self._tx(txid)
                if self._apply(tx, self._balances, self._nonces):
                    included.append(txid)
                elif isinstance(tx, SignedTransfer) and tx.body.nonce > self._nonces.get(address_of(tx.body.sender), 0):
                    keep.append(txid)  # waits for an earlier nonce
                else:
                    state.dropped.append(txid)  # can never be valid again on this chain
            state.mempool = keep
        parent = state.blocks[-1]
        state.salt += 1
        txids = tuple(included)
        block = Block(
            parent.height + 1,
            _block_hash(parent.height + 1, parent.hash, state.salt, txids),
            parent.hash,
            state.salt,
            txids,
        )
        state.blocks.append(block)
        for txid in txids:
            self._where[txid] = block.height
        return block

    def reorg(
        self,
        depth: int,
        *,
        new_blocks: int | None = None,
        drop: Collection[str] = (),
        include_mempool: bool = True,
    ) -> list[Block]:
        """Replace the last ``depth`` blocks with a new branch of ``new_blocks`` blocks (default ``depth + 1``).

        Transactions of the removed blocks go back to the mempool, except those in ``drop``, which are dropped
        (as if double-spent away). The new branch takes mempool transactions unless ``include_mempool`` is false,
        in which case they wait for the next :meth:`mine`. Return the new branch.
        """
        with self._lock:
            state = self._state
            if not 1 <= depth < len(state.blocks):
                raise ValueError(f"reorg depth must be 1 to {len(state.blocks) - 1} (the genesis block stays)")
            count = depth + 1 if new_blocks is None else new_blocks
            if count < 0:
                raise ValueError("new_blocks must not be negative")
            removed = state.blocks[-depth:]
            del state.blocks[-depth:]
            returning: list[str] = []
            for block in removed:
                for txid in block.txids:
                    (state.dropped if txid in drop else returning).append(txid)
            state.mempool = returning + state.mempool
            self._rebuild()
            branch = [self._mine_one(include_mempool) for _ in range(count)]
            self._save()
            return branch
