"""The custody policy engine: checks of the decoded transaction, rules, approvals, velocity, release, restart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exchange_framework.audit import AuditLog, verify
from exchange_framework.custody.policy import PolicyEngine, PolicyError, RequestStatus
from exchange_framework.custody.policy_state import PolicyStore
from exchange_framework.custody.rules import (
    DestinationMatch,
    Network,
    PolicyConfig,
    Rule,
    RuleAction,
    Tier,
    VelocityLimit,
    VelocityScope,
    Wallet,
)
from exchange_framework.interfaces import (
    DecodedTransaction,
    KeyScheme,
    UnsignedTransaction,
    WithdrawalRequest,
)
from tests.custody.test_whitelist import approvers, private_key

SECOND = 10**9
HOUR = 3600 * SECOND
T0 = 1_800_000_000 * SECOND
HOT, WARM, COLD = "0xHOT", "0xWARM", "0xCOLD"
FRIEND, STRANGER, COOLING = "0xFRIEND", "0xSTRANGER", "0xCOOLING"


class Clock:
    """The test's clock: ``now`` is read by the engine, moved by the test."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def policy_config(**overrides: object) -> PolicyConfig:
    settings: dict[str, object] = {
        "networks": [Network("ethereum", "1", max_fee=10**6), Network("bitcoin", "main")],
        "wallets": [
            Wallet("ethereum", HOT, Tier.HOT, key_id="hot-eth"),
            Wallet("ethereum", WARM, Tier.WARM),
            Wallet("ethereum", COLD, Tier.COLD),
        ],
        "groups": {"treasury": frozenset({"alice", "bob", "carol"}), "security": frozenset({"dave", "erin"})},
        "rules": [
            Rule("no cold", RuleAction.BLOCK, tier=Tier.COLD),
            Rule("small hot", RuleAction.ALLOW, asset="ETH", tier=Tier.HOT, max_amount=1_000),
            Rule("large hot", RuleAction.APPROVE, asset="ETH", tier=Tier.HOT, approvals=2, group="treasury"),
            Rule("warm", RuleAction.APPROVE, chain="ethereum", tier=Tier.WARM, approvals=1, group="security"),
        ],
        "limits": [VelocityLimit("eth hourly", "ETH", HOUR, 5_000)],
        "approval_ttl_ns": 2 * HOUR,
        "release_ttl_ns": HOUR,
    }
    settings.update(overrides)
    return PolicyConfig(**settings)  # type: ignore[arg-type]


@dataclass
class Env:
    """An engine with its clock, audit log and state file."""

    tmp: Path
    clock: Clock = field(default_factory=Clock)
    config: PolicyConfig = field(default_factory=policy_config)
    audit: AuditLog | None = None
    engine: PolicyEngine | None = None

    def start(self) -> PolicyEngine:
        if self.audit is None:
            self.audit = AuditLog.open(self.tmp / "audit.log", fsync=False, clock=self.clock)
        self.engine = PolicyEngine(
            self.config,
            whitelist_approvers=approvers(),
            audit=self.audit,
            clock=self.clock,
            state_path=self.tmp / "policy.db",
            fsync=False,
        )
        return self.engine

    def restart(self) -> PolicyEngine:
        assert self.engine is not None
        self.engine.close()
        return self.start()

    def actions(self) -> list[str]:
        assert self.audit is not None
        return [e.action for e in self.audit.entries()]


def whitelist(engine: PolicyEngine, address: str, *, asset: str = "", cooling_off_ns: int = 0) -> None:
    change = engine.propose_whitelist_change(
        op="add", chain="ethereum", address=address, asset=asset, proposer="ops", cooling_off_ns=cooling_off_ns
    )
    for name in ("alice", "bob", "carol"):
        engine.approve_whitelist_change(
            change.change_id, approver=name, signature=private_key(name).sign(change.message())
        )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    env = Env(tmp_path)
    engine = env.start()
    whitelist(engine, FRIEND, asset="ETH")
    whitelist(engine, COOLING, cooling_off_ns=HOUR)
    yield env
    assert env.engine is not None
    env.engine.close()


