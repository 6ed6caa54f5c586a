"""Finding deposits in EVM blocks: headers with parent hashes, native payments and ERC-20 ``Transfer`` logs.

One :class:`BlockScanner` per network. A scan is two or three JSON-RPC requests whatever its length: the blocks
with their transactions in one batch, the receipts of candidate native payments in one batch (a reverted
transaction moved nothing), and the configured tokens' ``Transfer(address,address,uint256)`` logs in one
``eth_getLogs``, filtered by recipient at the node up to :data:`TOPIC_FILTER_LIMIT` watched addresses.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from exchange_evm.address import to_checksum_address
from exchange_evm.codec import TRANSFER_TOPIC
from exchange_evm.rpc import JsonRpcClient, NodeFault, hex_data, quantity
from exchange_evm.settings import TokenSettings
from exchange_framework.interfaces import BlockHeader, ScannedBlock, Transfer

__all__ = ["TOPIC_FILTER_LIMIT", "BlockScanner"]

TOPIC_FILTER_LIMIT = 1_000  # above this many watched addresses, Transfer logs are filtered here, not at the node
_TOPIC = "0x" + TRANSFER_TOPIC.hex()

_Found = dict[int, list[tuple[tuple[int, int], Transfer]]]  # height -> ((tx index, log index), transfer)


class BlockScanner:
    """Reads blocks and the transfers in them that pay watched addresses, for one network's node."""

    def __init__(self, rpc: JsonRpcClient, native_asset: str, tokens: Iterable[TokenSettings]) -> None:
        self.rpc = rpc
        self.native_asset = native_asset
        self.tokens = {t.contract.lower(): t for t in tokens}

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
