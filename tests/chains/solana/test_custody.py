"""A Solana withdrawal signed by the kernel's own software keystore (an Ed25519 key) lands on LiteSVM."""

from __future__ import annotations

from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.interfaces import KeyScheme, SigningRequest, TxState

from .conftest import OUTSIDE, SOL, SolanaChain


def test_keystore_ed25519_key_signs_a_withdrawal_that_confirms(
    chain: SolanaChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signer gets the message bytes as its payload (KeyScheme.ED25519) and its signature assembles."""
    monkeypatch.setenv("SOLANA_TEST_PASSPHRASE", "correct horse battery staple")
    keystore = SoftwareKeystore(
        tmp_path / "keystore",
        passphrase_env="SOLANA_TEST_PASSPHRASE",
        kdf=KdfCost(memory_kib=64, iterations=1, lanes=1),
    )
    public = keystore.create_key("sol-hot-2", KeyScheme.ED25519)
    chain.node.airdrop(str(Pubkey.from_bytes(public)), 10 * SOL)
    adapter = chain.adapter()
    before = chain.node.balance(str(OUTSIDE))
    unsigned = adapter.build_withdrawal(
        key_id="sol-hot-2", public_key=public, destination=str(OUTSIDE), asset="SOL", amount=3 * SOL
    )
    decoded = adapter.decode(unsigned)
    signature = keystore.sign(
        SigningRequest("w-1", unsigned.key_id, adapter.name, unsigned.digests[0], scheme=KeyScheme.ED25519)
    )
    txid = adapter.broadcast(adapter.assemble(unsigned, [signature]))
    chain.node.mine(adapter.required_confirmations)
    assert adapter.transaction_status(txid).state is TxState.CONFIRMED
    assert chain.node.balance(str(OUTSIDE)) - before == decoded.amount == 3 * SOL
    assert chain.node.balance(str(Pubkey.from_bytes(public))) == 10 * SOL - 3 * SOL - decoded.fee
