"""Transaction encodings against published vectors (EIP-155, EIP-55) and an independent implementation (eth-account)."""

from __future__ import annotations

import hashlib

import coincurve
import pytest
import rlp
from eth_account import Account
from exchange_evm import EvmAdapter, NonceBook, is_checksum_address, keccak256, to_checksum_address
from exchange_evm.codec import (
    EvmTx,
    decode_erc20_transfer,
    encode_erc20_transfer,
    encode_unsigned,
    pack_payload,
    parse_signed,
    parse_unsigned,
)

from exchange_framework.interfaces import UnsignedTransaction

from .conftest import TOKEN, TOKEN_SYMBOL, network

# EIP-155, "Example": nonce 9, gas price 20 gwei, gas 21000, to 0x3535...35, 1 ether, no data, chain id 1,
# signed with the private key 0x4646...46.
EIP155_KEY = bytes.fromhex("46" * 32)
EIP155_SIGNING_DATA = bytes.fromhex(
    "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
)
EIP155_SIGNING_HASH = bytes.fromhex("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53")
EIP155_V, EIP155_R, EIP155_S = (
    37,
    18515461264373351373200002665853028612451056578545711640558177340181847433846,
    46948507304638947509940763649030358759909902576025900602547168820602576006531,
)
EIP155_SIGNED = bytes.fromhex(
    "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe"
    "537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
)
EIP155_TX = EvmTx(0, 1, 9, 20 * 10**9, 20 * 10**9, 21_000, bytes.fromhex("35" * 20), 10**18)
# EIP-55's own examples (all-caps, all-lower and mixed-case groups).
EIP55_VECTORS = (
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
)


def mainnet_adapter() -> EvmAdapter:
    """An adapter configured for chain id 1 (no node is called by what these tests use)."""
    return EvmAdapter(
        network("http://127.0.0.1:9", name="ethereum", chain_id=1, legacy=True), nonce_book=NonceBook(":memory:")
    )


def test_eip55_published_examples() -> None:
    for address in EIP55_VECTORS:
        assert to_checksum_address(address) == address
        assert is_checksum_address(address)
        swapped = address[:2] + address[2:].swapcase()
        assert swapped == address or not is_checksum_address(swapped)
    assert not is_checksum_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")  # lower case carries no checksum
    for bad in ("", "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", None):
        assert not is_checksum_address(bad)


def test_eip155_example_signing_data_hash_and_signed_transaction() -> None:
    """The EIP's example: our encoding, digest, assembly from a 65-byte signature and raw tx are byte-exact."""
    adapter = mainnet_adapter()
    source = Account.from_key(EIP155_KEY).address
    assert encode_unsigned(EIP155_TX) == EIP155_SIGNING_DATA
    assert keccak256(EIP155_SIGNING_DATA) == EIP155_SIGNING_HASH
    unsigned = UnsignedTransaction(
        "ethereum", pack_payload(bytes.fromhex(source[2:]), EIP155_TX), (EIP155_SIGNING_HASH,), "k"
    )
    decoded = adapter.decode(unsigned)
    assert (decoded.chain_id, decoded.asset, decoded.amount) == ("1", "ETH", 10**18)
    assert decoded.destination == to_checksum_address("0x" + "35" * 20) and decoded.source == source
    assert decoded.fee == 21_000 * 20 * 10**9
    signature = coincurve.PrivateKey(EIP155_KEY).sign_recoverable(EIP155_SIGNING_HASH, hasher=None)
    assert int.from_bytes(signature[:32], "big") == EIP155_R and int.from_bytes(signature[32:64], "big") == EIP155_S
    assert 35 + 2 * 1 + signature[64] == EIP155_V
    assert adapter.assemble(unsigned, [signature]) == EIP155_SIGNED
    parsed = parse_signed(EIP155_SIGNED)
    assert (parsed.tx, parsed.y_parity, parsed.r, parsed.s) == (EIP155_TX, 0, EIP155_R, EIP155_S)


