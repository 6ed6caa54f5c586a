"""Screening plugins for wallet tests: a decision set by the test (a real pluggy plugin, not a mock of the wallet)."""

from __future__ import annotations

from exchange_framework import hookimpl
from exchange_framework.interfaces import Decision, DepositRequest, WithdrawalRequest


class Screening:
    """Answers every screening hook with :attr:`decision`, and records what it was asked."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.deposits: list[DepositRequest] = []
        self.withdrawals: list[WithdrawalRequest] = []

    @hookimpl
    def screen_deposit(self, request: DepositRequest) -> Decision:
        self.deposits.append(request)
        return self.decision

    @hookimpl
    def screen_withdrawal(self, request: WithdrawalRequest) -> Decision:
        self.withdrawals.append(request)
        return self.decision
