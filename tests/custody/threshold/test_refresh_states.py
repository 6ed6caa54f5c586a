"""Hypothesis state machine: refreshes, repairs, signatures, node outages and restarts in any order.

The coordinator (:class:`ThresholdSigner`) and five real :class:`SignerNode` objects (real sealed stores, the node's
own checks) run in one process: the only thing replaced is the socket, by a call that still encodes and decodes every
message. Invariants after every step: the key and its secret never change; every node the coordinator does not mark
as needing repair holds exactly one share, of the current epoch, matching its verifying share, and no pending share
outlives a commit; any three such shares interpolate to the secret; a signature succeeds exactly when three such
nodes are up.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from exchange_threshold import frost
from exchange_threshold.channel import public_bytes
from exchange_threshold.groups import ED25519_SHA512
from exchange_threshold.messages import ErrorReply, Reply, Request, decode_reply, decode_request, encode
from exchange_threshold.node import NodeConfig, SignerNode, load_identity
from exchange_threshold.shares import key_share_from_json
from exchange_threshold.signer import NodeAddress, ThresholdSigner
from exchange_threshold.store import SealedStore
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from exchange_framework.interfaces import KeyScheme, SigningError, SigningRequest

from .conftest import FAST_KDF

IDS = [1, 2, 3, 4, 5]
SUITE = ED25519_SHA512
KEY = "states"
DOWN = st.sets(st.sampled_from(IDS), max_size=3)  # the nodes down while a step runs


class _Line:
    """Stands for an open channel to an in-process node."""

    def __init__(self, node: SignerNode) -> None:
        self.node = node

    def close(self) -> None:
        """Nothing to close."""


class _InProcessSigner(ThresholdSigner):
    """The real coordinator, talking to in-process nodes instead of over sockets."""

    def __init__(self, store: SealedStore, machine: RefreshStates) -> None:
        addresses = [NodeAddress(identifier=i, host="in-process", port=1, public_key="00" * 32) for i in IDS]
        super().__init__(store, addresses, threshold=3)
        self.machine = machine

    def _open(self, ids: Sequence[int]) -> dict[int, Any]:
        return {i: _Line(self.machine.nodes[i]) for i in ids if i in self.machine.up}

    def _ask_all(self, channels: Mapping[int, Any], requests: Mapping[int, Request]) -> dict[int, Reply]:
        out: dict[int, Reply] = {}
        for i, request in requests.items():
            if i not in self.machine.up:  # went down meanwhile
                out[i] = ErrorReply(f"node {i}: connection lost")
                continue
            out[i] = decode_reply(encode(channels[i].node.handle(decode_request(encode(request)))))
        return out


class RefreshStates(RuleBasedStateMachine):
    """Random sequences of refreshes, repairs, signatures, outages and restarts on one key."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.stores = {i: SealedStore(self.root / f"node{i}", b"pw", kdf=FAST_KDF) for i in IDS}
        identities = {i: public_bytes(load_identity(self.stores[i], create=True)) for i in IDS}
        coordinator = SealedStore(self.root / "coordinator", b"pw", kdf=FAST_KDF)
        coordinator_key = public_bytes(load_identity(coordinator, create=True))
        self.configs = {
            i: NodeConfig(
                identifier=i,
                dir=self.root / f"node{i}",
                host="127.0.0.1",
                port=0,
                coordinator_keys=frozenset({coordinator_key}),
                peers={j: identities[j] for j in IDS if j != i},
                refresh_guard_seconds=0.0,  # every step here is a new refresh: no guard between them
            )
            for i in IDS
        }
        self.nodes = {i: SignerNode(self.configs[i], self.stores[i]) for i in IDS}
        self.up = set(IDS)
        self.signer = _InProcessSigner(coordinator, self)
        self.messages = 0

    def teardown(self) -> None:
        self.signer.close()
        self._tmp.cleanup()

    @initialize()
    def create(self) -> None:
        self.public_key = self.signer.create_key(KEY, KeyScheme.ED25519)
        shares = self._shares()
        self.secret = self._interpolate({i: shares[i] for i in (1, 2, 3)})

    def _shares(self) -> dict[int, Any]:
        out = {}
        for i in IDS:
            names = self.stores[i].names(f"keys/{KEY}")
            assert len(names) <= 1, f"node {i} holds several shares: {names}"
            if names:
                out[i] = key_share_from_json(self.stores[i].get(names[0]) or b"")
        return out

    def _interpolate(self, shares: Mapping[int, Any]) -> int:
        ids = list(shares)
        return sum(frost.lagrange_coefficient(SUITE, i, ids) * shares[i].secret_share for i in ids) % SUITE.order

    def _usable(self) -> set[int]:
        return set(IDS) - set(self.signer.key_state(KEY).needs_repair)

    @rule(node=st.sampled_from(IDS))
    def restart(self, node: int) -> None:
        self.nodes[node] = SignerNode(self.configs[node], SealedStore(self.root / f"node{node}", b"pw"))

    @rule(down=DOWN)
    def refresh(self, down: set[int]) -> None:
        self.up = set(IDS) - down
        before = self.signer.key_state(KEY)
        able = self.up & self._usable()  # enough of them also repair the nodes left behind, first
        try:
            result = self.signer.refresh(KEY)
        except SigningError:
            assert len(able) < 3
            assert self.signer.key_state(KEY).epoch == before.epoch
            return
        assert len(able) >= 3
        assert result.epoch == before.epoch + 1
        assert set(result.prepared) <= self.up and len(result.prepared) >= 3
        assert set(result.needs_repair) == set(IDS) - self.up  # every node up got its new share, by repair if need be

    @rule(node=st.sampled_from(IDS), down=DOWN)
    def repair(self, node: int, down: set[int]) -> None:
        self.up = set(IDS) - down
        state = self.signer.key_state(KEY)
        helpers = self.up & self._usable() - {node}
        try:
            self.signer.repair(KEY, node)
        except SigningError:
            assert node not in self.up or len(helpers) < 3
            return
        assert node in self.up and node not in self.signer.key_state(KEY).needs_repair
        assert self.signer.key_state(KEY).epoch == state.epoch

    @rule(message=st.binary(min_size=1, max_size=40), down=DOWN)
    def sign(self, message: bytes, down: set[int]) -> None:
        self.up = set(IDS) - down
        usable = self.up & self._usable()
        self.messages += 1
        request = SigningRequest(f"s{self.messages}", KEY, "solana", message, KeyScheme.ED25519)
        try:
            signature = self.signer.sign(request)
        except SigningError:
            assert len(usable) < 3
            return
        assert len(usable) >= 3 and set(self.signer.last_signers) <= usable
        assert frost.verify_signature(SUITE, self.public_key, message, signature)

    @invariant()
    def shares_of_the_current_epoch_give_the_same_secret(self) -> None:
        if not hasattr(self, "secret"):
            return
        state = self.signer.key_state(KEY)
        assert self.signer.public_key(KEY) == self.public_key
        shares = self._shares()
        usable = self._usable()
        for i in usable:
            assert shares[i].epoch == state.epoch and shares[i].transcript == state.transcript
            assert SUITE.base_mul(shares[i].secret_share) == state.verifying_shares[i]
            assert not self.stores[i].names(f"pending/{KEY}")  # committed or dropped, never left behind
        for subset in itertools.combinations(sorted(usable), 3):
            assert self._interpolate({i: shares[i] for i in subset}) == self.secret


RefreshStates.TestCase.settings = settings(max_examples=20, stateful_step_count=10, deadline=None)
test_refresh_states = pytest.mark.slow(RefreshStates.TestCase)
