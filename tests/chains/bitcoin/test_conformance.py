"""The Litecoin regtest adapter passes the kernel's chain adapter conformance kit on a real litecoind."""

from __future__ import annotations

import pytest

from exchange_framework.chains.conformance import ChainAdapterConformance

from .conftest import LitecoinHarness


class TestLitecoinConformance(ChainAdapterConformance):
    @pytest.fixture
    def chain_harness(self, harness: LitecoinHarness) -> LitecoinHarness:
        return harness
