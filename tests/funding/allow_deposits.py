"""A test plugin whose deposit screening allows everything (a stand-in for a configured compliance provider)."""

from __future__ import annotations

from exchange_framework import hookimpl
from exchange_framework.interfaces import Decision, DepositRequest


@hookimpl
def screen_deposit(request: DepositRequest) -> Decision:
    return Decision.allow(provider="allow-deposits")
