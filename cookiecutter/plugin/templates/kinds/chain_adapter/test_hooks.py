"""The chain adapter, registered through the kernel's hook and run against its in-process node: deposits are found,
withdrawals are built, decoded, signed, assembled, broadcast and confirmed, and anything doubtful is refused."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import coincurve
import msgspec
import pytest
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.custody.signing import sign_verified
from exchange_framework.interfaces import ChainAdapter, KeyScheme, TxState, UnsignedTransaction
from exchange_framework.plugins import ExchangePluginManager, collect_registered, make_plugin_manager
from exchange_framework.types import AccountId

from {{ cookiecutter.__package }}.node import SignedTransfer, TxRejected, address_of
from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME, LedgerChainAdapter


class HotWallet:
    """The custody side, for the tests: one secp256k1 key signing digests the way a custody signer does."""

    def __init__(self) -> None:
        self.key = coincurve.PrivateKey()
        self.public_key = bytes(self.key.public_key.format(compressed=True))
        self.address = address_of(self.public_key)

    def sign(self, digest: bytes) -> bytes:
        def raw_sign() -> bytes:
            return bytes(self.key.sign_recoverable(digest, hasher=None))[:64]  # r || s

        return sign_verified(KeyScheme.SECP256K1, self.public_key, digest, raw_sign)


def registered(pm: ExchangePluginManager, config: ExchangeConfig) -> LedgerChainAdapter:
    adapter = collect_registered(pm, "register_chain_adapters", config=config)[PLUGIN_NAME]
    assert isinstance(adapter, ChainAdapter)
    assert isinstance(adapter, LedgerChainAdapter)
    return adapter


@pytest.fixture
def adapter(pm: ExchangePluginManager, config: ExchangeConfig) -> LedgerChainAdapter:
    """The adapter the plugin registers, over a fresh node."""
    return registered(pm, config)


@pytest.fixture
def wallet(adapter: LedgerChainAdapter) -> HotWallet:
    """A hot wallet holding 1,000,000 atomic units."""
    hot = HotWallet()
    adapter.node.faucet(hot.address, 1_000_000)
    adapter.node.mine()
    return hot


def withdraw(adapter: LedgerChainAdapter, wallet: HotWallet, destination: str, amount: int) -> UnsignedTransaction:
    return adapter.build_withdrawal(
        key_id="hot-1", public_key=wallet.public_key, destination=destination, asset="DEV", amount=amount
    )


def test_registers_an_adapter_under_the_plugin_name(adapter: LedgerChainAdapter) -> None:
    assert adapter.name == PLUGIN_NAME
    assert (adapter.native_asset, adapter.required_confirmations) == ("DEV", 3)


def test_deposit_addresses_are_deterministic_distinct_and_valid(
    pm: ExchangePluginManager, config: ExchangeConfig, adapter: LedgerChainAdapter
) -> None:
    other = registered(pm, config)
    addresses = [adapter.deposit_address(AccountId(account)).address for account in (1, 2, 3)]
    assert addresses == [other.deposit_address(AccountId(account)).address for account in (1, 2, 3)]
    assert len(set(addresses)) == 3
    assert all(adapter.validate_address(address) for address in addresses)
    with pytest.raises(ValueError, match="ids must be 1 to"):
        adapter.deposit_address(AccountId(0))


def test_malformed_addresses_are_invalid(adapter: LedgerChainAdapter) -> None:
    good = adapter.deposit_address(AccountId(1)).address
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    for bad in (flipped, good.upper(), good[:-2], "x" + good, ""):
        assert not adapter.validate_address(bad), bad


def test_scan_finds_a_deposit_and_follows_the_chain(adapter: LedgerChainAdapter) -> None:
    address = adapter.deposit_address(AccountId(7)).address
    adapter.node.faucet(address, 5_000)
    adapter.node.faucet(adapter.deposit_address(AccountId(8)).address, 9_000)  # not watched
    adapter.node.mine(3)
    blocks = adapter.scan(0, [address])
    assert [block.header.height for block in blocks] == [0, 1, 2, 3]
    for parent, child in itertools.pairwise(blocks):
        assert child.header.parent_hash == parent.header.hash
    [transfer] = blocks[1].transfers
    assert (transfer.address, transfer.amount, transfer.asset) == (address, 5_000, "DEV")
    assert adapter.scan(2, [address], max_blocks=1) == [blocks[2]]
    assert adapter.block_header(adapter.tip_height() + 1) is None


def test_a_withdrawal_goes_from_build_to_final(adapter: LedgerChainAdapter, wallet: HotWallet) -> None:
    destination = adapter.deposit_address(AccountId(9)).address
    unsigned = withdraw(adapter, wallet, destination, 250_000)
    decoded = adapter.decode(unsigned)
    assert (decoded.source, decoded.destination, decoded.amount, decoded.fee) == (
        wallet.address,
        destination,
        250_000,
        1000,
    )
    assert (decoded.chain, decoded.chain_id, decoded.asset, decoded.fee_asset) == (
        PLUGIN_NAME,
        adapter.chain_id,
        "DEV",
        "DEV",
    )
    signed = adapter.assemble(unsigned, [wallet.sign(digest) for digest in unsigned.digests])
    txid = adapter.broadcast(signed)
    assert adapter.broadcast(signed) == txid  # idempotent
    assert adapter.transaction_status(txid).state is TxState.PENDING
    adapter.node.mine()
    status = adapter.transaction_status(txid)
    assert (status.state, status.confirmations) == (TxState.CONFIRMED, 1)
    adapter.node.mine(2)
    assert adapter.transaction_status(txid).confirmations == adapter.required_confirmations
    assert adapter.node.balance(destination) == 250_000
    assert adapter.node.balance(wallet.address) == 1_000_000 - 250_000 - 1000
    assert adapter.transaction_status("00" * 32).state is TxState.UNKNOWN


def test_nonces_are_never_handed_out_twice(adapter: LedgerChainAdapter, wallet: HotWallet) -> None:
    destination = adapter.deposit_address(AccountId(9)).address
    first, second = withdraw(adapter, wallet, destination, 10), withdraw(adapter, wallet, destination, 10)
    assert first.payload != second.payload
    for unsigned in (first, second):
        adapter.broadcast(adapter.assemble(unsigned, [wallet.sign(unsigned.digests[0])]))
    adapter.node.mine()
    assert adapter.node.balance(destination) == 20


def test_a_withdrawal_the_wallet_cannot_pay_is_refused(adapter: LedgerChainAdapter, wallet: HotWallet) -> None:
    with pytest.raises(ValueError, match="short by 1 DEV"):
        withdraw(adapter, wallet, adapter.deposit_address(AccountId(9)).address, 1_000_000 - 1000 + 1)


@pytest.mark.parametrize(
    ("destination", "asset", "amount", "message"),
    [("nowhere", "DEV", 10, "is not a"), (None, "BTC", 10, "moves only DEV"), (None, "DEV", 0, "must be a positive")],
)
def test_bad_withdrawals_are_refused(
    adapter: LedgerChainAdapter, wallet: HotWallet, destination: str | None, asset: str, amount: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        adapter.build_withdrawal(
            key_id="hot-1",
            public_key=wallet.public_key,
            destination=destination or adapter.deposit_address(AccountId(9)).address,
            asset=asset,
            amount=amount,
        )


def test_tampering_is_caught(adapter: LedgerChainAdapter, wallet: HotWallet) -> None:
    unsigned = withdraw(adapter, wallet, adapter.deposit_address(AccountId(9)).address, 10)
    tampered = UnsignedTransaction(
        chain=unsigned.chain,
        payload=unsigned.payload.replace(b'"amount":10', b'"amount":99'),
        digests=unsigned.digests,
        key_id=unsigned.key_id,
    )
    assert tampered.payload != unsigned.payload
    with pytest.raises(ValueError, match="digest does not match"):
        adapter.decode(tampered)
    with pytest.raises(ValueError, match="does not verify"):
        adapter.assemble(unsigned, [HotWallet().sign(unsigned.digests[0])])
    signed = msgspec.json.decode(adapter.assemble(unsigned, [wallet.sign(unsigned.digests[0])]), type=SignedTransfer)
    forged = msgspec.json.encode(SignedTransfer(payload=tampered.payload, signature=signed.signature))
    with pytest.raises(TxRejected, match="bad signature"):
        adapter.broadcast(forged)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("fee = 1", "xpub is required"),
        ('xpub = "xpub-not-really"', "xpub:"),
        ('xpub = "{xpub}"\nrequired_confirmations = 0', "required_confirmations must be a whole number of at least 1"),
        ('xpub = "{xpub}"\nconfirmations = 3', "unknown key 'confirmations'"),
    ],
)
def test_bad_settings_stop_the_start(
    write_config: Callable[..., Path], adapter: LedgerChainAdapter, settings: str, message: str
) -> None:
    config = load_config(write_config(settings=settings.replace("{xpub}", adapter.xpub)))
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match=message):
        pm.hook.startup.call_historic(kwargs={"config": config})
