"""The audit log the kernel writes to: chained entries appended to an :class:`~exchange_framework.audit.AuditStore`."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from exchange_framework.audit.entry import GENESIS_HASH, AuditEntry
from exchange_framework.audit.store import AuditStore, FileAuditStore

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig

__all__ = ["AuditLog", "Clock"]

Clock = Callable[[], int]
"""Returns the time in nanoseconds since the epoch."""


class AuditLog:
    """Append-only, hash-chained log of operator actions; safe to append from several threads and processes.

    Build it with :meth:`open` (the embedded file store) or around any :class:`AuditStore`. Times come from the
    injected ``clock`` unless an append passes ``ts_ns``.
    """

    def __init__(self, store: AuditStore, *, clock: Clock = time.time_ns) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock = time.time_ns,
        fsync: bool = True,
        recover_torn_tail: bool = False,
        actor: str = "system",
    ) -> AuditLog:
        """Open (creating if needed) the log file at ``path``.

        A torn last line raises :class:`~exchange_framework.audit.store.TornTailError` unless ``recover_torn_tail``,
        which moves it to ``<path>.torn-<offset>`` and appends an ``audit.recovered_torn_tail`` entry by ``actor``.
        """
        store = FileAuditStore(path, fsync=fsync, recover_torn_tail=recover_torn_tail)
        log = cls(store, clock=clock)
        if store.recovered is not None:
            tail = store.recovered
            log.append(
                actor=actor,
                action="audit.recovered_torn_tail",
                target=str(store.path),
                details={
                    "offset": tail.offset,
                    "bytes": len(tail.data),
                    "sha256": hashlib.sha256(tail.data).hexdigest(),
                    "moved_to": f"{store.path.name}.torn-{tail.offset}",
                },
            )
        return log

    @classmethod
    def from_config(cls, config: ExchangeConfig, *, clock: Clock = time.time_ns) -> AuditLog:
        """Open the log at ``[audit] path`` of ``config`` (with its ``fsync`` setting)."""
        return cls.open(config.audit_path(), clock=clock, fsync=config.audit.fsync)

    @property
    def store(self) -> AuditStore:
        """The store entries are written to."""
        return self._store

    def head(self) -> AuditEntry | None:
        """Return the newest entry (its ``hash`` anchors the whole chain), or None if the log is empty."""
        with self._lock:
            return self._store.last()

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str = "",
        details: Mapping[str, Any] | None = None,
        ts_ns: int | None = None,
    ) -> AuditEntry:
        """Record one action durably and return its entry.

        ``actor`` is who acted (an operator id or a service), ``action`` what they did (dotted, such as
        ``custody.whitelist.approve``), ``target`` what it was done to, ``details`` a JSON object without floats.
        Raises :class:`~exchange_framework.audit.entry.AuditFormatError` for a bad value (nothing is written) and
        :class:`~exchange_framework.audit.store.AuditError` if the store cannot write: callers must then not
        proceed with the action (fail closed).
        """
        body = {} if details is None else details

        def build(last: AuditEntry | None) -> AuditEntry:  # called with the log locked: times follow seq order
            return AuditEntry.create(
                seq=1 if last is None else last.seq + 1,
                ts_ns=self._clock() if ts_ns is None else ts_ns,
                actor=actor,
                action=action,
                target=target,
                details=body,
                prev_hash=GENESIS_HASH if last is None else last.hash,
            )

        with self._lock:
            return self._store.append(build)

    def entries(
        self, *, actor: str | None = None, action: str | None = None, target: str | None = None
    ) -> Iterator[AuditEntry]:
        """Yield stored entries, oldest first, keeping those matching every filter given.

        ``action`` matches the action or, ending in ``.``, every action under that prefix (``custody.``).
        """
        for entry in self._store.entries():
            if actor is not None and entry.actor != actor:
                continue
            if action is not None and not _action_matches(entry.action, action):
                continue
            if target is not None and entry.target != target:
                continue
            yield entry

    def close(self) -> None:
        """Close the store."""
        with self._lock:
            self._store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _action_matches(action: str, wanted: str) -> bool:
    return action.startswith(wanted) if wanted.endswith(".") else action == wanted