def test_eip1559_digest_and_raw_match_eth_account() -> None:
    """Type 2 native and token transfers: our digest and raw bytes equal eth-account's for the same fields."""
    key = hashlib.sha256(b"1559").digest()
    account = Account.from_key(key)
    destination = to_checksum_address(hashlib.sha256(b"to").digest()[:20])
    cases = [
        EvmTx(2, 31337, 7, 3 * 10**9, 10**9, 21_000, bytes.fromhex(destination[2:]), 123_456_789),
        EvmTx(2, 31337, 8, 3 * 10**9, 10**9, 60_000, bytes.fromhex(TOKEN[2:]), 0,
              encode_erc20_transfer(bytes.fromhex(destination[2:]), 5_000_000)),
    ]  # fmt: skip
    adapter = EvmAdapter(network("http://127.0.0.1:9"), nonce_book=NonceBook(":memory:"))
    for tx in cases:
        theirs = account.sign_transaction(
            {
                "type": 2,
                "chainId": tx.chain_id,
                "nonce": tx.nonce,
                "maxFeePerGas": tx.max_fee,
                "maxPriorityFeePerGas": tx.max_priority_fee,
                "gas": tx.gas,
                "to": to_checksum_address(tx.to),
                "value": tx.value,
                "data": tx.data,
            }
        )
        unsigned = UnsignedTransaction("anvil", pack_payload(bytes.fromhex(account.address[2:]), tx), (), "k")
        digest = keccak256(encode_unsigned(tx))
        unsigned = UnsignedTransaction("anvil", unsigned.payload, (digest,), "k")
        raw = adapter.assemble(unsigned, [coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)])
        assert raw == bytes(theirs.raw_transaction)
        assert "0x" + keccak256(raw).hex() == "0x" + bytes(theirs.hash).hex()
        decoded = adapter.decode(unsigned)
        assert decoded.asset == ("ETH" if not tx.data else TOKEN_SYMBOL)
        assert decoded.destination == destination


def test_decode_refuses_another_chain_id_before_signing() -> None:
    """A payload for chain id 5 is refused by an adapter configured for chain id 31337 (anvil would not check)."""
    adapter = EvmAdapter(network("http://127.0.0.1:9"), nonce_book=NonceBook(":memory:"))
    source = bytes.fromhex(Account.from_key(EIP155_KEY).address[2:])
    for chain_id in (5, 1, 31338):
        for kind in (0, 2):
            tx = EvmTx(kind, chain_id, 0, 10**9, 10**9, 21_000, b"\x35" * 20, 1)
            unsigned = UnsignedTransaction("anvil", pack_payload(source, tx), (keccak256(encode_unsigned(tx)),), "k")
            with pytest.raises(ValueError, match="chain id"):
                adapter.decode(unsigned)
            with pytest.raises(ValueError, match="chain id"):
                adapter.assemble(unsigned, [coincurve.PrivateKey(EIP155_KEY).sign_recoverable(
                    keccak256(encode_unsigned(tx)), hasher=None)])  # fmt: skip
    with pytest.raises(ValueError, match="chain id"):
        adapter.broadcast(EIP155_SIGNED)  # a mainnet transaction is never sent to this network's node


