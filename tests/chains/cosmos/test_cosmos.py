"""The Cosmos SDK adapter offline: golden SignDoc and TxRaw bytes, signatures checked with an independent library.

Vectors (facts copied, no code):

- cosmjs ``packages/proto-signing/src/testutils.spec.ts`` (cosmos/cosmjs): the ``faucet`` mnemonic, its public key
  and address, and ``testVectors``: for sequences 0, 1, 2 of a MsgSend of 1234567 ucosm from the faucet to
  cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu, fee 2000 ucosm, gas 200000, chain id "simd-testing", account
  number 1: the sign bytes and the signed TxRaw. That cosmjs version wrote default-valued fields
  explicitly (empty memo, zero timeout, empty payer/granter).
- gotabit/sdk-ts ``packages/wallet-core/tests/shared/values.ts`` ``TEST_COSMOS_INPUTS.direct``: the same transfer at
  sequence 1 in canonical encoding (defaults left out), body and auth info bytes.
"""

from __future__ import annotations

import base64
import hashlib

import coincurve
import ecdsa
import pytest
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator
from exchange_cosmos import (
    AccountState,
    Coin,
    CosmosAdapter,
    NodeRequired,
    SignDoc,
    TxBody,
    TxRaw,
    address_of_public_key,
    is_address,
    parse_settings,
    tx_hash,
)
from exchange_cosmos.plugin import adapter_from_settings

from exchange_framework.interfaces import UnsignedTransaction

FAUCET_MNEMONIC = (
    "economy stock theory fatal elder harbor betray wasp final emotion task crumble siren bottom lizard educate guess "
    "current outdoor pair theory focus wife stone"
)
FAUCET_PUBKEY_B64 = "A08EGB7ro1ORuFhjOnZcSgwYlpe0DSFjVNUIkNNQxwKQ"
FAUCET_ADDRESS = "cosmos1pkptre7fdkl6gfrzlesjjvhxhlc3r4gmmk8rs6"
TO = "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu"
CHAIN_ID = "simd-testing"

