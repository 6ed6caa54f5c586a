"""A Cosmos withdrawal signed by the kernel's own software keystore (a secp256k1 key) assembles into a valid TxRaw."""

from __future__ import annotations

from pathlib import Path

import pytest
from exchange_cosmos import AccountState, TxRaw, address_of_public_key

from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.interfaces import KeyScheme, SigningRequest

from .test_cosmos import TO, _adapter, _verify_independently


def test_keystore_secp256k1_key_signs_a_withdrawal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer's 65-byte r || s || v over the SignDoc digest becomes the TxRaw's 64-byte signature."""
    monkeypatch.setenv("COSMOS_TEST_PASSPHRASE", "correct horse battery staple")
    keystore = SoftwareKeystore(
        tmp_path / "keystore",
        passphrase_env="COSMOS_TEST_PASSPHRASE",
        kdf=KdfCost(memory_kib=64, iterations=1, lanes=1),
    )
    public = keystore.create_key("cosmos-hot", KeyScheme.SECP256K1)
    adapter = _adapter(accounts=lambda address: AccountState(12, 3))
    unsigned = adapter.build_withdrawal(
        key_id="cosmos-hot", public_key=public, destination=TO, asset="COSM", amount=42, memo="w-9"
    )
    decoded = adapter.decode(unsigned)
    assert decoded.source == address_of_public_key(public)
    signature = keystore.sign(
        SigningRequest("w-9", "cosmos-hot", adapter.name, unsigned.digests[0], scheme=KeyScheme.SECP256K1)
    )
    signed = adapter.assemble(unsigned, [signature])
    assert _verify_independently(public, TxRaw.decode(signed).signatures[0], unsigned.digests[0])
    assert adapter.decode_tx_raw(signed, account_number=12) == decoded
