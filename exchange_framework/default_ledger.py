"""Built-in plugin: the SQL ledger backends ``sqlite`` (embedded default) and ``postgresql``.

Selected by ``[backends] ledger``; the database is ``[ledger] url`` (or ``DATABASE_URL``). Disable this plugin by
name to replace both with another store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exchange_framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.interfaces import LedgerBackend, LedgerStore


class SqlLedgerBackend:
    """Opens :class:`~exchange_framework.ledger.store.SqlLedgerStore` on the configured URL."""

    def __init__(self, name: str, schemes: tuple[str, ...]) -> None:
        self.name = name
        self.schemes = schemes

    def open(self, config: ExchangeConfig) -> LedgerStore:
        """Return a store on ``config.ledger_url()``, which must be a URL of this backend's database."""
        from exchange_framework.ledger.store import SqlLedgerStore  # the ledger loads only when used

        url = config.ledger_url()
        if not url.startswith(self.schemes):
            raise ValueError(
                f"[backends] ledger = {self.name!r} needs a {self.schemes[0]}// URL in [ledger] url "
                f"(or DATABASE_URL), not {url.split(':', 1)[0]}:"
            )
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return SqlLedgerStore(url)


@hookimpl(trylast=True)
def register_ledger_stores() -> list[LedgerBackend]:
    """Register the ``sqlite`` and ``postgresql`` ledger backends."""
    return [SqlLedgerBackend("sqlite", ("sqlite:",)), SqlLedgerBackend("postgresql", ("postgresql:", "postgres:"))]
