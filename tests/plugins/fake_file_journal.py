"""A fake plugin that registers a journal backend named "file", like the built-in default."""

from __future__ import annotations

from typing import Any

from exchange_framework import hookimpl


class ReplacementFileJournal:
    name = "file"

    def open(self, config: Any) -> Any:
        return "replacement journal"


@hookimpl
def register_journal_backends() -> list[Any]:
    return [ReplacementFileJournal()]
