"""A real anvil node for the EVM adapter's tests: one per session, reverted to a clean snapshot after each test.

Keys here are test keys made from fixed strings; the mnemonic is BIP39's published "abandon ... about" test phrase.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import coincurve
import pytest
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator
from eth_account import Account
from exchange_evm import EvmAdapter, NetworkSettings, NonceBook, TokenSettings, to_checksum_address
from exchange_evm.anvil import AnvilNode
from exchange_evm.devtoken import RUNTIME, balance_slot
from exchange_evm.rpc import JsonRpcClient, RpcError

from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event, FundsCredited
from exchange_framework.engine.market import AssetSpec
from exchange_framework.interfaces import DepositAddress

MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
_ROOT = Bip32Slip10Secp256k1.FromSeed(Bip39SeedGenerator(MNEMONIC).Generate())
XPUB_CHAIN = str(_ROOT.DerivePath("m/44'/60'/0'/0").PublicKey().ToExtended())  # depth 4: the external chain
XPUB_ACCOUNT = str(_ROOT.DerivePath("m/44'/60'/0'").PublicKey().ToExtended())  # depth 3: the BIP44 account
# Published addresses of the test phrase at m/44'/60'/0'/0/<i> (MetaMask, ethers and others show the same).
PUBLISHED = {
    0: "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    1: "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
    2: "0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A",
}

CHAIN_ID = 31337
HOT_KEY = hashlib.sha256(b"evm hot wallet").digest()
PAYER_KEY = hashlib.sha256(b"evm depositor").digest()
HOT_PUBLIC = coincurve.PrivateKey(HOT_KEY).public_key.format()
HOT_ADDRESS = Account.from_key(HOT_KEY).address
PAYER_ADDRESS = Account.from_key(PAYER_KEY).address
OUTSIDE = Account.from_key(hashlib.sha256(b"an outside wallet").digest()).address
TOKEN = to_checksum_address(hashlib.sha256(b"dev token").digest()[:20])
TOKEN_SYMBOL = "DUSD"


def network(url: str, **overrides: Any) -> NetworkSettings:
    """Settings of the anvil network with the dev token."""
    fields: dict[str, Any] = {
        "name": "anvil",
        "chain_id": CHAIN_ID,
        "rpc_url": url,
        "confirmations": 3,
        "native_symbol": "ETH",
        "xpub": XPUB_CHAIN,
        "tokens": (TokenSettings(symbol=TOKEN_SYMBOL, contract=TOKEN, decimals=6),),
        "rpc_timeout": 2.0,
    }
    fields.update(overrides)
    return NetworkSettings(**fields)


def sign(key: bytes, digest: bytes) -> bytes:
    """Sign like a custody signer: 65 bytes r || s || v, low-S, v the recovery id."""
    return coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)


def fund(rpc: JsonRpcClient, address: str, wei: int = 10**21, tokens: int = 10**12) -> None:
    """Give ``address`` native coin and dev tokens directly in state (no transaction, no block)."""
    rpc.call("anvil_setBalance", address, hex(wei))
    rpc.call("anvil_setStorageAt", TOKEN, balance_slot(address), "0x" + tokens.to_bytes(32, "big").hex())


class Engine:
    """The kernel's matching engine fed one command at a time, recording credits."""

    def __init__(self, assets: Collection[str]) -> None:
        self.engine = MatchingEngine({a: AssetSpec(a, 0) for a in assets}, {})
        self.seq = 0
        self.credits: list[FundsCredited] = []

    def __call__(self, command: Command) -> Sequence[Event]:
        self.seq += 1
        self.engine.apply(self.seq, command)
        events, self.engine.events = self.engine.events, []
        self.credits += [e for e in events if isinstance(e, FundsCredited)]
        return events


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """One anvil for the session (automine off), with the dev token installed."""
    node = AnvilNode(chain_id=CHAIN_ID).start()
    try:
        node.rpc.call("anvil_setCode", TOKEN, "0x" + RUNTIME.hex())
        node.rpc.call("anvil_mine", "0x1")
        yield node
    finally:
        node.stop()


