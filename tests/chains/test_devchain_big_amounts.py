"""Dev chain amounts beyond 64 bits (100 ETH in wei) are stored, signed and transferred exactly."""

from __future__ import annotations

from pathlib import Path

from exchange_devchain.tx import Mint, TransferBody, decode_body, decode_tx, encode_body, encode_tx


def test_huge_amounts_round_trip() -> None:
    mint = Mint(chain_id="devchain-1", serial=1, to="dev1qqq", asset="ETH", amount=100 * 10**18)
    assert decode_tx(encode_tx(mint)) == mint
    body = TransferBody("devchain-1", 0, b"\x02" * 33, "dev1qqq", "ETH", 10**30, 1000, "")
    assert decode_body(encode_body(body)) == body


def test_dev_faucet_funds_the_address_of_a_public_key(tmp_path: Path) -> None:
    import coincurve
    from exchange_devchain.adapter import DevChainAdapter
    from exchange_devchain.node import DevChain
    from exchange_devchain.plugin import DEV_XPUB
    from exchange_devchain.tx import address_of

    chain = DevChain.open(tmp_path, chain_id="devchain-1", native_asset="ETH", min_fee=1)
    adapter = DevChainAdapter(chain, xpub=DEV_XPUB, native_asset="ETH", assets=("ETH",))
    key = coincurve.PrivateKey().public_key.format()
    adapter.dev_faucet(key, "ETH", 100 * 10**18)
    chain.mine()
    assert chain.balance(address_of(key), "ETH") == 100 * 10**18
