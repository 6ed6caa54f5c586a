"""The EVM :class:`~exchange_framework.interfaces.ChainAdapter`: one instance per configured network.

- Deposit addresses are BIP44 ``m/44'/60'/0'/0/<account>`` keys derived from the configured xpub (the account key
  ``m/44'/60'/0'`` or its external chain ``m/44'/60'/0'/0``), EIP-55 checksummed.
- ``scan`` (:class:`~exchange_evm.watch.BlockScanner`) reads blocks with parent hashes, native payments whose
  receipt says they succeeded and the configured tokens' ERC-20 ``Transfer`` logs, in at most three requests.
- Withdrawals are EIP-1559 transactions (legacy EIP-155 on networks configured ``legacy = true``) paying the
  native coin or calling ERC-20 ``transfer``. ``decode`` refuses any payload whose chain id is not this network's,
  before a signer sees it. Nonces come from the node's pending count and a :class:`NonceBook` on disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import coincurve
from bip_utils import Base58Decoder

from exchange_evm.address import (
    address_bytes,
    address_of_public_key,
    is_checksum_address,
    keccak256,
    to_checksum_address,
)
from exchange_evm.codec import (
    SECP256K1_N,
    TYPE_EIP1559,
    TYPE_LEGACY,
    EvmTx,
    decode_erc20_transfer,
    encode_erc20_transfer,
    encode_signed,
    encode_unsigned,
    pack_payload,
    parse_signed,
    unpack_payload,
)
from exchange_evm.nonces import NonceBook
from exchange_evm.rpc import JsonRpcClient, NodeFault, RpcError, hex_data, quantity
from exchange_evm.settings import NetworkSettings, TokenSettings
from exchange_evm.watch import BlockScanner
from exchange_framework.chains.hd import account_path, derive_public_key, validate_xpub
from exchange_framework.interfaces import (
    BlockHeader,
    DecodedTransaction,
    DepositAddress,
    ScannedBlock,
    TransactionStatus,
    TxState,
    UnsignedTransaction,
)

__all__ = ["EvmAdapter", "InsufficientFunds"]

_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "alreadyknown")
_NONCE_USED = ("nonce too low", "oldnonce")
_HALF_N = SECP256K1_N // 2


class InsufficientFunds(ValueError):
    """The hot wallet cannot pay a withdrawal and its fee; the message names the shortfall."""


def _deposit_prefix(xpub: str) -> tuple[int, ...]:
    depth = Base58Decoder.CheckDecode(xpub)[4]
    if depth == 3:  # m/44'/60'/0': the account key, deposit keys are its external chain's children 0/<account>
        return (0,)
    if depth == 4:  # m/44'/60'/0'/0: the external chain itself
        return ()
    raise ValueError(
        f"the xpub is at depth {depth}: configure the BIP44 account key m/44'/60'/0' (depth 3) or its external "
        "chain m/44'/60'/0'/0 (depth 4)"
    )


class EvmAdapter:
    """A chain adapter for one EVM network, talking to its node over JSON-RPC (see the module docstring)."""

    def __init__(
        self,
        network: NetworkSettings,
        *,
        nonce_book: NonceBook | Callable[[], NonceBook],
        rpc: JsonRpcClient | None = None,
    ) -> None:
        validate_xpub(network.xpub)
        self._prefix = _deposit_prefix(network.xpub)
        self.network = network
        self.name = network.name
        self.chain_id = str(network.chain_id)
        self.native_asset = network.native_symbol
        self.required_confirmations = network.confirmations
        self.tokens: dict[str, TokenSettings] = {t.symbol: t for t in network.tokens}
        self._by_contract = {t.contract.lower(): t for t in network.tokens}
        self.decimals: dict[str, int] = {network.native_symbol: network.native_decimals} | {
            t.symbol: t.decimals for t in self.tokens.values()
        }
        self.rpc = rpc if rpc is not None else JsonRpcClient(network.rpc_url, timeout=network.rpc_timeout)
        self.scanner = BlockScanner(
            self.rpc, network.native_symbol, network.tokens, trace_internal=network.trace_internal_transfers
        )
        self._book_or_factory = nonce_book
        self._book: NonceBook | None = nonce_book if isinstance(nonce_book, NonceBook) else None
        self._book_lock = threading.Lock()
        self._addresses: dict[int, str] = {}

    @classmethod
    def from_settings(cls, network: NetworkSettings, data_dir: Path) -> EvmAdapter:
        """Build an adapter whose nonce book lives at ``<data_dir>/<name>-nonces.sqlite`` (opened on first use)."""
        path = Path(data_dir) / f"{network.name}-nonces.sqlite"
        return cls(network, nonce_book=lambda: NonceBook(path, hold_seconds=network.nonce_hold_seconds))

    @property
    def nonce_book(self) -> NonceBook:
        """The hot wallet's nonce book (opened on first use, so registering the plugin touches no file)."""
        with self._book_lock:
            if self._book is None:
                factory = self._book_or_factory
                assert callable(factory)
                self._book = factory()
            return self._book

    def close(self) -> None:
        """Close the node connection and the nonce book (the adapter reopens them if used again)."""
        self.rpc.close()
        with self._book_lock:
            if self._book is not None and callable(self._book_or_factory):
                self._book.close()
                self._book = None

    # -- addresses -------------------------------------------------------------------------------------------------

    def address_at(self, index: int) -> str:
        """Return the EIP-55 address of child ``index`` of the external chain (``m/44'/60'/0'/0/<index>``)."""
        known = self._addresses.get(index)
        if known is None:
            public = derive_public_key(self.network.xpub, (*self._prefix, index))
            known = self._addresses[index] = address_of_public_key(public)
        return known

    def deposit_address(self, account: int) -> DepositAddress:
        """Return ``account``'s deposit address, ``m/44'/60'/0'/0/<account>`` (no memo on EVM chains)."""
        _, index = account_path(account)
        return DepositAddress(self.address_at(index))

    def validate_address(self, address: str) -> bool:
        """Return whether ``address`` is a 20-byte address in its exact EIP-55 checksummed form."""
        return is_checksum_address(address)

    # -- custody: balances for reconciliation ----------------------------------------------------------------------

    def address_of_key(self, public_key: bytes) -> str:
        """Return the EIP-55 address a custody key (the hot wallet's) pays from."""
        return address_of_public_key(public_key)

    def balance(self, address: str, asset: str) -> int:
        """Return what ``address`` holds of ``asset`` in the latest block: wei of the native coin, or the token's
        ``balanceOf`` in its atomic units. Raise ``ValueError`` for an unknown asset or a malformed address."""
        if not self.validate_address(address):
            raise ValueError(f"{address!r} is not an EIP-55 checksummed address on {self.name}")
        token = self.tokens.get(asset)
        if token is None:
            if asset != self.native_asset:
                raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.decimals))}")
            return quantity(self.rpc.call("eth_getBalance", address, "latest"), "eth_getBalance")
        balance_of = "0x70a08231" + bytes(12).hex() + address[2:].lower()
        answer = self.rpc.call("eth_call", {"to": token.contract, "data": balance_of}, "latest")
        return int.from_bytes(hex_data(answer, "balanceOf"), "big")

    # -- custody: sweeping deposit addresses -----------------------------------------------------------------------

    @property
    def xpub(self) -> str:
        """The extended public key deposit addresses derive from."""
        return self.network.xpub

    def deposit_key_path(self, account: int) -> tuple[int, ...]:
        """Return the path below :attr:`xpub` of the key behind ``account``'s deposit address (what sweeps sign)."""
        _, index = account_path(account)
        return (*self._prefix, index)

    def transfer_fee(self, asset: str) -> int:
        """Return the most a transfer of ``asset`` would pay now, in wei: 21,000 gas for the native coin, 100,000 for
        a token transfer, at today's fee cap (:meth:`estimate_fees`)."""
        if asset != self.native_asset and asset not in self.tokens:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.decimals))}")
        max_fee, _tip = self.estimate_fees()
        return (21_000 if asset == self.native_asset else 100_000) * max_fee

    def balances(self, addresses: Sequence[str], asset: str) -> list[int]:
        """Return :meth:`balance` of each of ``addresses``, read in JSON-RPC batches of 500 (one request each)."""
        token = self.tokens.get(asset)
        if token is None and asset != self.native_asset:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.decimals))}")
        for address in addresses:
            if not self.validate_address(address):
                raise ValueError(f"{address!r} is not an EIP-55 checksummed address on {self.name}")
        out: list[int] = []
        for begin in range(0, len(addresses), 500):
            chunk = addresses[begin : begin + 500]
            if token is None:
                calls: list[tuple[str, list[object]]] = [("eth_getBalance", [a, "latest"]) for a in chunk]
                out += [quantity(answer, "eth_getBalance") for answer in self.rpc.batch(calls)]
            else:
                calls = [
                    (
                        "eth_call",
                        [{"to": token.contract, "data": "0x70a08231" + bytes(12).hex() + a[2:].lower()}, "latest"],
                    )
                    for a in chunk
                ]
                out += [int.from_bytes(hex_data(answer, "balanceOf"), "big") for answer in self.rpc.batch(calls)]
        return out

    def paid_fee(self, txid: str) -> int:
        """Return the fee a mined transaction paid, in wei: its receipt's ``gasUsed`` times ``effectiveGasPrice``
        (an L2's separate L1 data fee is not included). Raise ``ValueError`` if it is not mined."""
        receipt = self.rpc.call("eth_getTransactionReceipt", txid)
        if not isinstance(receipt, dict):
            raise ValueError(f"{txid} has no receipt on {self.name}: it is not mined")
        return quantity(receipt.get("gasUsed"), "gasUsed") * quantity(
            receipt.get("effectiveGasPrice"), "effectiveGasPrice"
        )

    # -- watching --------------------------------------------------------------------------------------------------

    def tip_height(self) -> int:
        """Return the node's best block number."""
        return quantity(self.rpc.call("eth_blockNumber"), "eth_blockNumber")

    def block_header(self, height: int) -> BlockHeader | None:
        """Return the best chain's header at ``height``, ``None`` above the tip."""
        return self.scanner.header(height)

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Return best-chain blocks from ``from_height`` with the native and token transfers paying ``addresses``.

        See :meth:`exchange_evm.watch.BlockScanner.scan`: transfers in chain order, a native payment's index 0 and a
        token transfer's its log index; :class:`NodeFault` if the chain moves during the scan (call again).
        """
        return self.scanner.scan(from_height, addresses, max_blocks=max_blocks)

    # -- withdrawals: build ----------------------------------------------------------------------------------------

    def estimate_fees(self) -> tuple[int, int]:
        """Return ``(max_fee, max_priority_fee)`` per gas in wei (both the gas price on legacy networks).

        EIP-1559: the tip is the larger of ``eth_maxPriorityFeePerGas`` and the median tip of the last 10 blocks;
        the cap is twice the next block's base fee plus the tip, so the transaction stays valid through six full
        blocks of base-fee rises.
        """
        return self._fees(self.rpc.batch(self._fee_calls()))

    def _fee_calls(self) -> list[tuple[str, list[object]]]:
        if self.network.legacy:
            return [("eth_gasPrice", [])]
        return [("eth_maxPriorityFeePerGas", []), ("eth_feeHistory", [hex(10), "latest", [50]])]

    def _fees(self, answers: Sequence[Any]) -> tuple[int, int]:
        if self.network.legacy:
            price = quantity(answers[0], "eth_gasPrice")
            return price, price
        tip_answer, history = answers
        tip = quantity(tip_answer, "eth_maxPriorityFeePerGas")
        if not isinstance(history, dict) or not history.get("baseFeePerGas"):
            raise NodeFault(f"eth_feeHistory answered {str(history)[:120]!r}")
        next_base = quantity(history["baseFeePerGas"][-1], "baseFeePerGas")
        rewards = sorted(quantity(r[0], "reward") for r in history.get("reward") or [] if r)
        if rewards:
            tip = max(tip, rewards[len(rewards) // 2])
        return 2 * next_base + tip, tip

    def _check_request(self, key_id: str, destination: str, asset: str, amount: int, source: str) -> None:
        if not self.validate_address(destination):
            raise ValueError(f"{destination!r} is not an EIP-55 checksummed address on {self.name}")
        if asset != self.native_asset and asset not in self.tokens:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: one of {', '.join(sorted(self.decimals))}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"amount must be a positive integer of atomic units, got {amount!r}")
        hot, hot_key = self.network.hot_wallet_address, self.network.hot_wallet_key_id
        sweeps_from = self._deposit_key_address(key_id)
        if sweeps_from is not None:  # a sweep: from that key's own deposit address to the hot wallet
            if sweeps_from != source:
                raise ValueError(f"deposit key {key_id!r} does not pay from {source}")
            if hot is not None and destination != hot:
                raise ValueError(f"a deposit address sweeps only to the configured hot wallet {hot}, not {destination}")
            return
        if hot is not None and source != hot:
            raise ValueError(f"the key's address {source} is not the configured hot wallet {hot}")
        if hot_key is not None and key_id != hot_key:
            raise ValueError(f"key {key_id!r} is not the configured hot wallet key {hot_key!r}")

    def _deposit_key_address(self, key_id: str) -> str | None:
        """The deposit address of a sweep's deposit key ``deposit/<name>/<account>``; None for any other key."""
        prefix = f"deposit/{self.name}/"
        if not key_id.startswith(prefix) or not key_id[len(prefix) :].isdigit():
            return None
        return self.deposit_address(int(key_id[len(prefix) :])).address

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
        """Build an unsigned EIP-1559 (or legacy EIP-155) withdrawal from ``public_key``'s address.

        The nonce is the lowest one at or above the node's pending count that the nonce book has not handed out;
        the fee cap comes from :meth:`estimate_fees`. ``memo`` must be empty (EVM transfers carry none).
        """
        source = address_of_public_key(public_key)
        self._check_request(key_id, destination, asset, amount, source)
        if memo:
            raise ValueError("EVM transfers carry no memo: leave it empty")
        token = self.tokens.get(asset)
        if token is not None:
            data, to, value = (
                encode_erc20_transfer(address_bytes(destination), amount),
                address_bytes(token.contract),
                0,
            )
        else:
            data, to, value = b"", address_bytes(destination), amount
        estimate = {"from": source, "to": to_checksum_address(to), "value": hex(value), "data": "0x" + data.hex()}
        calls: list[tuple[str, list[object]]] = [  # one round trip to the node
            ("eth_getTransactionCount", [source, "pending"]),
            ("eth_getBalance", [source, "pending"]),
            ("eth_estimateGas", [estimate]),
            *self._fee_calls(),
        ]
        if token is not None:
            balance_of = "0x70a08231" + bytes(12).hex() + source[2:].lower()
            calls.append(("eth_call", [{"to": token.contract, "data": balance_of}, "pending"]))
        answers = self.rpc.batch_or_errors(calls)
        for method_answer in (answers[0], answers[1], *answers[3:]):
            if isinstance(method_answer, RpcError):
                raise method_answer
        pending, native = quantity(answers[0], "nonce"), quantity(answers[1], "balance")
        if token is not None:
            held = int.from_bytes(hex_data(answers[-1], "balanceOf"), "big")
            if held < amount:
                raise InsufficientFunds(f"{source} holds {held} {asset}, needs {amount} (short by {amount - held})")
        elif native < amount:
            raise InsufficientFunds(
                f"{source} holds {native} wei of {self.native_asset}, needs {amount} (short by {amount - native})"
            )
        if isinstance(answers[2], RpcError):
            raise ValueError(
                f"{self.name} cannot estimate gas for this withdrawal (it would fail): {answers[2].message}"
            )
        gas = quantity(answers[2], "eth_estimateGas")
        if gas != 21_000 or data:  # a plain payment to an account without code needs exactly 21,000, no margin
            gas = gas * (100 + self.network.gas_margin_percent) // 100
        max_fee, tip = self._fees(answers[3 : 3 + len(self._fee_calls())])
        needed = value + gas * max_fee
        if native < needed:
            raise InsufficientFunds(
                f"{source} holds {native} wei of {self.native_asset}, needs {needed} (amount {value} and fee cap "
                f"{gas * max_fee}; short by {needed - native})"
            )
        nonce = self.nonce_book.reserve(source, pending)
        kind = TYPE_LEGACY if self.network.legacy else TYPE_EIP1559
        tx = EvmTx(kind, self.network.chain_id, nonce, max_fee, tip, gas, to, value, data)
        return self._unsigned(address_bytes(source), tx, key_id)

    def _unsigned(self, source: bytes, tx: EvmTx, key_id: str) -> UnsignedTransaction:
        return UnsignedTransaction(self.name, pack_payload(source, tx), (keccak256(encode_unsigned(tx)),), key_id)

    def bump_fee(self, unsigned: UnsignedTransaction, *, max_fee: int | None = None) -> UnsignedTransaction:
        """Return a replacement of ``unsigned``: same nonce, destination and amount, higher fees.

        Both the fee cap and the tip rise by at least 12.5% (nodes refuse replacements below +10%), and to today's
        estimate if that is higher; ``max_fee`` asks for a specific cap instead (it must clear the same bar). The
        replacement goes through decode, policy and signing like any withdrawal; once either is mined at depth, the
        other reports DROPPED.
        """
        self.decode(unsigned)
        source, _, tx = unpack_payload(unsigned.payload)
        estimate_cap, estimate_tip = self.estimate_fees()
        floor_cap = (tx.max_fee * 9 + 7) // 8
        floor_tip = (tx.max_priority_fee * 9 + 7) // 8
        cap = max(floor_cap, estimate_cap) if max_fee is None else max_fee
        if cap < floor_cap:
            raise ValueError(f"max_fee {cap} is below the replacement floor {floor_cap} (+12.5%)")
        tip = cap if tx.type == TYPE_LEGACY else min(cap, max(floor_tip, estimate_tip))
        if tip < floor_tip:
            raise ValueError(f"the cap {cap} leaves no room for a tip of at least {floor_tip} (+12.5%)")
        replacement = EvmTx(tx.type, tx.chain_id, tx.nonce, cap, tip, tx.gas, tx.to, tx.value, tx.data)
        return self._unsigned(source, replacement, unsigned.key_id)

    def release(self, unsigned: UnsignedTransaction) -> bool:
        """Free the nonce of a built withdrawal that will never be broadcast (the policy refused it, say)."""
        source, _, tx = unpack_payload(unsigned.payload)
        return self.nonce_book.release(to_checksum_address(source), tx.nonce)

    # -- withdrawals: decode, assemble -----------------------------------------------------------------------------

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """Decode the payload bytes; refuse another network's chain id, foreign calls and digests not its own.

        The source is the payload's ``from`` (not covered by the digest: ``assemble`` refuses a signature that does not
        recover to it); with ``hot_wallet_address`` configured, any other source is refused here.
        """
        if unsigned.chain != self.name:
            raise ValueError(f"transaction was built for chain {unsigned.chain!r}, not {self.name!r}")
        source, encoded, tx = unpack_payload(unsigned.payload)
        if unsigned.digests != (keccak256(encoded),):
            raise ValueError("the digests do not match the payload: refusing to describe it")
        if tx.chain_id != self.network.chain_id:
            raise ValueError(
                f"the transaction is for EIP-155 chain id {tx.chain_id}, not {self.name}'s {self.network.chain_id}: "
                "refusing it before it is signed"
            )
        hot = self.network.hot_wallet_address
        paid_from = to_checksum_address(source)
        if hot is not None and paid_from != hot and self._deposit_key_address(unsigned.key_id) != paid_from:
            raise ValueError(
                f"the payload says it is paid from {to_checksum_address(source)}, not the hot wallet {hot}"
            )
        token = self._by_contract.get("0x" + tx.to.hex())
        if token is not None:
            if tx.value != 0:
                raise ValueError("a token transfer that also sends the native coin is refused")
            recipient, amount = decode_erc20_transfer(tx.data)
            asset, destination = token.symbol, to_checksum_address(recipient)
        else:
            if tx.data:
                raise ValueError("calls to contracts other than the configured tokens' transfer are refused")
            asset, destination, amount = self.native_asset, to_checksum_address(tx.to), tx.value
        if amount <= 0:
            raise ValueError("a withdrawal of nothing is refused")
        return DecodedTransaction(
            chain=self.name,
            chain_id=str(tx.chain_id),
            asset=asset,
            source=to_checksum_address(source),
            destination=destination,
            amount=amount,
            fee=tx.fee_cap,
            fee_asset=self.native_asset,
        )

    @staticmethod
    def _recover(digest: bytes, r: int, s: int, y: int) -> str:
        try:
            key = coincurve.PublicKey.from_signature_and_message(
                r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y]), digest, hasher=None
            )
        except Exception:  # coincurve raises for signatures that recover no point
            raise ValueError("the signature recovers no public key") from None
        return address_of_public_key(key.format())

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """Return the raw signed transaction from one 65-byte ``r || s || v`` signature (``v`` 0 or 1, low-S).

        A 64-byte ``r || s`` is accepted too (the recovery id is found). ``ValueError`` unless the signature is
        over this transaction's digest by the paying address's key.
        """
        self.decode(unsigned)
        source, _, tx = unpack_payload(unsigned.payload)
        if len(signatures) != 1:
            raise ValueError(f"an EVM transaction takes exactly one signature, got {len(signatures)}")
        signature = bytes(signatures[0])
        if len(signature) not in (64, 65):
            raise ValueError(f"a secp256k1 signature is 65 bytes r || s || v, got {len(signature)}")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
        if not (0 < r < SECP256K1_N and 0 < s <= _HALF_N):
            raise ValueError("the signature is out of range or not low-S (EIP-2): refusing it")
        candidates = (signature[64],) if len(signature) == 65 else (0, 1)
        if any(y not in (0, 1) for y in candidates):
            raise ValueError(f"v must be the recovery id 0 or 1, got {signature[64]}")
        want = to_checksum_address(source)
        for y in candidates:
            if self._recover(unsigned.digests[0], r, s, y) == want:
                return encode_signed(tx, y, r, s)
        raise ValueError("the signature does not verify against the paying address and the transaction's digest")

    # -- withdrawals: broadcast, status ----------------------------------------------------------------------------

    def _sender(self, raw: bytes) -> tuple[str, EvmTx, str]:
        signed = parse_signed(raw)
        if signed.tx.chain_id != self.network.chain_id:
            raise ValueError(
                f"the transaction is signed for chain id {signed.tx.chain_id}, not {self.name}'s "
                f"{self.network.chain_id}: refusing to broadcast it"
            )
        digest = keccak256(encode_unsigned(signed.tx))
        return self._recover(digest, signed.r, signed.s, signed.y_parity), signed.tx, signed.txid

    def _send(self, raw: bytes, txid: str) -> str:
        """Send ``raw``; return ``txid`` if the node has it now (sent, or already known)."""
        try:
            answer = self.rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
        except RpcError as exc:
            message = exc.message.lower()
            if any(marker in message for marker in _ALREADY_KNOWN):
                return txid
            if any(m in message for m in _NONCE_USED) and self.rpc.call("eth_getTransactionByHash", txid) is not None:
                return txid  # already mined
            raise ValueError(f"{self.name} refused the transaction: {exc.message}") from None
        if not isinstance(answer, str) or answer.lower() != txid:
            raise NodeFault(f"eth_sendRawTransaction answered {answer!r}, expected {txid}")
        return txid

    def broadcast(self, signed_tx: bytes) -> str:
        """Send a signed transaction and return its hash; the same bytes again (even once mined) give the same hash.

        The transaction is recorded in the nonce book before it is sent (so its nonce is never handed out again);
        a refusal by the node (``ValueError``) removes that record.
        """
        raw = bytes(signed_tx)
        sender, tx, txid = self._sender(raw)
        book = self.nonce_book
        known = book.broadcast(txid) is not None
        book.record_broadcast(txid, sender, tx.nonce, raw)
        try:
            return self._send(raw, txid)
        except ValueError:
            if not known:
                book.forget_broadcast(txid)
            raise

    def transaction_status(self, txid: str) -> TransactionStatus:
        """Return where ``txid`` stands on the best chain.

        DROPPED is final: a transaction the node no longer has is DROPPED once another transaction used its nonce at
        the network's confirmation depth (it was replaced), and a mined transaction that reverted (it moved nothing)
        once its block is that deep; before that both are PENDING. A transaction this adapter broadcast whose nonce
        is still open but which the node forgot is sent again and reported PENDING.
        """
        txid = txid.lower()
        tx = self.rpc.call("eth_getTransactionByHash", txid)
        if tx is not None:
            return self._mined_status(txid, tx)
        record = self.nonce_book.broadcast(txid)
        if record is None:
            return TransactionStatus(txid, TxState.UNKNOWN)
        tip = self.tip_height()
        latest = quantity(self.rpc.call("eth_getTransactionCount", record.address, hex(tip)), "nonce")
        if latest <= record.nonce:
            try:
                self._send(record.raw, txid)
            except ValueError:
                return TransactionStatus(txid, TxState.UNKNOWN)
            return TransactionStatus(txid, TxState.PENDING)
        tx = self.rpc.call("eth_getTransactionByHash", txid)  # the nonce is used: by this one, mined meanwhile?
        if tx is not None:
            return self._mined_status(txid, tx)
        deep = max(tip - self.required_confirmations + 1, 0)
        try:
            final = quantity(self.rpc.call("eth_getTransactionCount", record.address, hex(deep)), "nonce")
        except RpcError:  # a pruned node without that block's state: the latest count has to do
            final = latest
        return TransactionStatus(txid, TxState.DROPPED if final > record.nonce else TxState.PENDING)

    def _mined_status(self, txid: str, tx: Mapping[str, Any]) -> TransactionStatus:
        if tx.get("blockNumber") is None:
            return TransactionStatus(txid, TxState.PENDING)
        receipt, tip = self.rpc.batch([("eth_getTransactionReceipt", [txid]), ("eth_blockNumber", [])])
        if receipt is None or receipt.get("blockNumber") is None:
            return TransactionStatus(txid, TxState.PENDING)
        height = quantity(receipt["blockNumber"], "blockNumber")
        block_hash = str(receipt.get("blockHash", "")).lower()
        confirmations = max(quantity(tip, "eth_blockNumber") - height + 1, 1)
        if quantity(receipt.get("status"), "receipt status") != 1:
            final = confirmations >= self.required_confirmations
            return TransactionStatus(txid, TxState.DROPPED if final else TxState.PENDING, 0, height, block_hash)
        return TransactionStatus(txid, TxState.CONFIRMED, confirmations, height, block_hash)
