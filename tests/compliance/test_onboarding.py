"""Onboarding screening: KYC identity data goes through ``screen_onboarding`` (the built-in OFAC name screening on
the test SDN snapshot); a hit freezes the account with a case explaining it, a near miss passes, a failing provider
holds, an officer's decision is audited and lets the account proceed, and a frozen account can neither trade nor
withdraw (portal, REST API, wallet)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework import hookimpl
from exchange_framework.audit import AuditLog
from exchange_framework.cli import main
from exchange_framework.compliance.cases import FROZEN_REASON, CaseStatus, Resolution, Subject
from exchange_framework.compliance.onboarding import Applicant, OnboardingGate, Standing, frozen_accounts
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision, OnboardingRequest, Outcome
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.portal.kyc import KycReviews, onboarding_gate
from tests.admin.conftest import Admin, admin, admin_server  # noqa: F401  # fixtures
from tests.api.client import Rest
from tests.portal.conftest import Portal, PortalClient, alice, exchange, portal_server  # noqa: F401  # fixtures

SDN_DIR = Path(__file__).parent / "data" / "ofac"
SANCTIONED = "Daniel Moreno"  # SDN entry 15102 "MORENO, Daniel" (SDNTK); also 'MORENO JR., Daniel Gonzalo'
NEAR_MISS = "Daniela Moreira"  # Jaro-Winkler 0.916 against "MORENO, Daniel": under the 0.92 threshold
PASSWORD = "correct horse battery staple"


def config_with_list(demo_config: ExchangeConfig, data: Path) -> ExchangeConfig:
    config = with_data_dir(demo_config, data)
    ofac = config.compliance.ofac.model_copy(update={"source": str(SDN_DIR)})
    changed = config.model_copy(update={"compliance": config.compliance.model_copy(update={"ofac": ofac})})
    changed._source = demo_config._source
    return changed


class Setup:
    def __init__(self, config: ExchangeConfig, tmp_path: Path, *plugins: object) -> None:
        self.config = config
        self.pm = make_plugin_manager(config)
        for number, plugin in enumerate(plugins):
            self.pm.register(plugin, name=f"test-plugin-{number}")
        self.audit = AuditLog.open(tmp_path / "audit.log")
        self.gate = OnboardingGate(config, pm=self.pm, audit=self.audit)
        self.identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
        self.identity.create_schema()

    def customer(self, email: str) -> int:
        return self.identity.create_user(email, PASSWORD).id

    def actions(self) -> list[str]:
        return [entry.action for entry in self.audit.entries()]

    def close(self) -> None:
        self.identity.close()
        self.audit.close()


@pytest.fixture
def setup(demo_config: ExchangeConfig, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(config_with_list(demo_config, tmp_path / "data"), tmp_path)
    yield s
    s.close()


def applicant(account: int, name: str) -> Applicant:
    return Applicant(account=account, full_name=name, date_of_birth="1972-10-12", country="BZ", source="manual")


def test_a_kyc_name_on_the_sdn_list_freezes_the_account_and_opens_a_case_that_explains_the_hit(setup: Setup) -> None:
    account = setup.customer("moreno@example.com")
    decision = setup.gate.screen(applicant(account, SANCTIONED), trigger="kyc_submitted")
    assert decision.outcome is Outcome.HOLD and FROZEN_REASON in decision.reasons
    assert setup.gate.standing(account) is Standing.FROZEN
    assert frozen_accounts(setup.config).is_frozen(account)
    frozen_accounts(setup.config).close()  # evicted (many exchanges in one process): it reopens on its next use
    assert frozen_accounts(setup.config).is_frozen(account)
    (case,) = setup.gate.cases.find(Subject.ONBOARDING, str(account))
    assert case.frozen and case.status is CaseStatus.OPEN and case.details["full_name"] == SANCTIONED
    explanations = [r for d in case.decisions for r in d.reasons if "SDN entry 15102" in r]
    assert explanations and "Jaro-Winkler" in explanations[0] and "SDNTK" in explanations[0]
    (record,) = setup.gate.screenings(account)
    assert record.outcome == "hold" and record.case_id == case.id and record.trigger == "kyc_submitted"
    assert "compliance.onboarding.screen" in setup.actions()
    # a KYC approval meanwhile does not raise the tier: it waits for the case
    status = setup.gate.apply_kyc(setup.identity, account, Decision.allow("documents fine"), tier=2, provider="manual")
    user = setup.identity.user(account)
    assert status == "pending" and user is not None and user.kyc_tier == 0
    assert setup.gate.deferred_tier(account) == 2


def test_a_near_miss_below_the_threshold_passes(setup: Setup) -> None:
    sdn = setup.gate.pm.hook.register_sanctions_screeners(config=setup.config)[0][0].keeper.current
    best = sdn.screen_name(NEAR_MISS, threshold=0.5, limit=1)[0]
    assert 0.9 < best.score < float(setup.config.compliance.ofac.name_threshold)  # a real near miss
    account = setup.customer("moreira@example.com")
    decision = setup.gate.screen(applicant(account, NEAR_MISS), trigger="kyc_submitted")
    assert decision.outcome is Outcome.ALLOW
    assert setup.gate.standing(account) is Standing.CLEAR and not frozen_accounts(setup.config).is_frozen(account)
    assert setup.gate.cases.find(Subject.ONBOARDING, str(account)) == []
    assert setup.gate.apply_kyc(setup.identity, account, Decision.allow(), tier=1, provider="manual") == "approved"
    assert setup.identity.user(account).kyc_tier == 1  # type: ignore[union-attr]


class Broken:
    @hookimpl
    def screen_onboarding(self, config: ExchangeConfig, request: OnboardingRequest) -> Decision | None:
        raise TimeoutError("the screening vendor did not answer in 10 s")


def test_a_provider_error_holds_and_an_officer_clearing_the_case_lets_the_account_proceed(
    demo_config: ExchangeConfig, tmp_path: Path
) -> None:
    s = Setup(config_with_list(demo_config, tmp_path / "data"), tmp_path, Broken())
    try:
        account = s.customer("held@example.com")
        decision = s.gate.screen(applicant(account, "Alice Example"), trigger="kyc_submitted")
        assert decision.outcome is Outcome.HOLD and "TimeoutError" in " ".join(decision.reasons)
        assert s.gate.standing(account) is Standing.HELD  # held for review, not frozen
        assert not frozen_accounts(s.config).is_frozen(account)
        assert s.gate.apply_kyc(s.identity, account, Decision.allow(), tier=1, provider="manual") == "pending"
        assert s.identity.user(account).kyc_tier == 0  # type: ignore[union-attr]  # so it cannot withdraw
        (case,) = s.gate.cases.find(Subject.ONBOARDING, str(account))
        with pytest.raises(ValueError, match="write a note"):
            s.gate.resolve(case.id, operator="officer@example.com", resolution="cleared", note=" ", identity=s.identity)
        s.gate.resolve(
            case.id, operator="officer@example.com", resolution=Resolution.CLEARED, note="vendor outage; manual "
            "check found no match", identity=s.identity,
        )  # fmt: skip
        user = s.identity.user(account)
        assert user is not None and user.kyc_tier == 1 and user.kyc_status == "approved"
        assert s.gate.standing(account) is Standing.CLEAR and s.gate.deferred_tier(account) is None
        entries = list(s.audit.entries())
        resolved = [e for e in entries if e.action == "compliance.case.resolve"]
        assert (
            resolved and resolved[0].actor == "officer@example.com" and resolved[0].details["resolution"] == "cleared"
        )
        proceed = [e for e in entries if e.action == "compliance.onboarding.proceed"]
        assert proceed and proceed[0].target == f"account:{account}" and proceed[0].details["tier"] == 1
    finally:
        s.close()


def test_an_officer_clearing_a_false_positive_unfreezes_and_confirming_keeps_it_frozen(setup: Setup) -> None:
    cleared, confirmed = setup.customer("fp@example.com"), setup.customer("tp@example.com")
    for account in (cleared, confirmed):
        setup.gate.screen(applicant(account, SANCTIONED), trigger="kyc_submitted")
        setup.gate.apply_kyc(setup.identity, account, Decision.allow(), tier=1, provider="manual")
    (fp,) = setup.gate.cases.find(Subject.ONBOARDING, str(cleared))
    (tp,) = setup.gate.cases.find(Subject.ONBOARDING, str(confirmed))
    setup.gate.resolve(fp.id, operator="o@example.com", resolution="cleared", note="other DOB", identity=setup.identity)
    setup.gate.resolve(tp.id, operator="o@example.com", resolution="confirmed", note="same", identity=setup.identity)
    assert setup.gate.standing(cleared) is Standing.CLEAR and not frozen_accounts(setup.config).is_frozen(cleared)
    assert setup.identity.user(cleared).kyc_tier == 1  # type: ignore[union-attr]
    assert setup.gate.standing(confirmed) is Standing.FROZEN and frozen_accounts(setup.config).is_frozen(confirmed)
    assert setup.identity.user(confirmed).kyc_tier == 0  # type: ignore[union-attr]


def test_a_kyc_providers_verdict_screens_the_verified_name_before_raising_the_tier(setup: Setup) -> None:
    clean, listed, unknown = (setup.customer(f"{n}@example.com") for n in ("clean", "listed", "unknown"))
    verified = Decision.allow("check complete: clear", provider="onfido")
    assert (
        setup.gate.kyc_verified(
            setup.identity, clean, verified, tier=1, provider="onfido", applicant=applicant(clean, "Alice Example")
        )
        == "approved"
    )
    assert (
        setup.gate.kyc_verified(
            setup.identity, listed, verified, tier=1, provider="onfido", applicant=applicant(listed, SANCTIONED)
        )
        == "pending"
    )
    assert setup.gate.standing(listed) is Standing.FROZEN
    # no identity data at all: nothing to screen, so it holds (fail closed)
    assert setup.gate.kyc_verified(setup.identity, unknown, verified, tier=1, provider="onfido") == "pending"
    assert setup.gate.standing(unknown) is Standing.HELD
    tiers = [setup.identity.user(a).kyc_tier for a in (clean, listed, unknown)]  # type: ignore[union-attr]
    assert tiers == [1, 0, 0]


def test_rescreening_after_a_list_change_opens_cases_only_for_new_hits(setup: Setup, tmp_path: Path) -> None:
    a, b = setup.customer("a@example.com"), setup.customer("b@example.com")
    setup.gate.screen(applicant(a, SANCTIONED), trigger="kyc_submitted")
    setup.gate.screen(applicant(b, "Alice Example"), trigger="kyc_submitted")
    (case,) = setup.gate.cases.find(Subject.ONBOARDING, str(a))
    setup.gate.resolve(case.id, operator="o@example.com", resolution="cleared", note="different person (DOB)")
    seen: list[int] = []
    report = setup.gate.rescreen(progress=seen.append)
    assert report.screened == 2 and report.allowed == 1 and report.already_cleared == 1 and report.new_cases == ()
    assert seen == [1, 1] and setup.gate.standing(a) is Standing.CLEAR
    # the list changes: "Alice Example" is listed now
    listed = tmp_path / "newlist"
    listed.mkdir()
    row = '99001,"EXAMPLE, Alice","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n'
    (listed / "sdn.csv").write_text((SDN_DIR / "sdn.csv").read_text(encoding="utf-8") + row, encoding="utf-8")
    from exchange_framework.default_sanctions import keeper_for

    keeper = keeper_for(setup.config)
    assert keeper is not None
    keeper.source = str(listed)
    keeper.refresh()
    report = setup.gate.rescreen()
    (new,) = report.new_cases
    found = setup.gate.cases.get(new)
    assert found is not None and found.account == b and found.frozen
    assert any("SDN entry 99001" in r for d in found.decisions for r in d.reasons)
    assert setup.gate.standing(b) is Standing.FROZEN and setup.gate.standing(a) is Standing.CLEAR


# -- the portal, the REST API and the wallet refuse a frozen account ---------------------------------------------------


def test_the_portal_kyc_form_screens_and_a_frozen_customer_cannot_trade_or_use_the_api(
    exchange: Portal,  # noqa: F811  # the fixture imported above
    alice: PortalClient,  # noqa: F811
) -> None:
    resting = Rest(exchange.url, exchange.alice.key)
    try:  # an order resting on the book before the customer is screened
        placed = resting.signed(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
            price="100",
        )  # fmt: skip
        assert placed.status_code == 200 and len(resting.signed("GET", "/api/v3/openOrders").json()) == 1
    finally:
        resting.close()
    response = alice.post(
        "/kyc", {"full_name": SANCTIONED, "date_of_birth": "1972-10-12", "country": "BZ", "document_number": "0291622"}
    )
    page = alice.follow(response).text
    assert "your details were sent for review" in page  # the customer is not tipped off
    server = exchange.server
    account = exchange.alice.account
    gate = server.ctx.extras["onboarding"]
    assert gate.standing(account) is Standing.FROZEN
    (case,) = gate.cases.find(Subject.ONBOARDING, str(account))
    assert any("SDN entry 15102" in r for d in case.decisions for r in d.reasons)
    # an approval in the KYC queue does not raise the tier
    reviews: KycReviews = server.ctx.extras["kyc_reviews"]
    submission = reviews.latest(account)
    assert submission is not None
    reviews.decide(submission.id, approve=True, operator="kyc@example.com", tier=1, gate=gate)
    assert server.ctx.identity.user(account).kyc_tier == 0
    order = {"type": "LIMIT", "side": "BUY", "time_in_force": "GTC", "price": "100", "stop_price": "",
             "quantity": "0.01", "quote_amount": "", "iceberg_qty": ""}  # fmt: skip
    refused = alice.follow(alice.post("/trade/BTCUSDT/orders", order, page="/trade/BTCUSDT")).text
    flash = re.search(r'<div class="flash flash-(\w+)"[^>]*>([^<]*)</div>', refused)
    assert flash and flash.group(1) == "error" and "frozen pending a compliance review" in flash.group(2)
    rest = Rest(exchange.url, exchange.alice.key)
    try:
        answer = rest.signed(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
            price="100",
        )  # fmt: skip
        assert answer.status_code == 400 and answer.json()["code"] == -2010
        assert "cannot trade" in answer.json()["msg"] and "funds stay held" in answer.json()["msg"]
        assert rest.signed("GET", "/api/v3/openOrders").json() == []  # the resting order was cancelled at the freeze
    finally:
        rest.close()
    # a clean customer on the same exchange trades as before
    bob = Rest(exchange.url, exchange.bob.key)
    try:
        placed = bob.signed(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
            price="100",
        )  # fmt: skip
        assert placed.status_code == 200, placed.text
    finally:
        bob.close()


def test_the_cli_rescreens_with_a_progress_bar_and_resolving_lets_the_account_proceed(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(f'[compliance.ofac]\nsource = "{SDN_DIR}"\n')
    config = load_config(path)
    gate = OnboardingGate(config)
    identity = IdentityStore(f"sqlite:///{config.journal_path().parent / 'identity.db'}")
    identity.create_schema()
    try:
        account = identity.create_user("cli@example.com", PASSWORD).id
        gate.screen(applicant(account, SANCTIONED), trigger="kyc_submitted")
        gate.apply_kyc(identity, account, Decision.allow(), tier=1, provider="manual")
        runner = CliRunner()
        base = ["--config", str(path), "compliance"]
        result = runner.invoke(main, [*base, "rescreen"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "re-screening customers" in result.output and "re-screened 1 customers" in result.output
        (case,) = gate.cases.find(Subject.ONBOARDING, str(account))
        resolve = [*base, "resolve", str(case.id), "--operator", "officer@example.com", "--resolution", "cleared"]
        result = runner.invoke(main, [*resolve, "--note", "born 1990, not the listed person"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        user = identity.user(account)
        assert user is not None and user.kyc_tier == 1 and gate.standing(account) is Standing.CLEAR
        actions = [e.action for e in AuditLog.from_config(config).entries()]
        assert "compliance.case.resolve" in actions and "compliance.onboarding.proceed" in actions
    finally:
        identity.close()


def test_a_running_exchange_rescreens_when_a_refresh_changes_the_list_and_once_per_list(
    setup: Setup, tmp_path: Path
) -> None:
    from exchange_framework.default_sanctions import keeper_for

    clean = setup.customer("clean@example.com")
    setup.gate.screen(applicant(clean, "Alice Example"), trigger="kyc_submitted")
    first = setup.gate.rescreen_on_list_change()  # this list was never re-screened against: now, in the background
    assert first is not None
    first.join(30)
    assert [r.trigger for r in setup.gate.screenings(clean)] == ["kyc_submitted", "rescreen"]
    keeper = keeper_for(setup.config)
    assert keeper is not None
    keeper.refresh()  # the same list again: no change, nobody re-screened
    assert len(setup.gate.screenings(clean)) == 2
    listed = tmp_path / "newlist"
    listed.mkdir()
    row = '99001,"EXAMPLE, Alice","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n'
    (listed / "sdn.csv").write_text((SDN_DIR / "sdn.csv").read_text(encoding="utf-8") + row, encoding="utf-8")
    keeper.source = str(listed)
    keeper.refresh()  # changed: the listener re-screens on the refreshing thread
    assert setup.gate.standing(clean) is Standing.FROZEN
    (case,) = setup.gate.cases.find(Subject.ONBOARDING, str(clean))
    assert any("SDN entry 99001" in r for d in case.decisions for r in d.reasons)
    # a restart finds this list already re-screened against
    assert OnboardingGate(setup.config, pm=setup.pm).rescreen_on_list_change() is None


def test_the_admin_user_page_shows_a_frozen_account_and_its_case(admin: Admin) -> None:  # noqa: F811
    customer = admin.user("listed")
    gate = onboarding_gate(admin.server.ctx)
    gate.screen(applicant(customer.account, SANCTIONED), trigger="kyc_submitted")
    (case,) = gate.cases.find(Subject.ONBOARDING, str(customer.account))
    page = admin.as_role("compliance").get(f"/admin/users/{customer.account}").text
    standing = re.search(r'<td class="standing">(.*?)</td>', page, re.S)
    assert standing and ">frozen<" in standing.group(1) and "onboarding case <a" in standing.group(1)
    assert f"#case-{case.id}" in standing.group(1) and "no trading, no withdrawals" in standing.group(1)
    clean = admin.user("clean")
    page = admin.as_role("compliance").get(f"/admin/users/{clean.account}").text
    standing = re.search(r'<td class="standing">(.*?)</td>', page, re.S)
    assert standing and ">clear<" in standing.group(1)