def withdrawal(
    wid: int,
    amount: int,
    *,
    destination: str = FRIEND,
    source: str = HOT,
    account: int = 7,
    asset: str = "ETH",
    key_id: str = "hot-eth",
    chain_id: str = "1",
    fee: int = 21_000,
    decoded_changes: dict[str, object] | None = None,
) -> dict[str, object]:
    """The submit() arguments for a withdrawal whose transaction does what was asked (unless ``decoded_changes``)."""
    request = WithdrawalRequest(wid, account, asset, "ethereum", amount, destination)
    fields: dict[str, object] = {
        "chain": "ethereum",
        "chain_id": chain_id,
        "asset": asset,
        "source": source,
        "destination": destination,
        "amount": amount,
        "fee": fee,
        "fee_asset": "ETH",
    }
    fields.update(decoded_changes or {})
    decoded = DecodedTransaction(**fields)  # type: ignore[arg-type]
    unsigned = UnsignedTransaction("ethereum", f"tx-{wid}".encode(), (bytes([wid % 256]) * 32,), key_id)
    return {"withdrawal": request, "unsigned": unsigned, "decoded": decoded, "requester": "service"}


def engine_of(env: Env) -> PolicyEngine:
    assert env.engine is not None
    return env.engine


# -- allowed and blocked --------------------------------------------------------------------------------------------


def test_small_hot_withdrawal_is_allowed_and_released_once(env: Env) -> None:
    engine = engine_of(env)
    decision = engine.submit(**withdrawal(1, 500))  # type: ignore[arg-type]
    assert decision.status is RequestStatus.APPROVED and decision.rule == "small hot"
    approval = engine.release("w1", actor="signer-service")
    assert approval.digests == (b"\x01" * 32,) and approval.key_id == "hot-eth" and approval.rule == "small hot"
    requests = approval.signing_requests(KeyScheme.SECP256K1)
    assert [(r.request_id, r.payload, r.scheme) for r in requests] == [("w1/0", b"\x01" * 32, KeyScheme.SECP256K1)]
    assert engine.status("w1").status is RequestStatus.RELEASED
    with pytest.raises(PolicyError, match="released"):
        engine.release("w1")
    assert env.actions()[-3:] == [
        "custody.withdrawal.submit",
        "custody.withdrawal.release",
        "custody.withdrawal.release_refused",
    ]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"destination": STRANGER}, "0xSTRANGER is not whitelisted for ETH"),
        ({"destination": COOLING}, "cooling off until"),
        ({"chain_id": "5"}, "chain id '5' is not the configured '1'"),
        ({"fee": 10**6 + 1}, "above the cap"),
        ({"source": "0xNOTOURS"}, "not a custody wallet"),
        ({"key_id": "other-key"}, "does not belong to wallet"),
        ({"source": COLD}, "rule 'no cold' blocks it"),
        ({"asset": "USDC"}, "is not whitelisted for USDC"),  # FRIEND is whitelisted for ETH only
        ({"decoded_changes": {"destination": STRANGER}}, "does not match the withdrawal: destination"),
        ({"decoded_changes": {"amount": 999}}, "does not match the withdrawal: amount: asked 500"),
        ({"decoded_changes": {"asset": "USDC"}}, "does not match the withdrawal: asset"),
        ({"decoded_changes": {"chain": "bitcoin"}}, "does not match the withdrawal: chain"),
    ],
)
def test_checks_block_and_are_audited(env: Env, kwargs: dict[str, object], reason: str) -> None:
    engine = engine_of(env)
    decision = engine.submit(**withdrawal(2, 500, **kwargs))  # type: ignore[arg-type]
    assert decision.status is RequestStatus.BLOCKED
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert env.audit is not None
    entry = list(env.audit.entries(action="custody.withdrawal.submit"))[-1]
    assert entry.details["status"] == "blocked" and reason in " ".join(entry.details["reasons"])
    with pytest.raises(PolicyError, match="blocked"):
        engine.release("w2")


def test_no_matching_rule_blocks(env: Env) -> None:
    engine = engine_of(env)
    whitelist(engine, "0xANY")
    decision = engine.submit(**withdrawal(3, 5, asset="USDC", destination="0xANY"))  # type: ignore[arg-type]
    assert decision.status is RequestStatus.BLOCKED and decision.reasons == ("no policy rule matches this withdrawal",)


def test_cooling_off_ends(env: Env) -> None:
    engine = engine_of(env)
    env.clock.now += HOUR
    assert engine.submit(**withdrawal(4, 10, destination=COOLING)).status is RequestStatus.APPROVED  # type: ignore[arg-type]


# -- approvals ------------------------------------------------------------------------------------------------------