def test_decode_refuses_what_it_cannot_vouch_for() -> None:
    adapter = EvmAdapter(network("http://127.0.0.1:9"), nonce_book=NonceBook(":memory:"))
    source = b"\x11" * 20
    token = bytes.fromhex(TOKEN[2:])

    def unsigned_for(tx_bytes: bytes) -> UnsignedTransaction:
        return UnsignedTransaction("anvil", b"evm\x01" + source + tx_bytes, (keccak256(tx_bytes),), "k")

    good = EvmTx(2, 31337, 0, 10**9, 10**9, 21_000, b"\x22" * 20, 5)
    body = [31337, 0, 10**9, 10**9, 21_000, b"\x22" * 20, 5, b"", []]
    bad_payloads = {
        "garbage": b"\x02garbage",
        "access list": b"\x02" + rlp.encode([*body[:8], [[b"\x33" * 20, []]]]),
        "contract creation": b"\x02" + rlp.encode([*body[:5], b"", *body[6:]]),
        "non-canonical nonce": b"\x02" + rlp.encode([31337, b"\x00\x01", *body[2:]]),
        "tip above cap": b"\x02" + rlp.encode([31337, 0, 2 * 10**9, 10**9, *body[4:]]),
        "unknown contract call": encode_unsigned(EvmTx(2, 31337, 0, 10**9, 10**9, 60_000, b"\x22" * 20, 0, b"\x01")),
        "token call with value": encode_unsigned(
            EvmTx(2, 31337, 0, 10**9, 10**9, 60_000, token, 1, encode_erc20_transfer(b"\x22" * 20, 5))
        ),
        "token approve": encode_unsigned(
            EvmTx(2, 31337, 0, 10**9, 10**9, 60_000, token, 0, bytes.fromhex("095ea7b3") + bytes(64))
        ),
        "legacy without chain id": rlp.encode([0, 10**9, 21_000, b"\x22" * 20, 5, b""]),
        "type 1": b"\x01" + rlp.encode(body),
        "zero value": encode_unsigned(EvmTx(2, 31337, 0, 10**9, 10**9, 21_000, b"\x22" * 20, 0)),
    }
    for name, payload in bad_payloads.items():
        with pytest.raises(ValueError):
            adapter.decode(unsigned_for(payload))
            pytest.fail(f"decoded {name}")
    ok = unsigned_for(encode_unsigned(good))
    assert adapter.decode(ok).amount == 5
    with pytest.raises(ValueError, match="digests"):
        adapter.decode(UnsignedTransaction("anvil", ok.payload, (bytes(32),), "k"))
    with pytest.raises(ValueError, match="not an EVM adapter payload"):
        adapter.decode(UnsignedTransaction("anvil", encode_unsigned(good), ok.digests, "k"))
    with pytest.raises(ValueError, match="built for chain"):
        adapter.decode(UnsignedTransaction("polygon", ok.payload, ok.digests, "k"))


def test_assemble_refuses_high_s_other_keys_and_bad_recovery_ids() -> None:
    adapter = EvmAdapter(network("http://127.0.0.1:9"), nonce_book=NonceBook(":memory:"))
    key = hashlib.sha256(b"payer").digest()
    tx = EvmTx(2, 31337, 0, 10**9, 10**9, 21_000, b"\x22" * 20, 5)
    digest = keccak256(encode_unsigned(tx))
    unsigned = UnsignedTransaction(
        "anvil", pack_payload(bytes.fromhex(Account.from_key(key).address[2:]), tx), (digest,), "k"
    )
    good = coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)
    assert parse_signed(adapter.assemble(unsigned, [good])).tx == tx
    assert adapter.assemble(unsigned, [good[:64]]) == adapter.assemble(unsigned, [good])  # recovery id found
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = good[:32] + (n - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([good[64] ^ 1])
    other = coincurve.PrivateKey(hashlib.sha256(b"someone else").digest()).sign_recoverable(digest, hasher=None)
    for bad in (high_s, other, good[:64] + bytes([good[64] ^ 1]), good[:64] + bytes([27]), good + b"\x00"):
        with pytest.raises(ValueError):
            adapter.assemble(unsigned, [bad])
    with pytest.raises(ValueError, match="exactly one"):
        adapter.assemble(unsigned, [good, good])


def test_erc20_calldata_round_trip_and_refusals() -> None:
    to = b"\x42" * 20
    data = encode_erc20_transfer(to, 10**30)
    assert data[:4].hex() == "a9059cbb" and decode_erc20_transfer(data) == (to, 10**30)
    for bad in (data[:-1], data + b"\x00", bytes.fromhex("23b872dd") + data[4:], data[:4] + b"\x01" + data[5:]):
        with pytest.raises(ValueError):
            decode_erc20_transfer(bad)
    assert parse_unsigned(encode_unsigned(EIP155_TX)) == EIP155_TX
