"""A real litecoind regtest node for the session, and a harness that controls it for the adapter's tests."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection, Iterator
from decimal import Decimal
from pathlib import Path

import coincurve
import pytest
from bip_utils import SegwitBech32Decoder, SegwitBech32Encoder
from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.address import p2wpkh_address
from exchange_bitcoin.network import PRESETS
from exchange_bitcoin.regtest import RegtestNode
from exchange_bitcoin.rpc import RpcClient

from exchange_framework.interfaces import DepositAddress

from .test_address import BIP84_ADDRESSES, BIP84_ZPUB

LTC = PRESETS["litecoin-regtest"]
# Coinbase destinations outside every wallet (two, so that a test can mine a block unlike another at its height).
_sinks = itertools.count(3)


def sink(n: int | None = None) -> str:
    """A coinbase destination outside every wallet: number ``n``, or a new one (so a block differs from another)."""
    seed = b"coinbase sink %d" % (next(_sinks) if n is None else n)
    return p2wpkh_address(coincurve.PrivateKey(hashlib.sha256(seed).digest()).public_key.format(), LTC)


SINKS = (sink(1), sink(2))
_keys = itertools.count(1)


def rltc(bitcoin_address: str) -> str:
    """The same witness program with Litecoin regtest's HRP (golden values from the BIP84 vectors)."""
    version, program = SegwitBech32Decoder.Decode("bc", bitcoin_address)
    return str(SegwitBech32Encoder.Encode(LTC.hrp, version, program))


def coins(amount: int) -> str:
    """Atomic units as the decimal string of coins the node's RPC takes (never a float)."""
    return str(Decimal(amount) / Decimal(10**8))


@pytest.fixture(scope="session")
def ltc_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegtestNode]:
    # Litecoin Core relays BIP125 replacements only with mempoolreplacement=1 (its default is off, unlike Bitcoin's).
    node = start_node(tmp_path_factory.mktemp("litecoind"))
    try:
        yield node
    finally:
        node.stop()


def start_node(datadir: Path) -> RegtestNode:
    """Start a regtest node whose miner wallet spends only coins no test's reorg can make immature again.

    Litecoin Core relays BIP125 replacements only with mempoolreplacement=1 (its default is off, unlike Bitcoin's).
    A spend of a coinbase output that has just matured is evicted from the mempool when a reorg makes it immature
    again; so the coinbases that mature while tests run are locked, and later blocks pay a sink outside the wallet.
    Keep each node's chain below height 432, where Litecoin's MWEB deployment activates on regtest (see regtest.py).
    """
    # spendzeroconfchange=0: the miner wallet builds no chains of unconfirmed transactions, which a reorg could push
    # past the mempool's ancestor limits
    node = RegtestNode(datadir, extra_config="mempoolreplacement=1\nspendzeroconfchange=0\n").start()
    node.mine(150)
    young = [
        {"txid": node.rpc.call("getblock", node.rpc.call("getblockhash", h))["tx"][0], "vout": 0}
        for h in range(41, 151)
    ]
    node.wallet("lockunspent", False, young)
    node.coinbase_to = SINKS[0]
    return node


def make_adapter(node: RegtestNode, *, confirmations: int = 3, **kwargs: object) -> UtxoChainAdapter:
    rpc = RpcClient(node.url, user=node.user, password=node.password, label="litecoin node")
    return UtxoChainAdapter(
        rpc,
        LTC,
        name="litecoin",
        deposit_xpub=BIP84_ZPUB,
        required_confirmations=confirmations,
        **kwargs,  # type: ignore[arg-type]
    )


class LitecoinHarness:
    """Chain controls over the session's regtest node, a fresh funded hot key per harness."""

    hot_key_id = "ltc-hot"
    amounts = {"LTC": 1_000_000}
    address_vectors = {1: DepositAddress(rltc(BIP84_ADDRESSES[(0, 1)]))}

    def __init__(self, node: RegtestNode, *, funding: tuple[int, ...] = (50_000_000,) * 5, confirmations: int = 3):
        self.node = node
        self.adapter = make_adapter(node, confirmations=confirmations)
        self.private_key = hashlib.sha256(b"litecoin hot key %d" % next(_keys) + node.url.encode()).digest()
        self.hot_public_key = coincurve.PrivateKey(self.private_key).public_key.format()
        self.hot_address = p2wpkh_address(self.hot_public_key, LTC)
        self.withdrawal_destination = str(node.wallet("getnewaddress", "", "bech32"))
        if funding:
            self.fund(*funding)

    def fund(self, *amounts: int) -> list[str]:
        txids = [str(self.node.wallet("sendtoaddress", self.hot_address, coins(amount))) for amount in amounts]
        self.mine(1)
        return txids

    def deposit(self, to: DepositAddress, asset: str, amount: int) -> str:
        assert asset == "LTC"
        return str(self.node.wallet("sendtoaddress", to.address, coins(amount)))

    def mine(self, blocks: int = 1) -> None:
        self.node.mine(blocks)

    def reorg(self, depth: int, *, drop: Collection[str]) -> None:
        """invalidateblock the last ``depth`` blocks, then mine depth + 1 blocks whose first double-spends ``drop``."""
        rpc = self.node.rpc
        tip = int(rpc.call("getblockcount"))
        rpc.call("invalidateblock", rpc.call("getblockhash", tip - depth + 1))
        conflicts: list[str] = []
        for txid in drop:  # the dropped transactions are back in the mempool: spend their inputs elsewhere
            tx = rpc.call("getrawtransaction", txid, True)
            prevouts = [(i["txid"], i["vout"]) for i in tx["vin"]]
            total = sum(Decimal(rpc.call("getrawtransaction", t, True)["vout"][v]["value"]) for t, v in prevouts)
            to = self.node.wallet("getnewaddress", "", "bech32")
            inputs = [{"txid": t, "vout": v} for t, v in prevouts]
            raw = rpc.call("createrawtransaction", inputs, {to: str(total - Decimal("0.001"))})
            signed = self.node.wallet("signrawtransactionwithwallet", raw)
            assert signed["complete"], signed
            conflicts.append(signed["hex"])
        for n in range(depth + 1):  # new sinks: blocks unlike the ones they replace
            rpc.call("generateblock", sink(), conflicts if n == 0 else [])

    def sign(self, key_id: str, digest: bytes) -> bytes:
        assert key_id == self.hot_key_id
        return sign(self.private_key, digest)


def sign(private_key: bytes, digest: bytes) -> bytes:
    """A custody signer's secp256k1 signature: 65 bytes r || s || v, low-S (libsecp256k1 always signs low-S)."""
    return bytes(coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None))


@pytest.fixture
def harness(ltc_node: RegtestNode) -> Iterator[LitecoinHarness]:
    h = LitecoinHarness(ltc_node)
    yield h
    h.adapter.close()
