"""Withdrawals and the travel rule, end to end: the real wallet on the dev chain, our TRISA provider, and a
counterparty VASP's TRISA node over real gRPC with mutual TLS on 127.0.0.1.

At or above the US threshold (3,000 USD at the configured reference price of 3,000 USD per ETH) a withdrawal waits
in ``travel_rule`` until the counterparty accepts, then goes on to approval, signing and broadcast; a rejection
releases the funds with the counterparty's reason; an unreachable counterparty, or one whose reply does not open,
keeps it held (nothing is signed) until it answers; below the threshold there is no travel rule step; an address
no VASP is known for is held for an operator. Re-sending after a crash reuses the envelope id.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
import pytest
from cryptography.hazmat.primitives import serialization
from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_devchain.plugin import DEV_XPUB
from exchange_devchain.tx import address_of
from exchange_trisa import envelope, identity
from exchange_trisa.plugin import Settings, make_provider
from exchange_trisa.provider import TrisaProvider
from exchange_trisa.receiver import Receiver, error_envelope
from exchange_trisa.transport import TrisaClient, TrisaServer
from exchange_trisa.wire import ErrorCode, Payload, Pending, TransferState

from exchange_framework.compliance.onboarding import Applicant, OnboardingGate
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.funding.store import DepositStore
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Outcome
from exchange_framework.node import ExchangeNode, with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.wallet import WalletError, WithdrawalStage, WithdrawalView
from exchange_framework.wallet.service import Wallet
from exchange_framework.wallet.store import WalletStore
from tests.compliance.test_wallet_e2e import sdn_list, until
from tests.compliance.travel.gds_server import LocalGds, VaspRecord
from tests.compliance.travel.pki import ThrowawayCA, sealing_key, signing_certificate

ETH = 10**18
pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # a dev chain, an exchange node and two TRISA nodes per test

BOB = "bob.vasp.test"


def dev_address(seed: int) -> str:
    return address_of(coincurve.PrivateKey(bytes([seed]) * 32).public_key.format())


BOB_CUSTOMER = dev_address(0x21)  # held at Bob's VASP by one of its customers
BOB_STRANGER = dev_address(0x22)  # configured as Bob's, but no customer of Bob holds it
UNHOSTED = dev_address(0x23)  # no VASP is known for it
DECLARED = dev_address(0x24)  # held at Bob's VASP, which only the customer's declaration says


class Counterparty:
    """Bob's VASP: a TRISA node with its own certificate, sealing key and customers, which can go down and up."""

    def __init__(self, ca: ThrowawayCA) -> None:
        self.identity = ca.issue(BOB)
        self.receiver = Receiver(sealing_key=sealing_key(), is_customer=lambda a: a in (BOB_CUSTOMER, DECLARED))
        self.server: TrisaServer | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        self.server = TrisaServer(
            self.identity,
            transfer=self.transfer,
            key_exchange=self.receiver.key_exchange,
            address=f"127.0.0.1:{self.port}",
        )
        self.port = self.server.port
        self.server.start()

    def transfer(self, request: Any, peer: str) -> Any:
        return self.receiver.transfer(request, peer)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0)
            self.server = None


@dataclass
class Setup:
    wallet: Wallet
    node: ExchangeNode
    chain: DevChain
    alice: int
    provider: TrisaProvider
    bob: Counterparty


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@pytest.fixture
def bob(ca: ThrowawayCA) -> Iterator[Counterparty]:
    node = Counterparty(ca)
    try:
        yield node
    finally:
        node.stop()


