"""The whitelist: a 3-of-5 quorum of Ed25519 signatures by designated approvers, cooling-off, and audit."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.audit import AuditLog, verify
from exchange_framework.custody.whitelist import (
    MESSAGE_PREFIX,
    ChangeStatus,
    Whitelist,
    WhitelistApprovers,
    WhitelistError,
    WhitelistOp,
)

NAMES = ("alice", "bob", "carol", "dave", "erin")
HOUR = 3600 * 10**9
T0 = 1_800_000_000 * 10**9


def private_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(name.encode().ljust(32, b"\x01"))


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def approvers(quorum: int = 3) -> WhitelistApprovers:
    return WhitelistApprovers({name: public_bytes(private_key(name)) for name in NAMES}, quorum=quorum)


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog.open(tmp_path / "audit.log", fsync=False)


@pytest.fixture
def whitelist(audit: AuditLog) -> Whitelist:
    return Whitelist(approvers(), audit)


def actions(audit: AuditLog) -> list[str]:
    return [e.action for e in audit.entries()]


# RFC 8032 section 7.1, tests 1 and 2: (secret key, public key, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_approver_signatures_verify_as_rfc8032_says(secret: str, public: str, message: str, signature: str) -> None:
    keys = WhitelistApprovers({"rfc": bytes.fromhex(public)}, quorum=1)
    assert keys.verify("rfc", bytes.fromhex(signature), bytes.fromhex(message))
    assert public_bytes(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))) == bytes.fromhex(public)
    tampered = bytearray(bytes.fromhex(signature))
    tampered[0] ^= 1
    assert not keys.verify("rfc", bytes(tampered), bytes.fromhex(message))
    assert not keys.verify("rfc", bytes.fromhex(signature), bytes.fromhex(message) + b"x")
    assert not keys.verify("someone", bytes.fromhex(signature), bytes.fromhex(message))


def test_three_of_five_signatures_apply_a_change(whitelist: Whitelist, audit: AuditLog) -> None:
    change = whitelist.propose(op="add", chain="ethereum", address="0xabc", asset="ETH", proposer="alice", now_ns=T0)
    assert change.message().startswith(MESSAGE_PREFIX)
    assert b'"change_id":"wl-1"' in change.message() and b'"expires_ns"' in change.message()
    for i, name in enumerate(("alice", "bob")):
        pending = whitelist.approve(change.change_id, name, private_key(name).sign(change.message()), now_ns=T0 + i)
        assert pending.status is ChangeStatus.PENDING
        assert not whitelist.allows("ethereum", "ETH", "0xabc", T0 + i)
    applied = whitelist.approve(change.change_id, "dave", private_key("dave").sign(change.message()), now_ns=T0 + 5)
    assert applied.status is ChangeStatus.APPLIED and sorted(applied.signatures) == ["alice", "bob", "dave"]
    assert whitelist.allows("ethereum", "ETH", "0xabc", T0 + 5)
    assert not whitelist.allows("ethereum", "USDC", "0xabc", T0 + 5)  # asset-specific entry
    assert not whitelist.allows("bitcoin", "ETH", "0xabc", T0 + 5)
    assert actions(audit) == [
        "custody.whitelist.propose",
        "custody.whitelist.approve",
        "custody.whitelist.approve",
        "custody.whitelist.approve",
        "custody.whitelist.applied",
    ]
    assert verify(audit.store.path).ok  # type: ignore[attr-defined]
    with pytest.raises(WhitelistError, match="is applied, not pending"):
        whitelist.approve(change.change_id, "erin", private_key("erin").sign(change.message()), now_ns=T0 + 6)


def test_chain_wide_entry_and_cooling_off(whitelist: Whitelist) -> None:
    change = whitelist.propose(
        op=WhitelistOp.ADD, chain="ethereum", address="0xdef", proposer="bob", now_ns=T0, cooling_off_ns=HOUR
    )
    for name in ("alice", "carol", "erin"):
        whitelist.approve(change.change_id, name, private_key(name).sign(change.message()), now_ns=T0 + 10)
    assert not whitelist.allows("ethereum", "USDC", "0xdef", T0 + 10 + HOUR - 1)
    assert whitelist.allows("ethereum", "USDC", "0xdef", T0 + 10 + HOUR)
    assert whitelist.allows("ethereum", "ETH", "0xdef", T0 + 10 + HOUR)


def sign_quorum(whitelist: Whitelist, change_id: str, now: int, names: tuple[str, ...] = NAMES[:3]) -> None:
    message = whitelist.change(change_id).change.message()
    for name in names:
        whitelist.approve(change_id, name, private_key(name).sign(message), now_ns=now)


def test_removal_takes_effect_at_quorum(whitelist: Whitelist) -> None:
    add = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)
    sign_quorum(whitelist, add.change_id, T0)
    remove = whitelist.propose(op="remove", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0 + 1)
    assert remove.change_id != add.change_id
    sign_quorum(whitelist, remove.change_id, T0 + 2)
    assert not whitelist.allows("ethereum", "ETH", "0xabc", T0 + 3)
    assert whitelist.entries() == []


@pytest.mark.parametrize(
    ("signer", "as_name", "match"),
    [
        ("erin", "bob", "does not verify with bob's key"),  # forged: someone else's key
        ("mallory", "mallory", "not a designated whitelist approver"),
    ],
)
def test_forged_and_undesignated_signatures_are_refused(
    whitelist: Whitelist, audit: AuditLog, signer: str, as_name: str, match: str
) -> None:
    change = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)
    with pytest.raises(WhitelistError, match=match):
        whitelist.approve(change.change_id, as_name, private_key(signer).sign(change.message()), now_ns=T0)
    assert whitelist.change(change.change_id).signatures == {}
    assert actions(audit)[-1] == "custody.whitelist.approval_refused"


def test_garbage_and_replayed_signatures_are_refused(whitelist: Whitelist) -> None:
    first = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)
    second = whitelist.propose(op="add", chain="ethereum", address="0xbad", proposer="alice", now_ns=T0)
    with pytest.raises(WhitelistError, match="does not verify"):
        whitelist.approve(first.change_id, "bob", b"\x00" * 64, now_ns=T0)
    with pytest.raises(WhitelistError, match="does not verify"):
        whitelist.approve(first.change_id, "bob", b"short", now_ns=T0)
    signature_for_first = private_key("bob").sign(first.message())
    with pytest.raises(WhitelistError, match="does not verify"):  # a signature of one change never approves another
        whitelist.approve(second.change_id, "bob", signature_for_first, now_ns=T0)
    with pytest.raises(WhitelistError, match="does not verify"):  # nor a bare signature of the description text
        whitelist.approve(second.change_id, "bob", private_key("bob").sign(second.describe().encode()), now_ns=T0)


def test_duplicate_signatures_are_refused(whitelist: Whitelist) -> None:
    change = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)
    signature = private_key("bob").sign(change.message())
    whitelist.approve(change.change_id, "bob", signature, now_ns=T0)
    with pytest.raises(WhitelistError, match="already signed"):
        whitelist.approve(change.change_id, "bob", signature, now_ns=T0 + 1)
    whitelist.approve(change.change_id, "carol", private_key("carol").sign(change.message()), now_ns=T0 + 3)
    assert not whitelist.allows("ethereum", "ETH", "0xabc", T0 + 3)  # two distinct signers are not a quorum


def test_expired_change_is_refused(whitelist: Whitelist) -> None:
    change = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0, ttl_ns=HOUR)
    whitelist.approve(change.change_id, "alice", private_key("alice").sign(change.message()), now_ns=T0 + HOUR)
    whitelist.approve(change.change_id, "bob", private_key("bob").sign(change.message()), now_ns=T0 + HOUR)
    with pytest.raises(WhitelistError, match="expired"):
        whitelist.approve(change.change_id, "carol", private_key("carol").sign(change.message()), now_ns=T0 + HOUR + 1)
    assert whitelist.change(change.change_id).status is ChangeStatus.EXPIRED
    assert not whitelist.allows("ethereum", "ETH", "0xabc", T0 + HOUR + 1)
    assert whitelist.pending(T0 + HOUR + 1) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"op": "remove", "address": "0xnothere"}, "nothing to remove"),
        ({"op": "add", "address": ""}, "needs a chain and an address"),
        ({"op": "add", "address": " 0xabc"}, "spaces"),
        ({"op": "add", "address": "0xabc", "cooling_off_ns": -1}, "cooling_off_ns"),
        ({"op": "replace", "address": "0xabc"}, "must be 'add' or 'remove'"),
    ],
)
def test_bad_proposals_are_refused_and_audited(
    whitelist: Whitelist, audit: AuditLog, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(WhitelistError, match=match):
        whitelist.propose(chain="ethereum", proposer="alice", now_ns=T0, **kwargs)  # type: ignore[arg-type]
    assert actions(audit) == ["custody.whitelist.propose_refused"]
    assert whitelist.pending(T0) == []


def test_adding_an_address_twice_is_refused(whitelist: Whitelist) -> None:
    change = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)
    sign_quorum(whitelist, change.change_id, T0)
    with pytest.raises(WhitelistError, match="already whitelisted"):
        whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)


@pytest.mark.parametrize(
    ("keys", "quorum", "match"),
    [
        ({n: public_bytes(private_key(n)) for n in NAMES}, 6, "quorum 6"),
        ({n: public_bytes(private_key(n)) for n in NAMES}, 0, "quorum 0"),
        ({"a": public_bytes(private_key("x")), "b": public_bytes(private_key("x"))}, 1, "the same key"),
        ({"a": b"\x01" * 31}, 1, "32 bytes"),
        ({}, 1, "no whitelist approvers"),
    ],
)
def test_bad_approver_sets_are_refused(keys: dict[str, bytes], quorum: int, match: str) -> None:
    with pytest.raises(WhitelistError, match=match):
        WhitelistApprovers(keys, quorum=quorum)


def test_cancel(whitelist: Whitelist, audit: AuditLog) -> None:
    change = whitelist.propose(op="add", chain="ethereum", address="0xabc", proposer="alice", now_ns=T0)
    whitelist.cancel(change.change_id, "alice", now_ns=T0, reason="typo")
    assert whitelist.change(change.change_id).status is ChangeStatus.CANCELLED
    with pytest.raises(WhitelistError, match="cancelled"):
        whitelist.approve(change.change_id, "bob", private_key("bob").sign(change.message()), now_ns=T0)
    assert "custody.whitelist.cancel" in actions(audit)


SIGNERS = [*NAMES, "mallory"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(SIGNERS),  # who claims to sign
            st.sampled_from(SIGNERS),  # whose key actually signs
            st.sampled_from(["right", "other change", "garbage"]),
            st.sampled_from([0, HOUR // 2, HOUR]),  # time passing before this signature
        ),
        max_size=10,
    )
)
def test_a_change_applies_exactly_when_three_distinct_valid_timely_signatures_arrive(
    attempts: list[tuple[str, str, str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog.open(Path(tmp) / "audit.log", fsync=False)
        whitelist = Whitelist(approvers(), audit)
        change = whitelist.propose(
            op="add", chain="ethereum", address="0xabc", proposer="ops", now_ns=T0, ttl_ns=2 * HOUR
        )
        other = whitelist.propose(op="add", chain="ethereum", address="0xdef", proposer="ops", now_ns=T0)
        now, accepted = T0, set()
        for claimed, actual, what, delay in attempts:
            now += delay
            message = {"right": change.message(), "other change": other.message(), "garbage": b"x"}[what]
            signature = private_key(actual).sign(message)
            valid = (
                claimed == actual
                and claimed in NAMES
                and what == "right"
                and claimed not in accepted
                and now <= change.expires_ns
                and len(accepted) < 3
            )
            try:
                whitelist.approve(change.change_id, claimed, signature, now_ns=now)
            except WhitelistError:
                assert not valid
            else:
                assert valid
                accepted.add(claimed)
            assert whitelist.allows("ethereum", "ETH", "0xabc", now) == (len(accepted) >= 3)
        entries = list(audit.entries())
        assert len(entries) == 2 + len(attempts) + (1 if len(accepted) >= 3 else 0)  # every attempt audited
        audit.close()
