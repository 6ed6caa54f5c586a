"""The TRISA provider's decisions without a network: the value against the threshold (exact integers), settings
read from ``[plugins.settings.trisa]`` with clear errors, and the answers for unknown VASPs under each policy."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from exchange_trisa.plugin import Settings, TrisaSettingsError, make_provider, provider_for
from exchange_trisa.provider import parse_prices, value_in_cents
from hypothesis import given
from hypothesis import strategies as st

from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import Outcome, WithdrawalRequest
from tests.compliance.travel.pki import ThrowawayCA, sealing_key


@given(
    amount=st.integers(min_value=0, max_value=10**30),
    decimals=st.integers(min_value=0, max_value=18),
    price=st.decimals(min_value="0.00000001", max_value="1000000", places=8),
    threshold=st.integers(min_value=0, max_value=10**12),
)
def test_the_value_reaches_a_threshold_exactly_when_the_exact_value_does(
    amount: int, decimals: int, price: object, threshold: int
) -> None:
    ratio = parse_prices({"X": str(price)})["X"]
    exact = Fraction(amount, 10**decimals) * Fraction(*ratio) * 100  # cents, exactly
    assert (value_in_cents(amount, decimals, ratio) >= threshold) == (exact >= threshold)


def test_bad_reference_prices_are_refused_with_what_to_write() -> None:
    for bad in ("0", "-1", "three", "NaN", "Infinity"):
        with pytest.raises(ValueError, match=r'positive decimal string, e\.g\. "3000\.00"'):
            parse_prices({"ETH": bad})


def write_files(ca: ThrowawayCA, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    identity = ca.issue("alice.vasp.test")
    (directory / "cert.pem").write_bytes(identity.certificate)
    (directory / "key.pem").write_bytes(identity.private_key)
    (directory / "ca.pem").write_bytes(identity.trust_chain)
    pem = sealing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    (directory / "sealing.pem").write_bytes(pem)


TOML = """
[plugins.settings.trisa]
vasp_name = "Alice Exchange Ltd"
certificate = "trisa/cert.pem"
private_key = "trisa/key.pem"
trust_chain = "trisa/ca.pem"
sealing_key = "trisa/sealing.pem"
jurisdiction = "US"
reference_prices = { BTC = "60000.00" }
unknown_vasp = "reject"
[plugins.settings.trisa.addresses]
"bc1qbob" = "bob.vasp.test"
[plugins.settings.trisa.counterparties."bob.vasp.test"]
endpoint = "127.0.0.1:1"
"""


def config_with(tmp_path: Path, write_config: object, extra: str) -> ExchangeConfig:
    return load_config(write_config(extra))  # type: ignore[operator]


def test_the_plugin_reads_its_settings_and_decides_from_them(tmp_path: Path, write_config: object) -> None:
    write_files(ThrowawayCA.create(), tmp_path / "trisa")
    config = config_with(tmp_path, write_config, TOML)
    provider = provider_for(config)
    assert provider is not None and provider_for(config) is provider
    assert provider.common_name == "alice.vasp.test" and provider.jurisdiction == "US"
    btc = config.assets["BTC"].decimals

    def request(amount: int, address: str = "bc1qbob", asset: str = "BTC") -> WithdrawalRequest:
        return WithdrawalRequest(1, 7, asset, "bitcoin", amount, address)

    five_cents_short = 5 * 10**btc // 100 - 1  # 0.05 BTC is 3,000 USD at 60,000
    assert not provider.required(request(five_cents_short))
    assert provider.required(request(5 * 10**btc // 100))
    assert provider.required(request(1, asset="NOPRICE"))  # no reference price: fail closed
    # an address no VASP is known for, under unknown_vasp = "reject": refused, never sent
    reference = provider.send(request(10**btc, address="bc1qunhosted"), {"email": "a@example.com", "account": "7"})
    decision = provider.status(reference)
    assert decision.outcome is Outcome.REJECT and "unhosted" in decision.reasons[0]
    assert provider.status("no-such-envelope").outcome is Outcome.HOLD
    provider.client.close()


def test_unconfigured_means_inactive_and_bad_settings_say_what_to_fix(tmp_path: Path, write_config: object) -> None:
    assert provider_for(config_with(tmp_path, write_config, "")) is None
    write_files(ThrowawayCA.create(), tmp_path / "trisa")
    base = dict(
        vasp_name="A", certificate="cert.pem", private_key="key.pem", trust_chain="ca.pem", sealing_key="sealing.pem"
    )
    root = tmp_path / "trisa"

    def refused(match: str, **changes: object) -> None:
        with pytest.raises(TrisaSettingsError, match=match):
            make_provider(Settings(**{**base, **changes}), root=root, data_dir=tmp_path, decimals={})  # type: ignore[arg-type]

    refused("cannot read", certificate="missing.pem")
    refused("unknown_vasp", unknown_vasp="maybe")
    refused("gds_endpoint", directory="gds")
    refused('"static" or "gds"', directory="ldap")
    refused("reference_prices", reference_prices={"ETH": "free"})
    refused("thresholds", thresholds={"US": {"amount": "lots"}})
    refused("endpoint", counterparties={"bob": {"name": "Bob"}})
    refused("RSA", sealing_key="key.pem")  # the TLS key is an EC key: not a sealing key


def test_the_installed_plugin_registers_the_provider_the_wallet_collects(
    tmp_path: Path, write_config: object, installed_entry_points: object
) -> None:
    from exchange_framework.interfaces import TravelRuleProvider
    from exchange_framework.plugins import collect_registered, make_plugin_manager

    write_files(ThrowawayCA.create(), tmp_path / "trisa")
    config = config_with(tmp_path, write_config, TOML)
    registered = collect_registered(make_plugin_manager(config), "register_travel_rule_providers", config=config)
    assert isinstance(registered["trisa"], TravelRuleProvider) and registered["trisa"] is provider_for(config)
    bare = config_with(tmp_path, write_config, "")
    assert collect_registered(make_plugin_manager(bare), "register_travel_rule_providers", config=bare) == {}


def test_a_final_answer_is_never_overwritten_by_a_late_one(tmp_path: Path, write_config: object) -> None:
    from exchange_trisa.store import OutgoingTransfer

    write_files(ThrowawayCA.create(), tmp_path / "trisa")
    provider = provider_for(config_with(tmp_path, write_config, TOML))
    assert provider is not None
    eid = provider.envelope_id(5)
    provider._save(OutgoingTransfer(eid, 5, "bob.vasp.test", "pending", message="later"))
    provider._save(OutgoingTransfer(eid, 5, "bob.vasp.test", "accepted", message="accepted"))  # the later reply
    late = OutgoingTransfer(eid, 5, "bob.vasp.test", "pending", message="the send's own, older answer")
    provider._save(late)
    assert late.state == "accepted"  # the caller sees what stands
    assert provider.status(eid).outcome is Outcome.ALLOW
    provider.client.close()


def test_the_transaction_carries_the_exact_amount_beside_trisas_double(tmp_path: Path, write_config: object) -> None:
    import json

    from exchange_trisa.directory import Counterparty
    from exchange_trisa.identity import decode
    from exchange_trisa.wire import Transaction

    write_files(ThrowawayCA.create(), tmp_path / "trisa")
    provider = provider_for(config_with(tmp_path, write_config, TOML))
    assert provider is not None
    bob = Counterparty("bob.vasp.test", "127.0.0.1:1", name="Bob VASP")
    for amount, shown in ((1, "0.00000001"), (150_000_000, "1.5"), (123_456_789_012, "1234.56789012")):
        request = WithdrawalRequest(9, 7, "BTC", "bitcoin", amount, "bc1qbob")
        payload = provider._payload(request, {"email": "a@b.c", "account": "7"}, bob)
        transaction = Transaction.FromString(payload.transaction.value)
        assert json.loads(transaction.extra_json) == {"amount": shown, "withdrawal": 9}
        assert transaction.amount == float(shown) and transaction.beneficiary == "bc1qbob"
        ivms = decode(payload.identity)
        assert list(ivms.beneficiary.account_numbers) == ["bc1qbob"]
        assert list(ivms.originator.account_numbers) == ["alice.vasp.test:7"]
    provider.client.close()
