"""Custody tiers in the running exchange: the scheduled planner proposes from custody reports, the custody admin
page shows bands, forecast and proposals, and an operator's approval reaches the wallet's own policy engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import coincurve
import httpx
import pytest
from exchange_devchain.tx import address_of

from exchange_framework import hookimpl
from exchange_framework.api.app import create_app
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.custody.keystore import SoftwareKeystore
from exchange_framework.custody.rules import Tier
from exchange_framework.custody.tiers_service import TierPlanner
from exchange_framework.custody.tiers_store import SweepStage
from exchange_framework.interfaces import CustodyBalance, KeyScheme
from exchange_framework.plugins import make_plugin_manager
from tests.admin.conftest import Admin, audit_entries, flash, login
from tests.api.conftest import make_user
from tests.api.server import RunningServer, serve
from tests.custody.test_tiers import KEYS

ETH = 10**18
WARM = address_of(coincurve.PrivateKey(b"\x22" * 32).public_key.format())  # addresses nobody here holds keys of
COLD = address_of(coincurve.PrivateKey(b"\x33" * 32).public_key.format())


class Reports:
    """Reports what each tier's wallet holds (a real pluggy plugin of the app's plugin manager)."""

    def __init__(self, hot: str) -> None:
        self.held = {hot: 10 * ETH, WARM: 10 * ETH, COLD: 80 * ETH}

    @hookimpl
    def custody_balances(self, assets: list[str]) -> list[CustodyBalance]:
        return [CustodyBalance(source="test", asset="ETH", wallet=w, amount=a) for w, a in self.held.items()]


def custody_toml(hot: str) -> str:
    return f"""
[custody]
state_path = "var/demo/policy.db"
[custody.networks.devchain]
chain_id = "devchain-1"
[[custody.wallets]]
chain = "devchain"
address = "{hot}"
tier = "hot"
key_id = "hot-1"
[[custody.wallets]]
chain = "devchain"
address = "{WARM}"
tier = "warm"
[[custody.wallets]]
chain = "devchain"
address = "{COLD}"
tier = "cold"
[custody.groups]
treasury = ["alice@example.com", "bob@example.com"]
[custody.whitelist_approvers]
{KEYS}
[[custody.rules]]
name = "hot sweeps"
action = "approve"
tier = "hot"
approvals = 1
group = "treasury"
[custody.tiers]
balances = "reports"
plan_minutes = 1
state_path = "var/demo/tiers.db"
[custody.tiers.assets.ETH]
unit = "0.01"
"""


def until(condition: Callable[[], bool], timeout: float = 30, message: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time: {message()}")
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed_entry_points: None) -> Iterator[RunningServer]:
    """The demo exchange (its dev chain plugin installed) with a custody policy and tier planning."""
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    demo = DEMO_CONFIG.read_text(encoding="utf-8").replace(
        'path = "var/demo/keystore"', 'path = "var/demo/keystore"\nkdf_memory_kib = 64\nkdf_iterations = 1'
    )
    path = tmp_path / "exchange.toml"
    path.write_text(demo, encoding="utf-8")
    plain = load_config(path)  # relative paths now resolve under tmp_path
    keystore = SoftwareKeystore.from_settings(plain.plugin_settings("software_keystore"), plain.root)
    hot = address_of(keystore.create_key("hot-1", KeyScheme.SECP256K1))
    path.write_text(demo + custody_toml(hot), encoding="utf-8")
    config = load_config(path)
    pm = make_plugin_manager(config)
    pm.register(Reports(hot), name="test-reports")
    with serve(create_app(config, pm=pm, settle_every=0.2)) as running:
        yield running


@pytest.mark.slow
def test_the_running_exchange_plans_shows_and_submits_approved_sweeps_to_its_policy_engine(
    server: RunningServer,
) -> None:
    planner = server.ctx.extras["tiers"]
    assert isinstance(planner, TierPlanner)
    until(lambda: planner.last_ns > 0)
    (status,) = planner.last
    assert (status.holdings.asset, status.holdings.chain, status.holdings.hot) == ("ETH", "devchain", 10 * ETH)
    (proposal,) = planner.sweeper.store.sweeps()
    assert (proposal.source, proposal.destination, proposal.amount) == (Tier.HOT, Tier.COLD, 65 * ETH // 10)
    assert proposal.stage is SweepStage.PROPOSED  # only proposed: nothing moves without an approval

    admin = Admin(server)
    try:
        page = admin.as_role("custody").get("/admin/custody")
        assert page.status_code == 200
        assert "Custody tiers" in page.text and "ETH on devchain" in page.text
        assert 'class="tier-hot above"' in page.text and "10.00 %" in page.text
        assert "hot &rarr; cold 6.5" in page.text and f'id="sweep-{proposal.id}"' in page.text
        assert f'action="/admin/custody/sweeps/{proposal.id}"' in page.text  # a custody officer may decide
    finally:
        admin.close()

    wallet = server.ctx.extras["wallet"]
    wallet.adapters["devchain"].node.faucet(planner.sweeper.wallets[0].address, 20 * ETH)
    alice = make_user(server, "alice@example.com")
    server.ctx.identity.set_role(alice.account, "custody")
    officer = login(server.url, "alice@example.com")
    try:
        done = officer.act(f"/admin/custody/sweeps/{proposal.id}", {"decision": "approve"}, page="/admin/custody")
        assert flash(done) == ("success", f"Your approval of sweep {proposal.id} is recorded.")
        refused = officer.act(f"/admin/custody/sweeps/{proposal.id}", {"decision": "approve"}, page="/admin/custody")
        assert flash(refused)[0] == "error" and "already decided" in flash(refused)[1]
    finally:
        officer.close()
    actions = [(e.actor, e.action) for e in audit_entries(server)]
    assert ("alice@example.com", "admin.sweep.approve") in actions
    assert ("alice@example.com", "custody.tiers.approve") in actions

    def decided() -> bool:
        row = planner.sweeper.store.sweep(proposal.id)
        return row is not None and row.stage is not SweepStage.PROPOSED

    until(decided, message=lambda: str(planner.sweeper.store.sweep(proposal.id)))
    row = planner.sweeper.store.sweep(proposal.id)
    assert row is not None
    # the cold address was never whitelisted: the wallet's own policy engine blocks the sweep
    assert row.stage is SweepStage.REJECTED and "not whitelisted" in row.reasons[-1]
    decision = wallet.policy.status(row.request_id)
    assert decision.requester == "custody.tiers" and decision.status.value == "blocked"
    assert httpx.get(f"{server.url}/openapi.json").status_code == 200  # the exchange still serves
