"""A fake plugin implementing every hook, each with the smallest answer that shows it flows through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from exchange_framework import hookimpl
from exchange_framework.interfaces import (
    AdminPage,
    CustodyBalance,
    Decision,
    DepositAddress,
    Entry,
    Outcome,
    TransactionStatus,
    TxState,
)
from exchange_framework.ledger.postings import check_balanced

__version__ = "0.0.1"

NAME = "fake"


class FakeJournalBackend:
    name = "fake-journal"

    def open(self, config: Any) -> Any:
        return {"opened": config.brand.name}


class FakeLedgerStore:
    """An in-memory ledger store: balanced entries above the high-water mark."""

    name = "fake-ledger"

    def __init__(self) -> None:
        self.mark = 0
        self.totals: dict[tuple[str, str], int] = {}

    async def create_schema(self) -> None:
        pass

    async def ensure_assets(self, assets: Any) -> None:
        pass

    async def last_seq(self, consumer: str = "settlement") -> int:
        return self.mark

    async def apply(self, entries: list[Entry], consumer: str = "settlement") -> int:
        for entry in entries:
            if entry.seq <= self.mark:
                continue
            check_balanced(entry.postings)
            for p in entry.postings:
                self.totals[(p.account, p.asset)] = self.totals.get((p.account, p.asset), 0) + p.amount
            self.mark = entry.seq
        return self.mark

    async def balances(self, *, account: str | None = None, asset: str | None = None) -> dict[tuple[str, str], int]:
        return dict(self.totals)

    async def close(self) -> None:
        pass


class FakeLedgerBackend:
    name = "fake-ledger"

    def open(self, config: Any) -> FakeLedgerStore:
        return FakeLedgerStore()


class FakeSubscriber:
    name = "fake-subscriber"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def last_seq(self) -> int:
        return self.seen[-1] if self.seen else 0

    def handle(self, event: Any) -> None:
        if event.seq > self.last_seq():
            self.seen.append(event.seq)

    def close(self) -> None:
        pass


class FakePublisher:
    name = "fake-publisher"

    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, event: Any) -> None:
        self.published.append(event)

    def close(self) -> None:
        pass


class FakeChain:
    name = "fakechain"
    chain_id = "fake-1"
    native_asset = "FAKE"
    required_confirmations = 2

    def deposit_address(self, account: int) -> Any:
        return DepositAddress(f"fake1{account:08d}")

    def validate_address(self, address: str) -> bool:
        return address.startswith("fake1")

    def tip_height(self) -> int:
        return 0

    def block_header(self, height: int) -> Any:
        return None

    def scan(self, from_height: int, addresses: Any, *, max_blocks: int = 100) -> list[Any]:
        return []

    def build_withdrawal(self, **kwargs: Any) -> Any:
        raise ValueError("fakechain cannot withdraw")

    def decode(self, unsigned: Any) -> Any:
        raise ValueError("fakechain cannot decode")

    def assemble(self, unsigned: Any, signatures: Any) -> bytes:
        raise ValueError("fakechain cannot assemble")

    def broadcast(self, signed_tx: bytes) -> str:
        return signed_tx.hex()

    def transaction_status(self, txid: str) -> Any:
        return TransactionStatus(txid, TxState.CONFIRMED, 3)


class FakeSigner:
    name = "fake-signer"
    schemes = frozenset({"secp256k1"})

    def create_key(self, key_id: str, scheme: Any) -> bytes:
        return key_id.encode()

    def key_scheme(self, key_id: str) -> Any:
        return "secp256k1"

    def public_key(self, key_id: str) -> bytes:
        return key_id.encode()

    def sign(self, request: Any) -> bytes:
        return b"signed:" + request.payload


class FakeKyc:
    name = "fake-kyc"

    def start(self, request: Any) -> str:
        return f"case-{request.account}"

    def status(self, reference: str) -> Decision:
        return Decision.allow(provider=self.name)


class FakeSanctions:
    name = "fake-sanctions"

    def screen_party(self, name: str, country: str) -> Decision:
        return Decision.reject("listed", provider=self.name) if name == "Bad Actor" else Decision.allow()

    def screen_address(self, chain: str, address: str) -> Decision:
        return Decision.allow(provider=self.name)


class FakeTravelRule:
    name = "fake-travel-rule"

    def required(self, withdrawal: Any) -> bool:
        return True

    def send(self, withdrawal: Any, originator: Any) -> str:
        return f"tr-{withdrawal.withdrawal_id}"

    def status(self, reference: str) -> Decision:
        return Decision.hold("counterparty has not answered", provider=self.name)


@hookimpl
def startup(config: Any) -> None:
    config.plugin_settings(NAME)  # reads its own settings; nothing to check


@hookimpl
def shutdown() -> None:
    pass


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command()
    @click.argument("who", default="world")
    def hello(who: str) -> None:
        """Say hello (a command added by a plugin)."""
        click.echo(f"hello, {who}")

    @cli.command(name="plugins")
    def shadow() -> None:
        """Try to replace a built-in command (the built-in wins)."""
        click.echo("shadowed!")


@hookimpl
def register_journal_backends(config: Any) -> list[Any]:
    return [FakeJournalBackend()]


@hookimpl
def register_ledger_stores() -> list[Any]:
    return [FakeLedgerBackend()]


@hookimpl
def register_event_subscribers() -> list[Any]:
    return [FakeSubscriber()]


@hookimpl
def register_market_data_publishers() -> list[Any]:
    return [FakePublisher()]


@hookimpl
def register_chain_adapters() -> list[Any]:
    return [FakeChain()]


@hookimpl
def register_custody_signers() -> list[Any]:
    return [FakeSigner()]


@hookimpl
def custody_balances(assets: list[str]) -> list[CustodyBalance]:
    return [CustodyBalance(source=NAME, asset=asset, wallet="hot", amount=100) for asset in assets]


@hookimpl
def register_kyc_providers() -> list[Any]:
    return [FakeKyc()]


@hookimpl
def register_sanctions_screeners() -> list[Any]:
    return [FakeSanctions()]


@hookimpl
def register_travel_rule_providers() -> list[Any]:
    return [FakeTravelRule()]


@hookimpl
def screen_onboarding(request: Any) -> Decision | None:
    if request.country == "KP":
        return Decision.reject("sanctioned jurisdiction", provider=NAME)
    return Decision.allow(provider=NAME)


@hookimpl
def screen_deposit(request: Any) -> Decision | None:
    if request.amount >= 1_000_000:
        return Decision.hold("large deposit", provider=NAME)
    return None  # no opinion


@hookimpl
def screen_withdrawal(request: Any) -> Decision:
    return Decision(Outcome.ALLOW, (), NAME)


@hookimpl
def register_routes() -> list[Any]:
    return [("/fake", "fake-endpoint")]


@hookimpl
def register_admin_pages() -> list[AdminPage]:
    return [AdminPage(name="fake-page", title="Fake page", path="/admin/fake")]


@hookimpl
def register_template_dirs() -> list[Path]:
    return [Path(__file__).parent / "templates"]


@hookimpl
def prepare_jinja2_environment(env: Any) -> None:
    env.filters["shout"] = lambda text: text.upper()


@hookimpl
def extra_template_vars(template: str) -> dict[str, Any]:
    return {"fake_template": template}


@hookimpl
def asgi_wrapper() -> Any:
    def wrap(app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("fake", True)
            await app(scope, receive, send)

        return wrapped

    return wrap