def write_identity(ca: ThrowawayCA, directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    identity = ca.issue(name)
    (directory / "cert.pem").write_bytes(identity.certificate)
    (directory / "key.pem").write_bytes(identity.private_key)
    (directory / "ca.pem").write_bytes(identity.trust_chain)
    pem = sealing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (directory / "sealing.pem").write_bytes(pem)


def settings(bob: Counterparty, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "vasp_name": "Alice Exchange Ltd",
        "certificate": "cert.pem",
        "private_key": "key.pem",
        "trust_chain": "ca.pem",
        "sealing_key": "sealing.pem",
        "jurisdiction": "US",
        "reference_prices": {"ETH": "3000.00"},
        "counterparties": {BOB: {"endpoint": f"127.0.0.1:{bob.port}", "name": "Bob VASP", "country": "GB"}},
        "addresses": {BOB_CUSTOMER: BOB, BOB_STRANGER: BOB},
        "timeout_seconds": 2.0,
        "retry_seconds": 0.05,
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture
async def setup(
    demo_config: ExchangeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca: ThrowawayCA, bob: Counterparty
) -> AsyncIterator[Setup]:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    config = with_data_dir(demo_config, tmp_path / "data")
    ofac = config.compliance.model_copy(
        update={"ofac": config.compliance.ofac.model_copy(update={"source": str(sdn_list(tmp_path / "sdn"))})}
    )
    config = config.model_copy(update={"compliance": ofac})
    config._source = demo_config._source
    write_identity(ca, tmp_path / "trisa", "alice.vasp.test")
    provider = make_provider(settings(bob), root=tmp_path / "trisa", data_dir=tmp_path, decimals={"ETH": 18})
    pm = make_plugin_manager(config)
    node = ExchangeNode(config, pm=pm, settle_every=0)
    await node.start()
    chain = DevChain.open(tmp_path / "chain", chain_id="devchain-1", native_asset="ETH", min_fee=1000)
    adapter = DevChainAdapter(
        chain, xpub=DEV_XPUB, chain_id="devchain-1", required_confirmations=3, native_asset="ETH", assets=("ETH",)
    )
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    alice = identity.create_user("alice@example.com", "correct horse battery staple", country="DE").id
    identity.set_kyc(alice, tier=1, status="approved")
    wallet = Wallet(
        config=config,
        pm=pm,
        node=node,
        identity=identity,
        adapters={adapter.name: adapter},
        deposit_store=DepositStore(tmp_path / "deposits.db"),
        store=WalletStore(tmp_path / "wallet.db"),
        signer=SoftwareKeystore(tmp_path / "keys", kdf=KdfCost(memory_kib=64, iterations=1, lanes=1)),
        cooling_off_ns=0,
        poll_interval=0.02,
        travel_rule=[provider],
    )
    await wallet.start()
    chain.faucet(address_of(wallet.hot_public_key), 100 * ETH)
    chain.mine()
    address, _memo = wallet.deposit_address(alice, "ETH")
    chain.faucet(address, 5 * ETH)
    chain.mine(3)
    await until(lambda: any(d.stage == "credited" for d in wallet.deposits(alice)))
    for destination in (BOB_CUSTOMER, BOB_STRANGER, UNHOSTED, DECLARED):
        wallet.add_to_whitelist(alice, asset="ETH", address=destination)
    try:
        yield Setup(wallet, node, chain, alice, provider, bob)
    finally:
        await wallet.close()
        await node.close()
        identity.close()
        provider.client.close()


def latest(s: Setup) -> WithdrawalView:
    return s.wallet.withdrawals(s.alice)[0]


async def finish(s: Setup, withdrawal_id: int) -> None:
    await until(lambda: latest(s).stage is WithdrawalStage.AWAITING_APPROVAL)
    await s.wallet.approve_withdrawal(withdrawal_id, operator="ops@example.com", approve=True)
    await until(lambda: latest(s).stage is WithdrawalStage.BROADCAST)
    s.chain.mine(3)
    await until(lambda: latest(s).stage is WithdrawalStage.COMPLETED)


async def test_at_the_threshold_it_waits_for_the_counterparty_then_is_signed_and_broadcast(setup: Setup) -> None:
    s = setup
    gate = threading.Event()
    answer = s.bob.receiver.transfer

    def slow_transfer(request: Any, peer: str) -> Any:  # Bob's compliance team takes its time
        gate.wait(10)
        return answer(request, peer)

    s.bob.receiver.transfer = slow_transfer  # type: ignore[method-assign]
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
    await until(lambda: latest(s).stage is WithdrawalStage.TRAVEL_RULE)
    await asyncio.sleep(0.3)
    assert latest(s).stage is WithdrawalStage.TRAVEL_RULE and latest(s).txid == ""
    assert s.node.balances.balances(s.alice)["ETH"] == (4 * ETH, 1 * ETH)  # held while it waits
    gate.set()
    await finish(s, requested.id)
    view = latest(s)
    assert f"travel rule: accepted by {BOB}" in view.reasons
    assert s.chain.balance(BOB_CUSTOMER, "ETH") == 1 * ETH
    assert s.node.balances.balances(s.alice)["ETH"] == (4 * ETH, 0)
    (record,) = s.bob.receiver.received.values()
    assert record.accepted and record.peer == "alice.vasp.test"
    assert record.beneficiary_accounts == (BOB_CUSTOMER,) and record.originator_names == ("alice@example.com",)
    assert record.envelope_id == s.provider.envelope_id(requested.id)


async def test_the_originator_is_named_by_the_legal_name_kyc_screened(setup: Setup) -> None:
    s = setup
    gate = OnboardingGate(s.node.config)
    decision = gate.screen(Applicant(s.alice, full_name="Alice Liddell", date_of_birth="1852-05-04"), trigger="kyc")
    assert decision.outcome is Outcome.ALLOW
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
    await finish(s, requested.id)
    (record,) = s.bob.receiver.received.values()
    assert record.originator_names == ("Alice Liddell",)


async def test_a_rejection_by_the_counterparty_releases_the_funds_with_its_reason(setup: Setup) -> None:
    s = setup
    await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1.25", address=BOB_STRANGER)
    await until(lambda: latest(s).stage is WithdrawalStage.REJECTED)
    view = latest(s)
    assert any("TRISA error 51" in r and BOB in r for r in view.reasons)  # UNKNOWN_WALLET_ADDRESS
    assert s.node.balances.balances(s.alice)["ETH"] == (5 * ETH, 0)
    assert s.chain.balance(BOB_STRANGER, "ETH") == 0


async def test_an_unreachable_counterparty_keeps_it_held_until_it_answers(setup: Setup) -> None:
    s = setup
    s.bob.stop()
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="2", address=BOB_CUSTOMER)
    await until(lambda: latest(s).stage is WithdrawalStage.TRAVEL_RULE and "UNAVAILABLE" in " ".join(latest(s).reasons))
    await asyncio.sleep(0.5)
    assert latest(s).stage is WithdrawalStage.TRAVEL_RULE and not latest(s).txid
    assert sum(r.startswith("travel rule: ") for r in latest(s).reasons) == 1  # one line, however many rounds
    assert s.node.balances.balances(s.alice)["ETH"] == (3 * ETH, 2 * ETH)
    s.bob.start()  # back on the same port
    await finish(s, requested.id)
    assert s.chain.balance(BOB_CUSTOMER, "ETH") == 2 * ETH
    assert len(s.bob.receiver.received) == 1  # retries reuse the envelope id: one transfer at Bob's


async def test_a_reply_that_does_not_open_is_never_acted_on(setup: Setup) -> None:
    s = setup
    answer = s.bob.receiver.transfer

    def forged_reply(request: Any, peer: str) -> Any:
        reply = answer(request, peer)
        return envelope.seal(
            envelope.open(request, s.bob.receiver.sealing_key), sealing_key().public_key(), envelope_id=reply.id
        )

    s.bob.receiver.transfer = forged_reply  # type: ignore[method-assign]
    await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
    await until(lambda: "not sealed for this key" in " ".join(latest(s).reasons))
    await asyncio.sleep(0.3)
    assert latest(s).stage is WithdrawalStage.TRAVEL_RULE
    assert s.node.balances.balances(s.alice)["ETH"] == (4 * ETH, 1 * ETH)


async def test_below_the_threshold_there_is_no_travel_rule_step(setup: Setup) -> None:
    s = setup
    requested = await s.wallet.request_withdrawal(
        s.alice, asset="ETH", amount="0.999999999999999999", address=BOB_CUSTOMER
    )
    await finish(s, requested.id)
    assert not any("travel rule" in r for r in latest(s).reasons)
    assert s.bob.receiver.received == {} and s.provider.store.get(s.provider.envelope_id(requested.id)) is None


async def test_an_address_no_vasp_is_known_for_is_held_for_an_operator(setup: Setup) -> None:
    s = setup
    first = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=UNHOSTED)
    await until(
        lambda: latest(s).stage is WithdrawalStage.TRAVEL_RULE and "held for review" in " ".join(latest(s).reasons)
    )
    assert "unhosted" in latest(s).reasons[-1]
    await s.wallet.approve_withdrawal(first.id, operator="ops@example.com", approve=False, note="owner not verified")
    assert latest(s).stage is WithdrawalStage.REJECTED
    second = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=UNHOSTED)
    await until(lambda: latest(s).stage is WithdrawalStage.TRAVEL_RULE and latest(s).id == second.id)
    await s.wallet.approve_withdrawal(second.id, operator="ops@example.com", approve=True, note="owner verified")
    await finish(s, second.id)
    assert s.chain.balance(UNHOSTED, "ETH") == 1 * ETH
    assert s.bob.receiver.received == {}


