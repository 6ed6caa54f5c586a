"""Fixtures for the deposit lifecycle: a real development chain, a real engine, a real SQLite deposit store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import coincurve
import pytest
from exchange_devchain import DevChain, DevChainAdapter, address_of
from exchange_devchain.plugin import DEV_XPUB

from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event, FundsCredited
from exchange_framework.engine.market import AssetSpec
from exchange_framework.funding import DepositStore, DepositTracker
from exchange_framework.interfaces import Decision, DepositRequest

PAYER_KEY = hashlib.sha256(b"a customer's own wallet").digest()
PAYER = address_of(coincurve.PrivateKey(PAYER_KEY).public_key.format())


class EngineSink:
    """The matching engine fed with sequence numbers, as a shard does (without the journal)."""

    def __init__(self) -> None:
        self.engine = MatchingEngine({"DEV": AssetSpec("DEV", 8), "DUSD": AssetSpec("DUSD", 6)}, {})
        self.seq = 0
        self.credits: list[FundsCredited] = []
        self.down = False

    def __call__(self, command: Command) -> Sequence[Event]:
        if self.down:
            raise ConnectionError("the sequencer is not accepting commands")
        self.seq += 1
        self.engine.apply(self.seq, command)
        events, self.engine.events = self.engine.events, []
        self.credits += [e for e in events if isinstance(e, FundsCredited)]
        return events

    def balance(self, account: int, asset: str) -> int:
        acct = self.engine.accounts.get(account)
        return acct.available.get(asset, 0) if acct is not None else 0


def allow_all(request: DepositRequest) -> Decision:
    return Decision.allow(provider="test")


@pytest.fixture
def node(tmp_path: Path) -> DevChain:
    return DevChain(tmp_path / "chain")


@pytest.fixture
def adapter(node: DevChain) -> DevChainAdapter:
    return DevChainAdapter(node, xpub=DEV_XPUB, required_confirmations=3)


@pytest.fixture
def sink() -> EngineSink:
    return EngineSink()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DepositStore]:
    s = DepositStore(tmp_path / "deposits.db")
    yield s
    s.close()


@pytest.fixture
def make_tracker(adapter: DevChainAdapter, store: DepositStore, sink: EngineSink) -> Callable[..., DepositTracker]:
    def make(**kwargs: object) -> DepositTracker:
        options: dict[str, object] = {"submit": sink, "screen": allow_all, "start_height": 0}
        options.update(kwargs)
        return DepositTracker(adapter, options.pop("store", store), **options)  # type: ignore[arg-type]

    return make
