"""A Litecoin withdrawal through the kernel's custody path: decode -> policy engine -> software keystore -> node.

The adapter's decoded transaction is what the policy engine checks (fee and amount limits, the hot wallet, the
network); the released digests are signed by the kernel's software keystore, whose ``r || s || v`` signatures the
adapter assembles into a transaction the node accepts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.address import p2wpkh_address
from exchange_bitcoin.regtest import RegtestNode

from exchange_framework.audit import AuditLog
from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.custody.policy import PolicyEngine, RequestStatus
from exchange_framework.custody.rules import DestinationMatch, Network, PolicyConfig, Rule, RuleAction, Tier, Wallet
from exchange_framework.custody.whitelist import WhitelistApprovers
from exchange_framework.interfaces import KeyScheme, TxState, WithdrawalRequest

from .conftest import LTC, coins, make_adapter

PASSPHRASE_ENV = "EXCHANGE_TEST_BTC_KEYSTORE_PASSPHRASE"
MAX_FEE = 50_000


@pytest.fixture
def keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftwareKeystore:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    return SoftwareKeystore(
        tmp_path / "keystore", passphrase_env=PASSPHRASE_ENV, kdf=KdfCost(memory_kib=256, iterations=1, lanes=1)
    )


@pytest.fixture
def adapter(ltc_node: RegtestNode) -> Iterator[UtxoChainAdapter]:
    a = make_adapter(ltc_node)
    yield a
    a.close()


def policy(tmp_path: Path, hot_address: str) -> PolicyEngine:
    config = PolicyConfig(
        networks=[Network("litecoin", "litecoin-regtest", max_fee=MAX_FEE)],
        wallets=[Wallet("litecoin", hot_address, Tier.HOT, key_id="ltc-hot")],
        rules=[
            Rule(
                "small hot",
                RuleAction.ALLOW,
                chain="litecoin",
                asset="LTC",
                tier=Tier.HOT,
                max_amount=10**7,
                destination=DestinationMatch.ANY,
            )
        ],
    )
    approver = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PolicyEngine(
        config,
        whitelist_approvers=WhitelistApprovers({"ops": approver}, quorum=1),
        audit=AuditLog.open(tmp_path / "audit.log", fsync=False),
        clock=time.time_ns,
        fsync=False,
    )


def test_a_withdrawal_is_checked_released_signed_by_the_keystore_and_mined(
    ltc_node: RegtestNode, adapter: UtxoChainAdapter, keystore: SoftwareKeystore, tmp_path: Path
) -> None:
    public_key = keystore.create_key("ltc-hot", KeyScheme.SECP256K1)
    hot = p2wpkh_address(public_key, LTC)
    for _ in range(3):
        ltc_node.wallet("sendtoaddress", hot, coins(20_000_000))
    ltc_node.mine(1)
    engine = policy(tmp_path, hot)
    destination = str(ltc_node.wallet("getnewaddress", "", "bech32"))

    def submit(withdrawal_id: int, amount: int) -> tuple[RequestStatus, tuple[str, ...], str]:
        unsigned = adapter.build_withdrawal(
            key_id="ltc-hot", public_key=public_key, destination=destination, asset="LTC", amount=amount
        )
        request = WithdrawalRequest(withdrawal_id, 7, "LTC", "litecoin", amount, destination)
        decision = engine.submit(
            withdrawal=request, unsigned=unsigned, decoded=adapter.decode(unsigned), requester="test"
        )
        if decision.status is not RequestStatus.APPROVED:
            adapter.release(unsigned)
        return decision.status, decision.reasons, decision.request_id

    try:
        status, _, request_id = submit(1, 5_000_000)
        assert status is RequestStatus.APPROVED
        approval = engine.release(request_id)
        assert approval.decoded.source == hot and approval.decoded.fee <= MAX_FEE
        signatures = [keystore.sign(r) for r in approval.signing_requests(KeyScheme.SECP256K1)]
        txid = adapter.broadcast(adapter.assemble(approval.unsigned, signatures))
        ltc_node.mine(3)
        assert adapter.transaction_status(txid).state is TxState.CONFIRMED

        status, reasons, _ = submit(2, 10**7 + 1)  # above the only rule's limit
        assert status is RequestStatus.BLOCKED and reasons

        unsigned = adapter.build_withdrawal(
            key_id="ltc-hot", public_key=public_key, destination=destination, asset="LTC", amount=1_000_000
        )
        expensive = adapter.bump_fee(unsigned, fee_rate=400_000)  # a fee the network's max_fee does not allow
        assert adapter.decode(expensive).fee > MAX_FEE
        decision = engine.submit(
            withdrawal=WithdrawalRequest(3, 7, "LTC", "litecoin", 1_000_000, destination),
            unsigned=expensive,
            decoded=adapter.decode(expensive),
            requester="test",
        )
        assert decision.status is RequestStatus.BLOCKED
        assert any("fee" in reason for reason in decision.reasons), decision.reasons
    finally:
        engine.close()