async def test_the_counterparty_found_through_the_global_directory(
    setup: Setup, ca: ThrowawayCA, tmp_path: Path
) -> None:
    s = setup
    published = signing_certificate(ca, BOB, s.bob.receiver.sealing_key.public_key())
    gds = LocalGds(ca.issue("gds.test"))
    gds.records.append(VaspRecord("b0b", BOB, f"127.0.0.1:{s.bob.port}", "Bob VASP", "GB", published))
    endpoint = gds.start()
    (tmp_path / "trisa" / "gds-ca.pem").write_bytes(ca.pem)
    provider = make_provider(
        settings(s.bob, directory="gds", gds_endpoint=endpoint, gds_trust_chain="gds-ca.pem", counterparties={}),
        root=tmp_path / "trisa",
        data_dir=tmp_path / "gds-provider",
        decimals={"ETH": 18},
    )
    s.wallet.travel_rule = (provider,)
    try:
        requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1.5", address=BOB_CUSTOMER)
        await finish(s, requested.id)
        assert gds.calls == ["Lookup"]  # the endpoint and the sealing key came from the directory
        assert s.chain.balance(BOB_CUSTOMER, "ETH") == int(1.5 * ETH)
        assert s.bob.receiver.received[("alice.vasp.test", provider.envelope_id(requested.id))].accepted
    finally:
        provider.client.close()
        gds.stop()