_BODY = (
    "0a90010a1c2f636f736d6f732e62616e6b2e763162657461312e4d736753656e6412700a2d636f736d6f7331706b707472653766646b6c36"
    "6766727a6c65736a6a766878686c63337234676d6d6b38727336122d636f736d6f7331717970717870713971637273737a67327076787136"
    "7273307a716733797963356c7a763778751a100a0575636f736d120731323334353637"
)
_AUTH_PREFIX = (
    "0a500a460a1f2f636f736d6f732e63727970746f2e736563703235366b312e5075624b657912230a21034f04181eeba35391b858633a765c"
    "4a0c189697b40d216354d50890d350c7029012040a0208011800"
)
# gotabit, canonical, sequence 1
CANONICAL_BODY = bytes.fromhex(_BODY)
CANONICAL_AUTH_SEQ1 = bytes.fromhex(
    "0a500a460a1f2f636f736d6f732e63727970746f2e736563703235366b312e5075624b657912230a21034f04181eeba35391b858633a765c"
    "4a0c189697b40d216354d50890d350c7029012040a020801180112130a0d0a0575636f736d12043230303010c09a0c"
)
# cosmjs testVectors: body with explicit "1200 1800", auth info with explicit "1a00 2200" in the fee
_COSMJS_BODY = _BODY + "12001800"
# the signatures inside cosmjs's signedTxBytes, per sequence (the vectors' separate "signature" field is another
# value, which does not verify over these sign bytes, and is not used here)
_COSMJS_SIGNATURES = {
    0: "d1bb55b0f3e5f9c260a20c8ccf2cb44f19bafccba84c7fb6e2b77fac401b15c9"
    "228c33236a701dd7a7c4a481aa5dedb902c982fe565504c4f4e7f39ccfcd73d6",
    1: "d6d876ec9c01d03b025443822b1385e29ed559341ec71853ac310219b4bcb411"
    "2bf24265a19d805f0cbb1cb39f4ac4fe75235445070aa14845733117a746c248",
    2: "c62931c5f283dc72774cb34165ad98169c40de14c13e9c11c696cb439c7c58ab"
    "0c2017c95cb9ed874ace06460b61f1296dddb20c9e0609e364d1f38e163b7c7b",
}
_COSMJS_SIGNED_TX_SEQ0 = (
    "0a97010a90010a1c2f636f736d6f732e62616e6b2e763162657461312e4d736753656e6412700a2d636f736d6f7331706b707472653766646b"
    "6c366766727a6c65736a6a766878686c63337234676d6d6b38727336122d636f736d6f7331717970717870713971637273737a6732707678"
    "71367273307a716733797963356c7a763778751a100a0575636f736d12073132333435363712001800126b0a500a460a1f2f636f736d6f73"
    "2e63727970746f2e736563703235366b312e5075624b657912230a21034f04181eeba35391b858633a765c4a0c189697b40d216354d50890"
    "d350c7029012040a020801180012170a0d0a0575636f736d12043230303010c09a0c1a0022001a40d1bb55b0f3e5f9c260a20c8ccf2cb44f"
    "19bafccba84c7fb6e2b77fac401b15c9228c33236a701dd7a7c4a481aa5dedb902c982fe565504c4f4e7f39ccfcd73d6"
)
_COSMJS_SIGN_BYTES_SEQ0 = (
    "0a97010a90010a1c2f636f736d6f732e62616e6b2e763162657461312e4d736753656e6412700a2d636f736d6f7331706b707472653766646b"
    "6c366766727a6c65736a6a766878686c63337234676d6d6b38727336122d636f736d6f7331717970717870713971637273737a6732707678"
    "71367273307a716733797963356c7a763778751a100a0575636f736d12073132333435363712001800126b0a500a460a1f2f636f736d6f73"
    "2e63727970746f2e736563703235366b312e5075624b657912230a21034f04181eeba35391b858633a765c4a0c189697b40d216354d50890"
    "d350c7029012040a020801180012170a0d0a0575636f736d12043230303010c09a0c1a0022001a0c73696d642d74657374696e672001"
)

_ROOT = Bip32Slip10Secp256k1.FromSeed(Bip39SeedGenerator(FAUCET_MNEMONIC).Generate())
FAUCET_PRIVATE = bytes(_ROOT.DerivePath("m/44'/118'/0'/0/0").PrivateKey().Raw().ToBytes())
FAUCET_PUBLIC = coincurve.PrivateKey(FAUCET_PRIVATE).public_key.format()
XPUB = str(_ROOT.DerivePath("m/44'/118'/0'").PublicKey().ToExtended())


def _cosmjs_auth(sequence: int) -> bytes:
    # the cosmjs vector's auth info differs between sequences only in the signer's sequence byte
    return bytes.fromhex(_AUTH_PREFIX[:-2] + f"{sequence:02x}" + "12170a0d0a0575636f736d12043230303010c09a0c1a002200")


def _adapter(**overrides: object) -> CosmosAdapter:
    fields: dict[str, object] = {
        "chain_id": CHAIN_ID,
        "xpub": XPUB,
        "name": "simd",
        "native_asset": "COSM",
        "native_denom": "ucosm",
        "assets": {"STAKE": "stake"},
        "fee_amount": 2000,
        "gas_limit": 200_000,
    }
    fields.update(overrides)
    return CosmosAdapter(**fields)  # type: ignore[arg-type]


def _sign(digest: bytes, private: bytes = FAUCET_PRIVATE) -> bytes:
    """The custody signer's format: 65 bytes r || s || v, low-S (libsecp256k1 through coincurve)."""
    return coincurve.PrivateKey(private).sign_recoverable(digest, hasher=None)


def _verify_independently(public: bytes, signature64: bytes, digest: bytes) -> bool:
    key = ecdsa.VerifyingKey.from_string(public, curve=ecdsa.SECP256k1)
    try:
        return bool(key.verify_digest(signature64, digest, sigdecode=ecdsa.util.sigdecode_string))
    except ecdsa.BadSignatureError:
        return False


