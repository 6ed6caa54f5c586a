"""SIGKILL the policy engine mid-stream: every acknowledged release survives, every saved decision is audited.

Run as a script, this file is the worker: it submits and releases small withdrawals with fsync on, printing each
release once ``release`` has returned (acknowledged).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from exchange_framework.audit import AuditLog, ProblemKind, verify
from exchange_framework.custody.policy import PolicyEngine, RequestStatus
from exchange_framework.custody.rules import Rule, RuleAction, Tier
from tests.crash import run_and_kill
from tests.custody.test_policy import FRIEND, policy_config, whitelist, withdrawal
from tests.custody.test_whitelist import approvers

CONFIG = policy_config(rules=[Rule("all hot", RuleAction.ALLOW, tier=Tier.HOT)], limits=[])


def open_engine(directory: Path, *, recover: bool = False) -> tuple[AuditLog, PolicyEngine]:
    audit = AuditLog.open(directory / "audit.log", recover_torn_tail=recover)
    engine = PolicyEngine(
        CONFIG, whitelist_approvers=approvers(), audit=audit, clock=time.time_ns, state_path=directory / "policy.db"
    )
    return audit, engine


def worker(directory: Path, first: int) -> None:
    _audit, engine = open_engine(directory)
    if not engine.whitelist.allows("ethereum", "ETH", FRIEND, time.time_ns()):
        whitelist(engine, FRIEND)
    print("ready", flush=True)
    for wid in range(first, first + 100_000):
        engine.submit(**withdrawal(wid, 1))  # type: ignore[arg-type]
        engine.release(f"w{wid}")
        print(f"released {wid}", flush=True)


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_release(tmp_path: Path) -> None:
    first = 1
    acknowledged: list[int] = []
    for round_ in range(3):
        lines = run_and_kill(
            Path(__file__), [str(tmp_path), str(first)], tmp_path / f"stderr-{round_}", kill_after=0.4 + 0.3 * round_
        )
        done = [int(line.split()[1]) for line in lines if line.startswith("released ")]
        acknowledged += done
        report = verify(tmp_path / "audit.log")
        if not report.ok:  # the only damage a crash may leave is an incomplete last line
            assert report.problem is not None and report.problem.kind is ProblemKind.TORN_TAIL, report.problem
        audit, engine = open_engine(tmp_path, recover=True)
        assert verify(tmp_path / "audit.log").ok
        for wid in done:
            assert engine.status(f"w{wid}").status is RequestStatus.RELEASED
        audited = {e.target for e in audit.entries(action="custody.withdrawal.submit")}
        released = {e.target for e in audit.entries(action="custody.withdrawal.release")}
        for decision in engine.requests():
            assert decision.request_id in audited  # audited before it was saved
            if decision.status is RequestStatus.RELEASED:
                assert decision.request_id in released
        first = max([d.withdrawal_id for d in engine.requests()], default=0) + 1
        engine.close()
        audit.close()
    assert len(acknowledged) > 3, "the worker barely ran: the test proved nothing"


if __name__ == "__main__":
    worker(Path(sys.argv[1]), int(sys.argv[2]))
