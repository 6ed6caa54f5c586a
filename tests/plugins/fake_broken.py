"""Fake plugins that break the rules, one hook each; tests register the one they need."""

from __future__ import annotations

from typing import Any

from exchange_framework import hookimpl


class NoName:
    def open(self, config: Any) -> Any:
        return None


class NotAJournalBackend:
    name = "half"


class UnknownHook:
    @hookimpl
    def register_spaceships(self) -> list[Any]:
        return []


class WrongArgument:
    @hookimpl
    def register_journal_backends(self, cofnig: Any) -> list[Any]:
        return []


class ReturnsNameless:
    @hookimpl
    def register_journal_backends(self) -> list[Any]:
        return [NoName()]


class ReturnsWrongKind:
    @hookimpl
    def register_journal_backends(self) -> list[Any]:
        return [NotAJournalBackend()]


class ReturnsNotAList:
    @hookimpl
    def register_journal_backends(self) -> Any:
        return NotAJournalBackend()


class FailingScreener:
    @hookimpl
    def screen_withdrawal(self) -> Any:
        raise TimeoutError("provider timed out")


class ScreenerReturningText:
    @hookimpl
    def screen_withdrawal(self) -> Any:
        return "allow"