def test_faucet_key_and_address_match_cosmjs() -> None:
    """m/44'/118'/0'/0/0 of the faucet mnemonic is the published key, and its bech32 address the published one."""
    assert base64.b64encode(FAUCET_PUBLIC).decode() == FAUCET_PUBKEY_B64
    assert address_of_public_key(FAUCET_PUBLIC) == FAUCET_ADDRESS
    assert is_address(FAUCET_ADDRESS) and is_address(TO)
    for bad in (
        "",
        FAUCET_ADDRESS.upper(),
        FAUCET_ADDRESS[:-1] + "7",
        "osmo1" + FAUCET_ADDRESS[7:],
        FAUCET_ADDRESS + "q",
    ):
        assert not is_address(bad), bad
    assert address_of_public_key(FAUCET_PUBLIC, "osmo").startswith("osmo1")


def test_sign_doc_golden_bytes_canonical() -> None:
    """Faucet, account 1, sequence 1, fee 2000 ucosm, gas 200000, no memo: exactly the independent canonical bytes."""
    unsigned = _adapter().build_sign_doc(
        key_id="k",
        public_key=FAUCET_PUBLIC,
        destination=TO,
        coin=Coin("ucosm", 1234567),
        memo="",
        account_number=1,
        sequence=1,
    )
    expected = SignDoc(CANONICAL_BODY, CANONICAL_AUTH_SEQ1, CHAIN_ID, 1)
    assert SignDoc.decode(unsigned.payload) == expected
    # the SignDoc's own framing, by the protobuf encoding rules: fields 1-4 in order
    framing = b"\x0a" + bytes([0x93, 0x01]) + CANONICAL_BODY + b"\x12" + bytes([len(CANONICAL_AUTH_SEQ1)])
    assert unsigned.payload == framing + CANONICAL_AUTH_SEQ1 + b"\x1a\x0c" + CHAIN_ID.encode() + b"\x20\x01"
    assert unsigned.digests == (hashlib.sha256(unsigned.payload).digest(),)


def test_memo_is_field_two_of_the_body() -> None:
    """A memo adds exactly field 2 (length-delimited UTF-8) after the message in the body."""
    unsigned = _adapter().build_sign_doc(
        key_id="k",
        public_key=FAUCET_PUBLIC,
        destination=TO,
        coin=Coin("ucosm", 1234567),
        memo="104729",
        account_number=1,
        sequence=1,
    )
    assert SignDoc.decode(unsigned.payload).body_bytes == CANONICAL_BODY + b"\x12\x06104729"
    assert _adapter().decode(unsigned).memo == "104729"


@pytest.mark.parametrize("sequence", [0, 1, 2])
def test_cosmjs_signed_transactions_decode_and_verify(sequence: int) -> None:
    """cosmjs's sign bytes are our SignDoc of its body and auth info; its signature verifies (ecdsa) and decodes."""
    auth = _cosmjs_auth(sequence)
    sign_bytes = SignDoc(bytes.fromhex(_COSMJS_BODY), auth, CHAIN_ID, 1).encode()
    if sequence == 0:
        assert sign_bytes.hex() == _COSMJS_SIGN_BYTES_SEQ0
    signature = bytes.fromhex(_COSMJS_SIGNATURES[sequence])
    digest = hashlib.sha256(sign_bytes).digest()
    assert _verify_independently(FAUCET_PUBLIC, signature, digest)
    # RFC 6979 deterministic signing with the same key reproduces cosmjs's signature byte for byte
    assert _sign(digest)[:64] == signature
    signed = TxRaw(bytes.fromhex(_COSMJS_BODY), auth, (signature,)).encode()
    if sequence == 0:
        assert signed.hex() == _COSMJS_SIGNED_TX_SEQ0
    decoded = _adapter().decode_tx_raw(signed, account_number=1)
    assert (decoded.source, decoded.destination, decoded.asset, decoded.amount) == (FAUCET_ADDRESS, TO, "COSM", 1234567)
    assert (decoded.fee, decoded.fee_asset, decoded.chain_id, decoded.memo) == (2000, "COSM", CHAIN_ID, "")
    with pytest.raises(ValueError, match="does not verify"):
        _adapter().decode_tx_raw(signed, account_number=2)
    with pytest.raises(ValueError, match="does not verify"):
        _adapter(chain_id="cosmoshub-4").decode_tx_raw(signed, account_number=1)