def test_large_withdrawal_needs_two_distinct_approvals(env: Env) -> None:
    engine = engine_of(env)
    args = withdrawal(5, 2_000)
    args["requester"] = "alice"
    decision = engine.submit(**args)  # type: ignore[arg-type]
    assert decision.status is RequestStatus.PENDING
    assert (decision.rule, decision.approvals_required, decision.group) == ("large hot", 2, "treasury")
    assert (decision.decoded.destination, decision.decoded.amount, decision.requester) == (FRIEND, 2_000, "alice")
    assert decision.tier is Tier.HOT and not hasattr(decision, "digests")
    with pytest.raises(PolicyError, match="pending"):
        engine.release("w5")
    with pytest.raises(PolicyError, match="requester cannot approve"):
        engine.approve("w5", approver="alice")
    with pytest.raises(PolicyError, match="not in approver group treasury"):
        engine.approve("w5", approver="dave")
    assert engine.approve("w5", approver="bob").approvals == ("bob",)
    with pytest.raises(PolicyError, match="already approved"):
        engine.approve("w5", approver="bob")
    decision = engine.approve("w5", approver="carol")
    assert decision.status is RequestStatus.APPROVED and decision.approvals == ("bob", "carol")
    approval = engine.release("w5")
    assert approval.approvers == ("bob", "carol")
    assert env.actions().count("custody.withdrawal.approve_refused") == 3


def test_approvals_expire_and_may_be_renewed(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(6, 2_000))  # type: ignore[arg-type]
    engine.approve("w6", approver="alice")
    env.clock.now += 2 * HOUR  # alice's approval no longer counts
    decision = engine.approve("w6", approver="bob")
    assert decision.status is RequestStatus.PENDING and decision.approvals == ("bob",)
    decision = engine.approve("w6", approver="alice")  # renewed
    assert decision.status is RequestStatus.APPROVED


def test_one_deny_vetoes_even_after_approval(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(7, 2_000))  # type: ignore[arg-type]
    engine.approve("w7", approver="alice")
    decision = engine.deny("w7", approver="bob", reason="unknown customer")
    assert decision.status is RequestStatus.DENIED and "denied by bob: unknown customer" in decision.reasons
    with pytest.raises(PolicyError, match="denied"):
        engine.approve("w7", approver="carol")
    engine.submit(**withdrawal(8, 10))  # type: ignore[arg-type]  (approved by the allow rule)
    with pytest.raises(PolicyError, match="may not deny"):
        engine.deny("w8", approver="mallory", reason="x")
    assert engine.deny("w8", approver="erin", reason="suspicious").status is RequestStatus.DENIED
    with pytest.raises(PolicyError, match="denied"):
        engine.release("w8")


def test_approved_but_not_released_in_time_expires(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(9, 10))  # type: ignore[arg-type]
    env.clock.now += HOUR + 1
    with pytest.raises(PolicyError, match="expired"):
        engine.release("w9")
    assert engine.status("w9").status is RequestStatus.EXPIRED


def test_whitelist_changes_through_the_engine(env: Env) -> None:
    engine = engine_of(env)
    change = engine.propose_whitelist_change(op="add", chain="ethereum", address="0xNEW", proposer="ops")
    assert [p.change.change_id for p in engine.pending_whitelist_changes()] == [change.change_id]
    engine.cancel_whitelist_change(change.change_id, actor="ops", reason="wrong address")
    assert engine.pending_whitelist_changes() == []
    with pytest.raises(PolicyError, match="no network 'solana'"):
        engine.propose_whitelist_change(op="add", chain="solana", address="x", proposer="ops")
    assert env.actions()[-2:] == ["custody.whitelist.cancel", "custody.whitelist.propose_refused"]


def test_release_rechecks_the_whitelist(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(10, 10))  # type: ignore[arg-type]
    change = engine.propose_whitelist_change(op="remove", chain="ethereum", address=FRIEND, asset="ETH", proposer="ops")
    for name in ("carol", "dave", "erin"):
        engine.approve_whitelist_change(
            change.change_id, approver=name, signature=private_key(name).sign(change.message())
        )
    with pytest.raises(PolicyError, match="blocked at release: destination 0xFRIEND is not whitelisted"):
        engine.release("w10")
    assert engine.status("w10").status is RequestStatus.BLOCKED


def test_resubmitting_is_idempotent_but_a_different_transaction_is_refused(env: Env) -> None:
    engine = engine_of(env)
    first = engine.submit(**withdrawal(11, 10))  # type: ignore[arg-type]
    assert engine.submit(**withdrawal(11, 10)) == first  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="exists already"):
        engine.submit(**withdrawal(11, 20))  # type: ignore[arg-type]


