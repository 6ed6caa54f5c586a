"""Finding deposits in EVM blocks: headers with parent hashes, native payments and ERC-20 ``Transfer`` logs.

One :class:`BlockScanner` per network. A scan is two or three JSON-RPC requests whatever its length: the blocks
with their transactions in one batch, the receipts of candidate native payments in one batch (a reverted
transaction moved nothing), and the configured tokens' ``Transfer(address,address,uint256)`` logs in one
``eth_getLogs``, filtered by recipient at the node up to :data:`TOPIC_FILTER_LIMIT` watched addresses.

With ``trace_internal``, coin paid to watched addresses by contracts (a smart-contract wallet such as a Safe, an
exchange's batch payout) is found too, from each block's geth ``callTracer`` traces (``debug_traceBlockByHash``,
one more batch): the node must serve the ``debug`` namespace.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from exchange_evm.address import to_checksum_address
from exchange_evm.codec import TRANSFER_TOPIC
from exchange_evm.rpc import JsonRpcClient, NodeFault, RpcError, hex_data, quantity
from exchange_evm.settings import TokenSettings
from exchange_framework.interfaces import BlockHeader, ScannedBlock, Transfer

__all__ = ["INTERNAL_INDEX_BASE", "TOPIC_FILTER_LIMIT", "BlockScanner", "internal_payments"]

INTERNAL_INDEX_BASE = 1 << 32  # transfer index of an internal payment: this plus its call frame's ordinal
TOPIC_FILTER_LIMIT = 1_000  # above this many watched addresses, Transfer logs are filtered here, not at the node
_TOPIC = "0x" + TRANSFER_TOPIC.hex()

_Found = dict[int, list[tuple[tuple[int, int], Transfer]]]  # height -> ((tx index, log index), transfer)


class BlockScanner:
    """Reads blocks and the transfers in them that pay watched addresses, for one network's node."""

    def __init__(
        self,
        rpc: JsonRpcClient,
        native_asset: str,
        tokens: Iterable[TokenSettings],
        *,
        trace_internal: bool = False,
    ) -> None:
        self.rpc = rpc
        self.native_asset = native_asset
        self.tokens = {t.contract.lower(): t for t in tokens}
        self.trace_internal = trace_internal

    @staticmethod
    def _header(block: Mapping[str, Any], height: int) -> BlockHeader:
        if quantity(block.get("number"), "block number") != height:
            raise NodeFault(f"asked for block {height}, the node answered block {block.get('number')!r}")
        hash_, parent = block.get("hash"), block.get("parentHash")
        if not isinstance(hash_, str) or not isinstance(parent, str) or len(hash_) != 66 or len(parent) != 66:
            raise NodeFault(f"block {height} has a malformed hash or parent hash")
        return BlockHeader(height, hash_.lower(), parent.lower())

    def header(self, height: int) -> BlockHeader | None:
        """Return the best chain's header at ``height``, ``None`` above the tip."""
        if height < 0:
            return None
        block = self.rpc.call("eth_getBlockByNumber", hex(height), False)
        return None if block is None else self._header(block, height)

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Return best-chain blocks from ``from_height`` with the native and token transfers paying ``addresses``.

        Transfers of a block are in chain order (transaction index, then log index). A native payment's index is 0;
        a token transfer's is its log index. If the chain changes between the block and log requests, the scan
        raises :class:`NodeFault` and the next call starts again.
        """
        if from_height < 0 or max_blocks < 1:
            raise ValueError("from_height must be >= 0 and max_blocks >= 1")
        watched = {a.lower(): a for a in addresses}
        raw_blocks = self.rpc.batch(
            [("eth_getBlockByNumber", [hex(h), True]) for h in range(from_height, from_height + max_blocks)]
        )
        blocks: list[Mapping[str, Any]] = []
        for block in raw_blocks:
            if block is None:
                break
            blocks.append(block)
        if not blocks:
            return []
        headers = [self._header(b, from_height + i) for i, b in enumerate(blocks)]
        for i in range(1, len(headers)):
            if headers[i].parent_hash != headers[i - 1].hash:  # the chain changed while the batch was read
                del headers[i:], blocks[i:]
                break
        found: _Found = {h.height: [] for h in headers}
        if watched:
            self._native_transfers(blocks, headers, watched, found)
            if self.tokens:
                self._token_transfers(headers, watched, found)
            if self.trace_internal:
                self._internal_transfers(blocks, headers, watched, found)
        return [
            ScannedBlock(h, tuple(t for _, t in sorted(found[h.height], key=lambda item: item[0]))) for h in headers
        ]

    def _native_transfers(
        self,
        blocks: Sequence[Mapping[str, Any]],
        headers: Sequence[BlockHeader],
        watched: Mapping[str, str],
        found: _Found,
    ) -> None:
        candidates: list[tuple[BlockHeader, Mapping[str, Any]]] = []
        for block, header in zip(blocks, headers, strict=True):
            for tx in block.get("transactions") or ():
                if not isinstance(tx, dict):
                    raise NodeFault(f"block {header.height}: transactions are not objects")
                to = tx.get("to")
                if isinstance(to, str) and to.lower() in watched and quantity(tx.get("value"), "value") > 0:
                    candidates.append((header, tx))
        if not candidates:
            return
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for _, tx in candidates])
        for (header, tx), receipt in zip(candidates, receipts, strict=True):
            if receipt is None or str(receipt.get("blockHash", "")).lower() != header.hash:
                raise NodeFault(f"the chain changed during the scan (receipt of {tx['hash']}); scan again")
            if quantity(receipt.get("status"), "receipt status") != 1:
                continue  # reverted: the value did not move
            to = str(tx["to"]).lower()
            transfer = Transfer(
                txid=str(tx["hash"]).lower(),
                index=0,
                asset=self.native_asset,
                amount=quantity(tx.get("value"), "value"),
                address=watched[to],
                source_addresses=(to_checksum_address(str(tx.get("from"))),),
            )
            found[header.height].append(((quantity(tx.get("transactionIndex"), "transactionIndex"), -1), transfer))

    def _token_transfers(
        self,
        headers: Sequence[BlockHeader],
        watched: Mapping[str, str],
        found: _Found,
    ) -> None:
        topics: list[object] = [
            _TOPIC,
            None,
            ["0x" + bytes(12).hex() + a[2:] for a in watched] if len(watched) <= TOPIC_FILTER_LIMIT else None,
        ]
        logs = self.rpc.call(
            "eth_getLogs",
            {
                "fromBlock": hex(headers[0].height),
                "toBlock": hex(headers[-1].height),
                "address": [t.contract for t in self.tokens.values()],
                "topics": topics,
            },
        )
        if not isinstance(logs, list):
            raise NodeFault(f"eth_getLogs answered {str(logs)[:80]!r}")
        by_height = {h.height: h for h in headers}
        for log in logs:
            if not isinstance(log, dict) or log.get("removed"):
                continue
            height = quantity(log.get("blockNumber"), "log blockNumber")
            header = by_height.get(height)
            if header is None or str(log.get("blockHash", "")).lower() != header.hash:
                raise NodeFault(f"the chain changed during the scan (a log of block {height}); scan again")
            token = self.tokens.get(str(log.get("address", "")).lower())
            log_topics = log.get("topics") or []
            if token is None or len(log_topics) != 3 or str(log_topics[0]).lower() != _TOPIC:
                continue  # another contract, or an ERC-721 Transfer (4 topics)
            to = "0x" + str(log_topics[2])[-40:].lower()
            data = hex_data(log.get("data"), "log data")
            if to not in watched or len(data) != 32:
                continue
            amount = int.from_bytes(data, "big")
            if amount == 0:
                continue
            log_index = quantity(log.get("logIndex"), "logIndex")
            transfer = Transfer(
                txid=str(log.get("transactionHash")).lower(),
                index=log_index,
                asset=token.symbol,
                amount=amount,
                address=watched[to],
                source_addresses=(to_checksum_address("0x" + str(log_topics[1])[-40:]),),
            )
            found[height].append(((quantity(log.get("transactionIndex"), "transactionIndex"), log_index), transfer))

    def _internal_transfers(
        self,
        blocks: Sequence[Mapping[str, Any]],
        headers: Sequence[BlockHeader],
        watched: Mapping[str, str],
        found: _Found,
    ) -> None:
        busy = [(b, h) for b, h in zip(blocks, headers, strict=True) if b.get("transactions")]
        if not busy:
            return
        try:  # by hash: the very blocks just read, or an error if they left the chain
            traces = self.rpc.batch([("debug_traceBlockByHash", [h.hash, {"tracer": "callTracer"}]) for _, h in busy])
        except RpcError as exc:
            raise NodeFault(
                f"tracing failed ({exc.message}): a block left the chain during the scan, or the node does not serve "
                "debug_traceBlockByHash (turn trace_internal_transfers off or enable the debug namespace)"
            ) from None
        for (block, header), block_traces in zip(busy, traces, strict=True):
            transactions = block["transactions"]
            if not isinstance(block_traces, list) or len(block_traces) != len(transactions):
                raise NodeFault(f"block {header.height}: the call traces do not match its transactions")
            for position, (tx, trace) in enumerate(zip(transactions, block_traces, strict=True)):
                frame = trace.get("result") if isinstance(trace, dict) else None
                if not isinstance(frame, dict):
                    raise NodeFault(f"block {header.height}: transaction {position} has no call trace")
                txid = str(tx["hash"]).lower()
                for ordinal, to, amount, source in internal_payments(frame, watched):
                    transfer = Transfer(
                        txid=txid,
                        index=INTERNAL_INDEX_BASE + ordinal,
                        asset=self.native_asset,
                        amount=amount,
                        address=watched[to],
                        source_addresses=(to_checksum_address(source),),
                    )
                    found[header.height].append(((position, INTERNAL_INDEX_BASE + ordinal), transfer))


def internal_payments(frame: Mapping[str, Any], watched: Collection[str]) -> list[tuple[int, str, int, str]]:
    """Return ``(ordinal, to, amount, from)`` for each coin payment to a ``watched`` address inside a transaction.

    ``frame`` is the transaction's geth ``callTracer`` tree. The top frame (the transaction itself) is not counted;
    ``ordinal`` numbers the frames depth first (top frame 0). A frame that failed (``error``) is skipped with
    everything below it, since its state changes were reverted; DELEGATECALL and STATICCALL frames move no coin.
    """
    payments: list[tuple[int, str, int, str]] = []
    ordinal = 0

    def walk(node: Mapping[str, Any], depth: int) -> None:
        nonlocal ordinal
        here = ordinal
        ordinal += 1
        if node.get("error"):
            ordinal += _count(node) - 1  # keep ordinals stable: skip the reverted subtree's numbers
            return
        kind = str(node.get("type", "")).upper()
        to = str(node.get("to", "")).lower()
        value = node.get("value")
        if depth > 0 and kind in ("CALL", "SELFDESTRUCT") and to in watched and value not in (None, "0x0", "0x"):
            amount = quantity(value, "trace value")
            if amount > 0:
                payments.append((here, to, amount, str(node.get("from", ""))))
        for child in node.get("calls") or ():
            if isinstance(child, dict):
                walk(child, depth + 1)

    walk(frame, 0)
    return payments


def _count(node: Mapping[str, Any]) -> int:
    return 1 + sum(_count(c) for c in node.get("calls") or () if isinstance(c, dict))
