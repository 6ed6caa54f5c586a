"""Fixtures for API tests: a real exchange served over HTTP with funded users and their API keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange_framework.api.app import create_app
from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import CreditFunds
from exchange_framework.identity import ApiKeyInfo, Scope
from exchange_framework.node import with_data_dir
from tests.api.server import RunningServer, serve


@dataclass
class User:
    account: int
    email: str
    key: ApiKeyInfo  # read + trade
    read_only: ApiKeyInfo


@dataclass
class Exchange:
    server: RunningServer
    alice: User
    bob: User

    @property
    def url(self) -> str:
        return self.server.url


FUNDS = {"BTC": 10 * 10**8, "ETH": 100 * 10**18, "USDT": 1_000_000 * 10**6}


def make_user(server: RunningServer, email: str) -> User:
    identity = server.ctx.identity
    user = identity.create_user(email, "correct horse battery staple")
    key = identity.create_api_key(user.id, label="bot", scopes=[Scope.READ, Scope.TRADE])
    read_only = identity.create_api_key(user.id, label="viewer", scopes=[Scope.READ])
    for asset, amount in FUNDS.items():
        server.call(lambda a=asset, n=amount: server.ctx.node.submit(CreditFunds(user.id, a, n, f"seed:{user.id}:{a}")))
    return User(user.id, email, key, read_only)


@pytest.fixture
def exchange(demo_config: ExchangeConfig, tmp_path: Path) -> Iterator[Exchange]:
    config = with_data_dir(demo_config, tmp_path / "data")
    app = create_app(config, settle_every=0.2)
    with serve(app) as server:
        yield Exchange(server, make_user(server, "alice@example.com"), make_user(server, "bob@example.com"))