def test_build_sign_assemble_gives_a_verifiable_tx_raw() -> None:
    """build -> decode -> sign (65 bytes) -> assemble: a TxRaw with r || s that ecdsa verifies over the SignDoc."""
    adapter = _adapter(accounts=lambda address: AccountState(1, 5))
    unsigned = adapter.build_withdrawal(
        key_id="hot", public_key=FAUCET_PUBLIC, destination=TO, asset="STAKE", amount=10**30, memo="w-1"
    )
    decoded = adapter.decode(unsigned)
    assert (decoded.chain, decoded.chain_id, decoded.asset, decoded.amount) == ("simd", CHAIN_ID, "STAKE", 10**30)
    assert (decoded.source, decoded.destination, decoded.fee, decoded.memo) == (FAUCET_ADDRESS, TO, 2000, "w-1")
    signed = adapter.assemble(unsigned, [_sign(unsigned.digests[0])])
    raw = TxRaw.decode(signed)
    doc = SignDoc.decode(unsigned.payload)
    assert (raw.body_bytes, raw.auth_info_bytes) == (doc.body_bytes, doc.auth_info_bytes)
    assert len(raw.signatures[0]) == 64 and _verify_independently(FAUCET_PUBLIC, raw.signatures[0], unsigned.digests[0])
    assert adapter.decode_tx_raw(signed, account_number=1) == decoded
    assert tx_hash(signed) == hashlib.sha256(signed).hexdigest().upper()


def test_sequences_are_never_handed_out_twice() -> None:
    """Two builds before the chain moves get consecutive sequences; a higher sequence from the chain wins."""
    chain_sequence = [3]
    adapter = _adapter(accounts=lambda address: AccountState(7, chain_sequence[0]))

    def sequence() -> int:
        unsigned = adapter.build_withdrawal(
            key_id="k", public_key=FAUCET_PUBLIC, destination=TO, asset="COSM", amount=1
        )
        doc = SignDoc.decode(unsigned.payload)
        assert doc.account_number == 7
        from exchange_cosmos import AuthInfo

        return AuthInfo.decode(doc.auth_info_bytes).sequence

    assert [sequence(), sequence()] == [3, 4]
    chain_sequence[0] = 9
    assert sequence() == 9


