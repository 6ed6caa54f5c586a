"""A node's shares by epoch on a real sealed store: commit, pending, old epochs deleted, crash leftovers cleaned."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from exchange_threshold.dkg import DkgParticipant, KeyShare
from exchange_threshold.groups import ED25519_SHA512
from exchange_threshold.shares import OldEpochError, ShareBook, key_share_from_json, key_share_to_json
from exchange_threshold.store import SealedStore

from exchange_framework.interfaces import SigningError

from .conftest import FAST_KDF

IDS = [1, 2, 3]


@pytest.fixture(scope="module")
def share() -> KeyShare:
    parts = {i: DkgParticipant(ED25519_SHA512, i, 2, IDS, b"book") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    return parts[1].finish({i: outgoing[i][1] for i in IDS if i != 1})


def _at(share: KeyShare, epoch: int, refresh: int = 0) -> KeyShare:
    """The share as of ``epoch`` (``refresh`` tells two refreshes to the same epoch apart)."""
    return replace(
        share,
        epoch=epoch,
        secret_share=(share.secret_share + epoch + 1000 * refresh) % ED25519_SHA512.order,
        transcript=bytes([epoch, refresh]) * 16,
    )


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.sealed"))


def test_epochs_pending_and_commit(tmp_path: Path, share: KeyShare) -> None:
    store = SealedStore(tmp_path, b"pw", kdf=FAST_KDF)
    book = ShareBook(store)
    pk = share.group_public_key
    assert book.add_initial("k", share) and not book.add_initial("k", share)
    assert book.status("k", pk) == (0, None) and book.current("k", pk, 0) == share
    book.put_pending("k", _at(share, 1), "session-a")
    assert book.status("k", pk) == (0, 1)
    assert book.current("k", pk, 0) == share  # pending is not current until committed
    with pytest.raises(OldEpochError, match="needs repair"):
        book.current("k", pk, 2)
    # asked at epoch 1 for another refresh's transcript (or none): not committed, the node needs repair
    for transcript in (b"", _at(share, 1, refresh=1).transcript):
        with pytest.raises(OldEpochError, match="needs repair"):
            book.current("k", pk, 1, transcript)
    assert book.status("k", pk) == (0, 1)
    new = book.current("k", pk, 1, _at(share, 1).transcript)  # the coordinator recorded that refresh: committed
    assert new.secret_share == _at(share, 1).secret_share
    with pytest.raises(OldEpochError, match="another refresh"):
        book.current("k", pk, 1, _at(share, 1, refresh=1).transcript)
    assert _files(tmp_path) == [f"keys/k/{pk.hex()}.1.sealed"]  # the epoch-0 share and the pending record are gone
    with pytest.raises(OldEpochError, match="refusing an old epoch"):
        book.current("k", pk, 0)
    with pytest.raises(OldEpochError, match="already holds epoch 1"):
        book.commit("k", share)
    book.commit("k", _at(share, 1))  # committing the same share again is harmless
    with pytest.raises(SigningError, match="different share of epoch 1"):
        book.commit("k", replace(_at(share, 1), secret_share=7))
    with pytest.raises(SigningError, match="holds no share"):
        book.current("other", pk, 0)


def test_a_crash_between_writing_the_new_share_and_deleting_the_old_is_cleaned_up(
    tmp_path: Path, share: KeyShare
) -> None:
    store = SealedStore(tmp_path, b"pw", kdf=FAST_KDF)
    pk = share.group_public_key
    # what a node that died in the middle of a commit leaves: both epochs, and the pending record
    assert store.put(f"keys/k/{pk.hex()}", key_share_to_json(share))
    assert store.put(f"keys/k/{pk.hex()}.1", key_share_to_json(_at(share, 1)))
    assert store.put(f"pending/k/{pk.hex()}.1", key_share_to_json(_at(share, 1)))
    book = ShareBook(SealedStore(tmp_path, b"pw"))  # restarted
    assert book.current("k", pk, 1).epoch == 1
    assert _files(tmp_path) == [f"keys/k/{pk.hex()}.1.sealed"]


def test_an_aborted_refresh_leaves_the_current_share(tmp_path: Path, share: KeyShare) -> None:
    book = ShareBook(SealedStore(tmp_path, b"pw", kdf=FAST_KDF))
    pk = share.group_public_key
    book.add_initial("k", share)
    book.put_pending("k", _at(share, 1), "session-a", now=1000.0)
    book.put_pending("k", _at(share, 1), "session-b", now=2000.0)  # a retried refresh replaces the earlier one
    pending = book.pending("k", pk)
    assert pending is not None and (pending.session, pending.prepared_at, pending.share.epoch) == ("session-b", 2000, 1)
    book.drop_pending("k", pk, 1, "session-a")  # another coordinator's abort leaves this refresh alone
    assert book.status("k", pk) == (0, 1)
    book.drop_pending("k", pk, 1, "session-b")
    assert book.status("k", pk) == (0, None) and book.current("k", pk, 0) == share and book.pending("k", pk) is None
    assert _files(tmp_path) == [f"keys/k/{pk.hex()}.sealed"]


def test_a_share_record_round_trips_with_its_epoch(share: KeyShare) -> None:
    assert key_share_from_json(key_share_to_json(_at(share, 3))) == _at(share, 3)
    legacy = key_share_to_json(share).replace(b', "epoch": 0', b"")  # written before epochs existed
    assert b"epoch" not in legacy and key_share_from_json(legacy).epoch == 0
