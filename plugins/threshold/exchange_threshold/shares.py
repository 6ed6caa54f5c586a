"""A node's key shares at rest, by epoch: the current share of each key, a pending refresh, old epochs deleted.

Records in the node's :class:`~exchange_threshold.store.SealedStore`:

- ``keys/<key id>/<group public key hex>``: the share from the DKG (epoch 0);
- ``keys/<key id>/<group public key hex>.<epoch>``: the share after ``epoch`` refreshes (or a repair);
- ``pending/<key id>/<group public key hex>.<epoch>``: a refreshed share prepared but not yet committed.

The current share is the one of the highest epoch. Committing a share writes it first and then deletes every older
epoch (and the pending record), so a crash in between leaves the new share current and the old one is deleted on
the next look. A pending share of epoch ``e`` becomes current when the coordinator commits ``e`` or asks for anything
at epoch ``e`` (it records the epoch before telling any node, so a node that missed the commit message catches up).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from exchange_framework.custody.keystore import KEY_ID_PATTERN
from exchange_framework.interfaces import SigningError
from exchange_threshold.dkg import KeyShare
from exchange_threshold.groups import suite
from exchange_threshold.store import SealedStore

__all__ = ["OldEpochError", "PendingShare", "ShareBook", "key_share_from_json", "key_share_to_json"]


class OldEpochError(SigningError):
    """A request names another epoch than the one of the share the node holds: an old share never signs."""


def key_share_to_json(share: KeyShare) -> bytes:
    """Serialize a key share (secret included: only ever written sealed)."""
    s = suite(share.group)
    return json.dumps(
        {
            "group": share.group,
            "identifier": share.identifier,
            "threshold": share.threshold,
            "secret_share": s.serialize_scalar(share.secret_share).hex(),
            "group_public_key": share.group_public_key.hex(),
            "verifying_shares": {str(i): v.hex() for i, v in share.verifying_shares.items()},
            "transcript": share.transcript.hex(),
            "epoch": share.epoch,
        }
    ).encode()


def key_share_from_json(data: bytes) -> KeyShare:
    """Parse what :func:`key_share_to_json` wrote (a record without an epoch is of epoch 0)."""
    raw = json.loads(data)
    s = suite(raw["group"])
    return KeyShare(
        group=raw["group"],
        identifier=raw["identifier"],
        threshold=raw["threshold"],
        secret_share=s.deserialize_scalar(bytes.fromhex(raw["secret_share"])),
        group_public_key=bytes.fromhex(raw["group_public_key"]),
        verifying_shares={int(i): bytes.fromhex(v) for i, v in raw["verifying_shares"].items()},
        transcript=bytes.fromhex(raw["transcript"]),
        epoch=int(raw.get("epoch", 0)),
    )


@dataclass(frozen=True)
class PendingShare:
    """A refreshed share prepared and not yet committed, with the refresh session that made it and when (unix s)."""

    share: KeyShare
    session: str
    prepared_at: float


def _name(folder: str, key_id: str, group_public_key: bytes, epoch: int) -> str:
    base = f"{folder}/{key_id}/{group_public_key.hex()}"
    return base if epoch == 0 else f"{base}.{epoch}"


class ShareBook:
    """The node's shares by key and epoch; every method is atomic with respect to the others."""

    def __init__(self, store: SealedStore) -> None:
        self.store = store
        self._lock = threading.RLock()

    def _epochs(self, folder: str, key_id: str, group_public_key: bytes) -> dict[int, str]:
        if not KEY_ID_PATTERN.fullmatch(key_id) or len(group_public_key) not in (32, 33):
            raise ValueError("invalid key id or group public key")
        stem = group_public_key.hex()
        found: dict[int, str] = {}
        for name in self.store.names(f"{folder}/{key_id}"):
            last = name.rpartition("/")[2]
            if last == stem:
                found[0] = name
            elif last.startswith(stem + ".") and last[len(stem) + 1 :].isdigit():
                found[int(last[len(stem) + 1 :])] = name
        return found

    def _read(self, name: str) -> KeyShare:
        data = self.store.get(name)
        if data is None:
            raise SigningError(f"share record {name} vanished")
        return key_share_from_json(data)

    def status(self, key_id: str, group_public_key: bytes) -> tuple[int | None, int | None]:
        """The epoch of the current share (None: no share) and of a pending refresh (None: none)."""
        with self._lock:
            current = self._epochs("keys", key_id, group_public_key)
            pending = self._epochs("pending", key_id, group_public_key)
            return (max(current) if current else None), (max(pending) if pending else None)

    def current(
        self, key_id: str, group_public_key: bytes, epoch: int | None = None, transcript: bytes = b""
    ) -> KeyShare:
        """The current share; with ``epoch``, insist on it, first committing a pending share of that epoch when
        ``transcript`` is its transcript (the coordinator recorded that very refresh).

        Raise :class:`OldEpochError` if the share held is of another epoch or (``transcript`` given) of another
        refresh, ``SigningError`` if there is none.
        """
        with self._lock:
            pending = self._epochs("pending", key_id, group_public_key)
            current = self._epochs("keys", key_id, group_public_key)
            if epoch is not None and epoch in pending and transcript and (not current or max(current) < epoch):
                candidate = self._read(pending[epoch])
                if candidate.transcript == transcript:
                    self.commit(key_id, candidate)
                    current = self._epochs("keys", key_id, group_public_key)
            if not current:
                raise SigningError(f"this node holds no share of key {key_id!r} with that public key")
            top = max(current)
            self._cleanup(key_id, group_public_key, top)
            if epoch is not None and epoch != top:
                raise OldEpochError(
                    f"key {key_id!r}: this node holds the share of epoch {top}, the request is for epoch {epoch}: "
                    + ("refusing an old epoch" if epoch < top else "this node needs repair (exchange threshold repair)")
                )
            share = self._read(current[top])
            if transcript and share.transcript != transcript:
                raise OldEpochError(
                    f"key {key_id!r}: this node's share of epoch {top} comes from another refresh than the one the "
                    "coordinator recorded: this node needs repair (exchange threshold repair)"
                )
            return share

    def add_initial(self, key_id: str, share: KeyShare) -> bool:
        """Store a DKG share (epoch 0); return False if a share of that key and public key exists."""
        with self._lock:
            if self._epochs("keys", key_id, share.group_public_key):
                return False
            return self.store.put(_name("keys", key_id, share.group_public_key, 0), key_share_to_json(share))

    def put_pending(self, key_id: str, share: KeyShare, session: str, *, now: float | None = None) -> None:
        """Keep a refreshed share as pending, with the refresh session that made it and when (replacing any earlier
        pending share of the key)."""
        with self._lock:
            self.drop_pending(key_id, share.group_public_key)
            name = _name("pending", key_id, share.group_public_key, share.epoch)
            record = json.loads(key_share_to_json(share))
            record |= {"session": session, "prepared_at": time.time() if now is None else now}
            if not self.store.put(name, json.dumps(record).encode()):
                raise SigningError(f"a pending share of key {key_id!r} at epoch {share.epoch} exists already")

    def pending(self, key_id: str, group_public_key: bytes) -> PendingShare | None:
        """The key's pending share with its session and time (None: none)."""
        with self._lock:
            found = self._epochs("pending", key_id, group_public_key)
            if not found:
                return None
            data = self.store.get(found[max(found)])
            if data is None:  # pragma: no cover - listed a moment ago under the lock
                return None
            raw = json.loads(data)
            return PendingShare(
                key_share_from_json(data), str(raw.get("session", "")), float(raw.get("prepared_at", 0.0))
            )

    def drop_pending(
        self, key_id: str, group_public_key: bytes, epoch: int | None = None, session: str | None = None
    ) -> None:
        """Forget pending shares of the key (only the one of ``epoch``, only if made by ``session``, if given)."""
        with self._lock:
            for e, name in self._epochs("pending", key_id, group_public_key).items():
                if epoch is not None and e != epoch:
                    continue
                if session is not None:
                    data = self.store.get(name)
                    if data is None or json.loads(data).get("session") != session:
                        continue
                self.store.delete(name)

    def commit(self, key_id: str, share: KeyShare) -> None:
        """Make ``share`` current: write it, then delete every older epoch and pending share of the key."""
        with self._lock:
            kid = key_id
            current = self._epochs("keys", kid, share.group_public_key)
            if current and max(current) > share.epoch:
                raise OldEpochError(f"key {kid!r}: this node already holds epoch {max(current)} > {share.epoch}")
            name = _name("keys", kid, share.group_public_key, share.epoch)
            if not self.store.put(name, key_share_to_json(share)):
                existing = self._read(name)
                if existing.secret_share != share.secret_share:
                    raise SigningError(f"key {kid!r}: a different share of epoch {share.epoch} exists already")
            self._cleanup(kid, share.group_public_key, share.epoch)

    def _cleanup(self, key_id: str, group_public_key: bytes, top: int) -> None:
        for e, name in self._epochs("keys", key_id, group_public_key).items():
            if e < top:
                self.store.delete(name)
        for e, name in self._epochs("pending", key_id, group_public_key).items():
            if e <= top:
                self.store.delete(name)