class AnvilChain:
    """Controls of the session's anvil for one test: payments from a funded depositor, mining, reorgs."""

    def __init__(self, node: AnvilNode) -> None:
        self.node = node
        self.rpc = node.rpc
        self.snapshots: list[tuple[int, str]] = []  # (height before a block was mined, snapshot id)
        fund(self.rpc, HOT_ADDRESS)
        fund(self.rpc, PAYER_ADDRESS)

    def tip(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def send(self, key: bytes, to: str, asset: str, amount: int, *, chain_id: int = CHAIN_ID) -> str:
        """Sign with eth-account (an independent implementation) and send a payment; return its hash."""
        account = Account.from_key(key)
        nonce = int(self.rpc.call("eth_getTransactionCount", account.address, "pending"), 16)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
        }
        if asset == "ETH":
            tx |= {"to": to, "value": amount, "gas": 21_000}
        else:
            data = "0xa9059cbb" + "00" * 12 + to[2:].lower() + amount.to_bytes(32, "big").hex()
            tx |= {"to": TOKEN, "value": 0, "gas": 100_000, "data": data}
        raw = account.sign_transaction(tx).raw_transaction
        return str(self.rpc.call("eth_sendRawTransaction", "0x" + raw.hex()))

    def deposit(self, to: DepositAddress, asset: str, amount: int) -> str:
        return self.send(PAYER_KEY, to.address, asset, amount)

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            height = self.tip()
            self.snapshots.append((height, str(self.rpc.call("evm_snapshot"))))
            self.rpc.call("evm_mine")

    def _raw(self, txid: str) -> bytes:
        return bytes.fromhex(str(self.rpc.call("eth_getRawTransactionByHash", txid))[2:])

    def reorg(self, depth: int, *, drop: Collection[str] = ()) -> None:
        """Replace the last ``depth`` blocks with ``depth + 1`` new ones holding the same transactions but ``drop``."""
        tip = self.tip()
        target = tip - depth
        while self.snapshots and self.snapshots[-1][0] > target:
            self.snapshots.pop()
        assert self.snapshots and self.snapshots[-1][0] == target, f"no snapshot at height {target}"
        _, snapshot = self.snapshots.pop()
        txids: list[str] = []
        for height in range(target + 1, tip + 1):
            txids += [str(t) for t in self.rpc.call("eth_getBlockByNumber", hex(height), False)["transactions"]]
        pool = self.rpc.call("txpool_content")["pending"]
        for by_nonce in pool.values():
            txids += [str(by_nonce[n]["hash"]) for n in sorted(by_nonce, key=int)]
        dropped = {t.lower() for t in drop}
        raws = [self._raw(t) for t in txids if t.lower() not in dropped]
        assert self.rpc.call("evm_revert", snapshot) is True
        for raw in raws:
            # one that depends on a dropped transaction (a later nonce) stays out, as on a real chain
            with contextlib.suppress(RpcError):
                self.rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
        self.mine(depth + 1)

    def sign(self, key_id: str, digest: bytes) -> bytes:
        assert key_id == "hot-1"
        return sign(HOT_KEY, digest)


@pytest.fixture
def chain(anvil: AnvilNode) -> Iterator[AnvilChain]:
    """The session's anvil, funded, put back exactly as it was when the test ends."""
    base = str(anvil.rpc.call("evm_snapshot"))
    try:
        yield AnvilChain(anvil)
    finally:
        anvil.rpc.call("evm_revert", base)


@pytest.fixture
def adapter(chain: AnvilChain, tmp_path: Path) -> Iterator[EvmAdapter]:
    """An adapter for the anvil network with a fresh nonce book."""
    book = NonceBook(tmp_path / "nonces.sqlite")
    adapter = EvmAdapter(network(chain.node.url), nonce_book=book)
    yield adapter
    adapter.close()
    book.close()