async def test_a_counterparty_with_a_certificate_we_do_not_trust_gets_nothing(setup: Setup) -> None:
    s = setup
    s.bob.stop()
    s.bob.identity = ThrowawayCA.create("Rogue CA").issue(BOB)  # same name, same port, another issuer
    s.bob.start()
    await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
    await until(lambda: latest(s).stage is WithdrawalStage.TRAVEL_RULE and "UNAVAILABLE" in " ".join(latest(s).reasons))
    await asyncio.sleep(0.3)
    assert latest(s).stage is WithdrawalStage.TRAVEL_RULE and not latest(s).txid
    assert s.bob.receiver.received == {} and s.bob.receiver.peer_keys == {}
    assert s.node.balances.balances(s.alice)["ETH"] == (4 * ETH, 1 * ETH)


class PendingCounterparty:
    """Bob answers "pending" first and sends his decision later, as a Transfer to our node with our envelope id."""

    def __init__(self, s: Setup, ca: ThrowawayCA) -> None:
        self.s = s
        self.received: dict[str, Any] = {}  # envelope id -> the payload Bob opened
        s.bob.receiver.transfer = self.pending  # type: ignore[method-assign]
        self.ours = Receiver(
            sealing_key=s.provider.sealing_key,
            is_customer=lambda address: False,
            store=s.provider.store,
            replies=s.provider.handle_reply,
        )
        self.server = TrisaServer(
            s.provider.client.identity,
            transfer=self.ours.transfer,
            key_exchange=self.ours.key_exchange,
            address="127.0.0.1:0",
        )
        self.server.start()
        self.bob_client = TrisaClient(ca.issue(BOB), timeout=5)

    def pending(self, request: Any, peer: str) -> Any:
        payload = envelope.open(request, self.s.bob.receiver.sealing_key)
        self.received[request.id] = payload
        answer = Payload(identity=payload.identity, sent_at=payload.sent_at)
        answer.transaction.Pack(
            Pending(envelope_id=request.id, message="in compliance review", reply_not_after="2026-12-01T00:00:00Z")
        )
        reply = envelope.seal(answer, self.s.bob.receiver.peer_keys[peer], envelope_id=request.id)
        reply.transfer_state = TransferState.PENDING
        return reply

    def decide(self, envelope_id: str, *, accept: bool) -> Any:
        endpoint = f"127.0.0.1:{self.server.port}"
        alice_key = self.bob_client.key_exchange(endpoint, self.s.bob.receiver.sealing_key.public_key())
        if accept:
            payload = self.received[envelope_id]
            payload.received_at = "2026-11-25T16:00:00Z"
            decision = envelope.seal(payload, alice_key, envelope_id=envelope_id)
            decision.transfer_state = TransferState.ACCEPTED
        else:
            decision = error_envelope(envelope_id, ErrorCode.COMPLIANCE_CHECK_FAIL, "beneficiary under investigation")
        return self.bob_client.transfer(endpoint, decision, name="alice.vasp.test")

    def close(self) -> None:
        self.bob_client.close()
        self.server.stop(0)