# -- velocity -------------------------------------------------------------------------------------------------------


def test_velocity_limit_over_a_sliding_window(env: Env) -> None:
    engine = engine_of(env)
    for wid in range(20, 25):  # 5 x 1,000 = the hourly limit
        assert engine.submit(**withdrawal(wid, 1_000)).status is RequestStatus.APPROVED  # type: ignore[arg-type]
        env.clock.now += 60 * SECOND
    decision = engine.submit(**withdrawal(25, 1))  # type: ignore[arg-type]
    assert decision.status is RequestStatus.BLOCKED and "velocity limit 'eth hourly'" in decision.reasons[0]
    env.clock.now = T0 + HOUR  # the first withdrawal leaves the window
    assert engine.submit(**withdrawal(26, 1_000)).status is RequestStatus.APPROVED  # type: ignore[arg-type]
    assert engine.submit(**withdrawal(27, 1)).status is RequestStatus.BLOCKED  # type: ignore[arg-type]


def test_velocity_is_checked_again_when_the_last_approval_arrives(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(30, 4_000))  # type: ignore[arg-type]  (pending: large)
    for wid in (31, 32):
        engine.submit(**withdrawal(wid, 1_000))  # type: ignore[arg-type]  (allowed, 2,000 used)
    engine.approve("w30", approver="alice")
    decision = engine.approve("w30", approver="bob")
    assert decision.status is RequestStatus.BLOCKED and "velocity" in decision.reasons[0]


def test_per_account_and_per_tier_limits(tmp_path: Path) -> None:
    limits = [
        VelocityLimit("per account", "ETH", HOUR, 1_500, per=VelocityScope.ACCOUNT),
        VelocityLimit("warm tier", "ETH", HOUR, 100, tier=Tier.WARM),
    ]
    env = Env(tmp_path, config=policy_config(limits=limits))
    engine = env.start()
    whitelist(engine, FRIEND)
    assert engine.submit(**withdrawal(40, 1_000, account=1)).status is RequestStatus.APPROVED  # type: ignore[arg-type]
    assert engine.submit(**withdrawal(41, 1_000, account=2)).status is RequestStatus.APPROVED  # type: ignore[arg-type]
    assert engine.submit(**withdrawal(42, 600, account=1)).status is RequestStatus.BLOCKED  # type: ignore[arg-type]
    engine.submit(**withdrawal(43, 101, source=WARM, key_id="k"))  # type: ignore[arg-type]
    decision = engine.approve("w43", approver="dave")
    assert decision.status is RequestStatus.BLOCKED and "warm tier" in decision.reasons[0]
    engine.close()


# -- persistence, configuration, failure ------------------------------------------------------------------------------


def test_state_survives_a_restart(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(50, 2_000))  # type: ignore[arg-type]
    engine.approve("w50", approver="alice")
    engine.submit(**withdrawal(51, 1_000))  # type: ignore[arg-type]
    pending_change = engine.propose_whitelist_change(op="add", chain="ethereum", address="0xNEW", proposer="ops")
    engine.approve_whitelist_change(
        pending_change.change_id, approver="alice", signature=private_key("alice").sign(pending_change.message())
    )
    engine = env.restart()
    assert engine.status("w50").approvals == ("alice",)
    assert engine.approve("w50", approver="bob").status is RequestStatus.APPROVED
    assert engine.whitelist.allows("ethereum", "ETH", FRIEND, env.clock.now)
    assert engine.whitelist.change(pending_change.change_id).signatures.keys() == {"alice"}
    # the velocity window came back too: 2,000 + 1,000 used, so 2,001 more is over the 5,000 limit
    args = withdrawal(52, 2_001)
    decision = engine.submit(**args)  # type: ignore[arg-type]
    engine.approve("w52", approver="alice")
    assert engine.approve("w52", approver="carol").status is RequestStatus.BLOCKED
    assert engine.release("w51").digests == (bytes([51]) * 32,)
    assert decision.status is RequestStatus.PENDING
    assert verify(env.tmp / "audit.log").ok


def test_a_second_engine_on_the_same_state_is_refused(env: Env) -> None:
    with pytest.raises(Exception, match="in use by another process"):
        PolicyEngine(
            env.config,
            whitelist_approvers=approvers(),
            audit=env.audit,  # type: ignore[arg-type]
            clock=env.clock,
            state_path=env.tmp / "policy.db",
        )


