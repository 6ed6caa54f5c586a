"""Coin paid to deposit addresses by contracts (internal payments), found from geth callTracer traces on anvil."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from eth_account import Account
from exchange_evm import EvmAdapter, NonceBook, to_checksum_address
from exchange_evm.devtoken import FORWARDER
from exchange_evm.watch import INTERNAL_INDEX_BASE, internal_payments

from exchange_framework.funding.deposits import DepositTracker
from exchange_framework.funding.store import DepositStore, Stage
from exchange_framework.interfaces import Decision

from .conftest import PAYER_KEY, TOKEN, AnvilChain, Engine, network

FORWARDER_ADDRESS = to_checksum_address(hashlib.sha256(b"forwarder").digest()[:20])


def forward(chain: AnvilChain, to: str, amount: int) -> str:
    """Pay ``amount`` wei to the forwarder contract, which pays it on to ``to`` (an internal payment)."""
    account = Account.from_key(PAYER_KEY)
    nonce = int(chain.rpc.call("eth_getTransactionCount", account.address, "pending"), 16)
    tx: dict[str, Any] = {
        "type": 2, "chainId": 31337, "nonce": nonce, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
        "to": FORWARDER_ADDRESS, "value": amount, "gas": 100_000, "data": "0x" + "00" * 12 + to[2:].lower(),
    }  # fmt: skip
    raw = account.sign_transaction(tx).raw_transaction
    return str(chain.rpc.call("eth_sendRawTransaction", "0x" + raw.hex()))


def test_internal_payments_are_found_only_with_tracing(chain: AnvilChain, tmp_path: Path) -> None:
    chain.rpc.call("anvil_setCode", FORWARDER_ADDRESS, "0x" + FORWARDER.hex())
    tracing = EvmAdapter(network(chain.node.url, trace_internal_transfers=True), nonce_book=NonceBook(":memory:"))
    plain = EvmAdapter(network(chain.node.url), nonce_book=NonceBook(":memory:"))
    store = DepositStore(tmp_path / "deposits.db")
    engine = Engine(["ETH", "DUSD"])
    try:
        tracker = DepositTracker(
            tracing, store, submit=engine, screen=lambda r: Decision.allow(), start_height=chain.tip() + 1
        )
        to = tracker.deposit_address(31)
        paid = forward(chain, to.address, 7 * 10**15)
        failed = forward(chain, TOKEN, 10**15)  # the token reverts a plain payment: the whole transaction reverts
        direct = chain.deposit(to, "ETH", 10**15)
        chain.mine()
        start = chain.tip()
        assert chain.rpc.call("eth_getTransactionReceipt", failed)["status"] == "0x0"
        (block,) = tracing.scan(start, {to.address, TOKEN})
        found = [(t.txid, t.index, t.amount, t.source_addresses) for t in block.transfers]
        assert found == [
            (paid, INTERNAL_INDEX_BASE + 1, 7 * 10**15, (FORWARDER_ADDRESS,)),
            (direct, 0, 10**15, (Account.from_key(PAYER_KEY).address,)),
        ]
        assert [t.txid for b in plain.scan(start, {to.address}) for t in b.transfers] == [direct]
        chain.mine(3)
        tracker.poll()
        assert {(d.txid, d.stage) for d in store.deposits(chain="anvil")} == {
            (paid, Stage.CREDITED),
            (direct, Stage.CREDITED),
        }
        assert sorted(c.amount for c in engine.credits) == [10**15, 7 * 10**15]
    finally:
        store.close()
        tracing.close()
        plain.close()


def test_internal_payments_skip_reverted_frames_and_delegate_calls() -> None:
    """A callTracer tree (geth's documented shape): reverted subtrees and DELEGATECALL/STATICCALL move no coin."""
    watched = {"0x" + "aa" * 20}
    w = "0x" + "aa" * 20
    tree = {
        "type": "CALL", "from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "value": "0x5",
        "calls": [
            {"type": "CALL", "from": "0x" + "02" * 20, "to": w, "value": "0x10"},  # 1: counted
            {"type": "CALL", "from": "0x" + "02" * 20, "to": "0x" + "03" * 20, "value": "0x0", "error": "reverted",
             "calls": [{"type": "CALL", "from": "0x" + "03" * 20, "to": w, "value": "0x20"}]},  # 2, 3: reverted
            {"type": "DELEGATECALL", "from": "0x" + "02" * 20, "to": w, "value": "0x5"},  # 4: moves no coin
            {"type": "STATICCALL", "from": "0x" + "02" * 20, "to": w},  # 5
            {"type": "CALL", "from": "0x" + "02" * 20, "to": w, "value": "0x0"},  # 6: nothing paid
            {"type": "SELFDESTRUCT", "from": "0x" + "02" * 20, "to": w, "value": "0x30"},  # 7: counted
        ],
    }  # fmt: skip
    assert internal_payments(tree, watched) == [(1, w, 0x10, "0x" + "02" * 20), (7, w, 0x30, "0x" + "02" * 20)]
    assert internal_payments({**tree, "to": w, "error": "out of gas"}, watched) == []  # the whole transaction failed
    assert internal_payments({"type": "CALL", "to": w, "value": "0x9"}, watched) == []  # the transaction itself