@pytest.mark.parametrize("accept", [True, False], ids=["accepted-later", "rejected-later"])
async def test_a_pending_answer_waits_for_the_counterpartys_later_decision(
    setup: Setup, ca: ThrowawayCA, accept: bool
) -> None:
    s = setup
    bob = PendingCounterparty(s, ca)
    try:
        requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
        await until(lambda: "in compliance review; it will reply by 2026-12-01" in " ".join(latest(s).reasons))
        assert latest(s).stage is WithdrawalStage.TRAVEL_RULE
        eid = s.provider.envelope_id(requested.id)
        assert list(bob.received) == [eid]
        acknowledgement = bob.decide(eid, accept=accept)
        assert acknowledgement.id == eid
        assert acknowledgement.transfer_state == (TransferState.ACCEPTED if accept else TransferState.REJECTED)
        if accept:
            await finish(s, requested.id)
            assert s.chain.balance(BOB_CUSTOMER, "ETH") == 1 * ETH
        else:
            await until(lambda: latest(s).stage is WithdrawalStage.REJECTED)
            assert any("TRISA error 90: beneficiary under investigation" in r for r in latest(s).reasons)
            assert s.node.balances.balances(s.alice)["ETH"] == (5 * ETH, 0)
        assert bob.decide(eid, accept=not accept).transfer_state == acknowledgement.transfer_state  # final stays
        assert bob.ours.received == {}  # a reply is not a new incoming transfer
    finally:
        bob.close()


async def test_the_beneficiary_vasp_the_customer_declares(setup: Setup) -> None:
    s = setup
    unknown = await s.wallet.request_withdrawal(
        s.alice, asset="ETH", amount="1", address=DECLARED, beneficiary_vasp="Nobody Exchange"
    )
    await until(lambda: "'Nobody Exchange' is not one TRISA VASP (no VASP matches" in " ".join(latest(s).reasons))
    await s.wallet.cancel_withdrawal(s.alice, unknown.id)
    beneficiaries: list[list[str]] = []
    answer = s.bob.receiver.transfer

    def reading(request: Any, peer: str) -> Any:  # what Bob's compliance team reads
        ivms = identity.decode(envelope.open(request, s.bob.receiver.sealing_key).identity)
        beneficiaries.append(identity.names(ivms.beneficiary.beneficiary_persons))
        return answer(request, peer)

    s.bob.receiver.transfer = reading  # type: ignore[method-assign]
    requested = await s.wallet.request_withdrawal(
        s.alice, asset="ETH", amount="1", address=DECLARED, beneficiary_name="Carol Clark", beneficiary_vasp="bob vasp"
    )
    await finish(s, requested.id)
    assert s.chain.balance(DECLARED, "ETH") == 1 * ETH
    record = s.bob.receiver.received[("alice.vasp.test", s.provider.envelope_id(requested.id))]
    assert record.accepted and record.beneficiary_accounts == (DECLARED,) and beneficiaries == [["Carol Clark"]]
    with pytest.raises(WalletError, match="140 printable"):
        await s.wallet.request_withdrawal(
            s.alice, asset="ETH", amount="1", address=DECLARED, beneficiary_name="x" * 141
        )


async def test_after_a_restart_the_same_envelope_is_sent_again(setup: Setup, bob: Counterparty, tmp_path: Path) -> None:
    s = setup
    answer = s.bob.receiver.transfer
    lost: list[str] = []
    after: list[str] = []

    def answer_lost(request: Any, peer: str) -> Any:  # Bob decides, but the reply never reaches us (we crash)
        answer(request, peer)
        lost.append(request.id)
        raise RuntimeError("connection reset")

    def answer_after(request: Any, peer: str) -> Any:
        after.append(request.id)
        return answer(request, peer)

    s.bob.receiver.transfer = answer_lost  # type: ignore[method-assign]
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
    await until(lambda: bool(lost))
    restarted = make_provider(settings(bob), root=tmp_path / "trisa", data_dir=tmp_path, decimals={"ETH": 18})
    s.bob.receiver.transfer = answer_after  # type: ignore[method-assign]
    s.wallet.travel_rule = (restarted,)  # a new process reads the same trisa.db
    s.provider.client.close()
    try:
        await finish(s, requested.id)
    finally:
        restarted.client.close()
    eid = restarted.envelope_id(requested.id)
    assert set(lost) == {eid} and after and set(after) == {eid}  # sent again, with the same envelope id
    assert list(s.bob.receiver.received) == [("alice.vasp.test", eid)]


async def test_a_held_transfer_stays_held_when_no_provider_answers_for_it(setup: Setup) -> None:
    s = setup
    s.bob.stop()
    await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=BOB_CUSTOMER)
    await until(lambda: latest(s).stage is WithdrawalStage.TRAVEL_RULE)
    s.wallet.travel_rule = ()  # e.g. the plugin was disabled: nothing may go out unanswered
    await until(lambda: "no travel rule provider answers for it" in " ".join(latest(s).reasons))
    await asyncio.sleep(0.3)
    assert latest(s).stage is WithdrawalStage.TRAVEL_RULE and not latest(s).txid