def test_a_failed_save_stops_the_engine(env: Env) -> None:
    engine = engine_of(env)
    other = sqlite3.connect(env.tmp / "policy.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # someone else holds the database's write lock: saving fails
    with pytest.raises(PolicyError, match=r"could not be saved.*locked"):
        engine.submit(**withdrawal(60, 10))  # type: ignore[arg-type]
    other.execute("ROLLBACK")
    other.close()
    with pytest.raises(PolicyError, match="stopped"):
        engine.submit(**withdrawal(61, 10))  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="stopped"):
        engine.release("w60")
    engine = env.restart()
    with pytest.raises(PolicyError, match="no request w60"):
        engine.status("w60")


def test_an_audit_failure_decides_nothing(env: Env) -> None:
    engine = engine_of(env)
    assert env.audit is not None
    env.audit.close()
    with pytest.raises(Exception, match="closed"):
        engine.submit(**withdrawal(70, 10))  # type: ignore[arg-type]
    engine.close()
    assert PolicyStore(env.tmp / "policy.db").request("w70") is None


def test_decided_requests_stay_queryable_after_a_restart(env: Env) -> None:
    engine = engine_of(env)
    engine.submit(**withdrawal(71, 10))  # type: ignore[arg-type]
    engine.release("w71")
    engine.submit(**withdrawal(72, 10, destination=STRANGER))  # type: ignore[arg-type]
    engine = env.restart()
    assert engine.status("w71").status is RequestStatus.RELEASED
    assert [d.request_id for d in engine.requests(RequestStatus.BLOCKED)] == ["w72"]
    assert [d.request_id for d in engine.requests()] == ["w71", "w72"]
    assert engine.submit(**withdrawal(71, 10)).status is RequestStatus.RELEASED  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="released"):
        engine.release("w71")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rules": []}, "no rules"),
        ({"rules": [Rule("r", RuleAction.APPROVE, approvals=2)]}, "needs a group"),
        ({"rules": [Rule("r", RuleAction.APPROVE, approvals=4, group="treasury")]}, "between 1 and the size"),
        ({"rules": [Rule("r", RuleAction.APPROVE, approvals=1, group="nobody")]}, "unknown approver group 'nobody'"),
        ({"rules": [Rule("r", RuleAction.ALLOW, max_amount=5)]}, "amount bounds need an asset"),
        ({"rules": [Rule("r", RuleAction.ALLOW, asset="ETH", min_amount=9, max_amount=5)]}, "can never match"),
        ({"rules": [Rule("r", RuleAction.ALLOW, approvals=1)]}, "only action 'approve'"),
        ({"rules": [Rule("r", RuleAction.ALLOW), Rule("r", RuleAction.BLOCK)]}, "same name"),
        ({"rules": [Rule("r", RuleAction.ALLOW, chain="solana")]}, "no network 'solana'"),
        ({"limits": [VelocityLimit("l", "ETH", 0, 5)]}, "window must be positive"),
        ({"networks": [Network("ethereum", "1"), Network("ethereum", "5")]}, "more than once"),
    ],
)
def test_bad_policy_configuration_is_refused(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        PolicyEngine(
            policy_config(**overrides),
            whitelist_approvers=approvers(),
            audit=AuditLog.open(tmp_path / "a.log", fsync=False),
            clock=Clock(),
        )


def test_threads_never_overshoot_the_velocity_limit(env: Env) -> None:
    import threading

    engine = engine_of(env)
    decisions: list[RequestStatus] = []

    def work(t: int) -> None:
        for i in range(15):
            decisions.append(engine.submit(**withdrawal(1_000 + t * 100 + i, 300)).status)  # type: ignore[arg-type]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert decisions.count(RequestStatus.APPROVED) == 5_000 // 300  # exactly what fits in the hourly limit
    assert len(decisions) == 90
    assert verify(env.tmp / "audit.log").ok


def edit_whitelist(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change the saved whitelist state by hand, as someone with access to the file could."""
    with sqlite3.connect(path) as db:
        state = json.loads(db.execute("SELECT value FROM blobs WHERE name = 'whitelist'").fetchone()[0])
        edit(state)
        db.execute("UPDATE blobs SET value = ? WHERE name = 'whitelist'", (json.dumps(state).encode(),))
    db.close()


def test_entries_written_into_the_state_file_by_hand_are_not_usable(env: Env) -> None:
    engine = engine_of(env)
    engine.close()

    def forge(state: dict[str, Any]) -> None:
        forged = dict(state["entries"][0], address="0xATTACKER", asset="", change_id="wl-99")
        state["entries"].append(forged)

    edit_whitelist(env.tmp / "policy.db", forge)
    engine = env.start()
    assert not engine.whitelist.allows("ethereum", "ETH", "0xATTACKER", env.clock.now)
    assert engine.whitelist.allows("ethereum", "ETH", FRIEND, env.clock.now)  # the signed entries stay
    decision = engine.submit(**withdrawal(80, 10, destination="0xATTACKER"))  # type: ignore[arg-type]
    assert decision.status is RequestStatus.BLOCKED
    assert env.audit is not None
    problems = list(env.audit.entries(action="custody.whitelist.state_discrepancy"))[-1].details["problems"]
    assert "0xATTACKER" in " ".join(problems)


def test_an_applied_change_short_of_valid_signatures_is_dropped_on_load(env: Env) -> None:
    engine = engine_of(env)
    engine.close()

    def swap(state: dict[str, Any]) -> None:
        first = state["changes"][0]  # FRIEND for ETH, signed by alice, bob and carol
        first["signatures"]["bob"] = first["signatures"]["alice"]  # a signature that does not verify for bob

    edit_whitelist(env.tmp / "policy.db", swap)
    engine = env.start()
    assert not engine.whitelist.allows("ethereum", "ETH", FRIEND, env.clock.now)
    assert engine.whitelist.allows("ethereum", "ETH", COOLING, env.clock.now + HOUR)  # the other change is intact
    assert any("has 2 valid signatures of the 3 required" in p for p in engine.whitelist.discrepancies)


def test_a_removed_change_is_noticed_on_load(env: Env) -> None:
    engine = engine_of(env)
    engine.close()
    edit_whitelist(env.tmp / "policy.db", lambda state: state["changes"].pop(0))
    engine = env.start()
    assert any("not numbered 1, 2, 3" in p for p in engine.whitelist.discrepancies)
    assert not engine.whitelist.allows("ethereum", "ETH", FRIEND, env.clock.now)


def test_a_clean_restart_reports_nothing(env: Env) -> None:
    engine = env.restart()
    assert engine.whitelist.discrepancies == []
    assert "custody.whitelist.state_discrepancy" not in env.actions()


def test_rules_for_unlisted_destinations(tmp_path: Path) -> None:
    base = policy_config()
    address_book = Rule(
        "address book",
        RuleAction.APPROVE,
        asset="ETH",
        approvals=1,
        group="security",
        destination=DestinationMatch.UNLISTED,
    )
    env = Env(tmp_path, config=policy_config(rules=[*base.rules, address_book]))
    engine = env.start()
    whitelist(engine, FRIEND, asset="ETH")
    whitelist(engine, COOLING, cooling_off_ns=HOUR)
    assert engine.submit(**withdrawal(90, 10)).rule == "small hot"  # type: ignore[arg-type]  (whitelisted)
    decision = engine.submit(**withdrawal(91, 10, destination=STRANGER))  # type: ignore[arg-type]
    assert (decision.status, decision.rule) == (RequestStatus.PENDING, "address book")
    assert engine.submit(**withdrawal(92, 10, destination=COOLING)).rule == "address book"  # type: ignore[arg-type]
    assert engine.approve("w91", approver="dave").status is RequestStatus.APPROVED
    assert engine.release("w91").decoded.destination == STRANGER
    # the approving rule disappears from the configuration: what it approved is not released
    engine.approve("w92", approver="erin")
    env.config = base
    engine = env.restart()
    with pytest.raises(PolicyError, match="rule 'address book' that approved it is no longer configured"):
        engine.release("w92")
    engine.close()


def test_any_destination_rule(tmp_path: Path) -> None:
    rules = [Rule("anything small", RuleAction.ALLOW, asset="ETH", max_amount=100, destination=DestinationMatch.ANY)]
    env = Env(tmp_path, config=policy_config(rules=rules))
    engine = env.start()
    assert engine.submit(**withdrawal(95, 100, destination=STRANGER)).status is RequestStatus.APPROVED  # type: ignore[arg-type]
    decision = engine.submit(**withdrawal(96, 101, destination=STRANGER))  # type: ignore[arg-type]
    assert decision.reasons == (
        "destination 0xSTRANGER is not whitelisted for ETH on ethereum",
        "no policy rule matches this withdrawal",
    )
    engine.close()
