"""Dev chain amounts beyond 64 bits (100 ETH in wei) are stored, signed and transferred exactly."""

from __future__ import annotations

from exchange_devchain.tx import Mint, TransferBody, decode_body, decode_tx, encode_body, encode_tx


def test_huge_amounts_round_trip() -> None:
    mint = Mint(chain_id="devchain-1", serial=1, to="dev1qqq", asset="ETH", amount=100 * 10**18)
    assert decode_tx(encode_tx(mint)) == mint
    body = TransferBody("devchain-1", 0, b"\x02" * 33, "dev1qqq", "ETH", 10**30, 1000, "")
    assert decode_body(encode_body(body)) == body