def test_assemble_refuses_bad_signatures() -> None:
    """High-S, another key's, another digest's, a flipped recovery id and a 64-byte signature are refused."""
    adapter = _adapter(accounts=lambda address: AccountState(1, 0))
    unsigned = adapter.build_withdrawal(key_id="k", public_key=FAUCET_PUBLIC, destination=TO, asset="COSM", amount=5)
    good = _sign(unsigned.digests[0])
    order = ecdsa.SECP256k1.order
    high_s = good[:32] + (order - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([good[64] ^ 1])
    other_key = _sign(unsigned.digests[0], hashlib.sha256(b"someone else").digest())
    other_digest = _sign(hashlib.sha256(b"another").digest())
    flipped = good[:64] + bytes([good[64] ^ 1])
    for bad in (high_s, other_key, other_digest, flipped, good[:64], good + b"\x00"):
        with pytest.raises(ValueError):
            adapter.assemble(unsigned, [bad])
    with pytest.raises(ValueError):
        adapter.assemble(unsigned, [good, good])
    assert adapter.assemble(unsigned, [good])


def test_decode_refuses_garbage_and_foreign_payloads() -> None:
    """Garbage, a digest that is not the payload's, another chain's name, unknown denoms and fields are refused."""
    adapter = _adapter(accounts=lambda address: AccountState(1, 0))
    unsigned = adapter.build_withdrawal(key_id="k", public_key=FAUCET_PUBLIC, destination=TO, asset="COSM", amount=5)
    other = adapter.build_withdrawal(key_id="k", public_key=FAUCET_PUBLIC, destination=TO, asset="COSM", amount=6)
    bad_payloads = [
        UnsignedTransaction("simd", b"\x00garbage", (hashlib.sha256(b"\x00garbage").digest(),), "k"),
        UnsignedTransaction("simd", other.payload, unsigned.digests, "k"),
        UnsignedTransaction("ethereum", unsigned.payload, unsigned.digests, "k"),
    ]
    unknown_field = unsigned.payload + b"\x28\x01"  # field 5 of SignDoc does not exist
    bad_payloads.append(UnsignedTransaction("simd", unknown_field, (hashlib.sha256(unknown_field).digest(),), "k"))
    doc = SignDoc.decode(unsigned.payload)
    body = TxBody.decode(doc.body_bytes)
    foreign = body.messages[0].__class__(body.messages[0].from_address, TO, (Coin("uatom", 5),))
    foreign_doc = SignDoc(TxBody((foreign,)).encode(), doc.auth_info_bytes, doc.chain_id, 1).encode()
    bad_payloads.append(UnsignedTransaction("simd", foreign_doc, (hashlib.sha256(foreign_doc).digest(),), "k"))
    stolen = body.messages[0].__class__(TO, FAUCET_ADDRESS, (Coin("ucosm", 5),))  # not from the signer
    stolen_doc = SignDoc(TxBody((stolen,)).encode(), doc.auth_info_bytes, doc.chain_id, 1).encode()
    bad_payloads.append(UnsignedTransaction("simd", stolen_doc, (hashlib.sha256(stolen_doc).digest(),), "k"))
    for bad in bad_payloads:
        with pytest.raises(ValueError):
            adapter.decode(bad)


def test_build_refuses_bad_requests_and_node_methods_say_what_they_need() -> None:
    """Bad destination, asset or amount are ValueErrors; node operations raise NodeRequired, failing closed."""
    adapter = _adapter(accounts=lambda address: AccountState(1, 0))
    for destination, asset, amount in (("osmo1abc", "COSM", 1), (TO, "NOPE", 1), (TO, "COSM", 0), (TO, "COSM", -1)):
        with pytest.raises(ValueError):
            adapter.build_withdrawal(
                key_id="k", public_key=FAUCET_PUBLIC, destination=destination, asset=asset, amount=amount
            )
    with pytest.raises(NodeRequired, match="sequence"):
        _adapter().build_withdrawal(key_id="k", public_key=FAUCET_PUBLIC, destination=TO, asset="COSM", amount=1)
    for call in (adapter.tip_height, lambda: adapter.scan(1, {TO}), lambda: adapter.broadcast(b"x")):
        with pytest.raises(NodeRequired):
            call()


def test_deposit_addresses_follow_the_xpub() -> None:
    """Account n's address is the bech32 of m/44'/118'/0'/0/n, as a private-key derivation finds it."""
    adapter = _adapter()
    for account in (1, 2, 77):
        private = _ROOT.DerivePath(f"m/44'/118'/0'/0/{account}").PrivateKey().Raw().ToBytes()
        expected = address_of_public_key(coincurve.PrivateKey(bytes(private)).public_key.format())
        assert adapter.deposit_address(account).address == expected
    assert len({adapter.deposit_address(a).address for a in range(1, 30)}) == 29


def test_settings() -> None:
    """The plugin's table builds the adapter; unknown keys, a bad xpub and clashing denoms are named."""
    table = {"chain_id": "cosmoshub-4", "xpub": XPUB}
    adapter = adapter_from_settings(table)
    assert (adapter.name, adapter.native_asset, adapter.native_denom, adapter.hrp) == (
        "cosmoshub",
        "ATOM",
        "uatom",
        "cosmos",
    )
    with pytest.raises(ValueError, match="colour"):
        parse_settings({**table, "colour": 1})
    with pytest.raises(ValueError, match="xpub"):
        parse_settings({**table, "xpub": "xprv-nope"})
    with pytest.raises(ValueError, match="unique"):
        parse_settings({**table, "assets": {"X": "uatom"}})
