"""The policy engine's persisted state: one JSON file, replaced atomically on every change.

Chosen over SQLite because the state is small (the whitelist, open requests, a few windows of velocity events) and
a whole-file atomic replace (write a temporary file, fsync, rename, fsync the directory) cannot leave a half-written
state behind. One process at a time may hold the file (an exclusive lock on ``<path>.lock``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Generic, TypeVar

import msgspec

from exchange_framework.sequencer._fs import datasync, fsync_directory

if sys.platform != "win32":
    import fcntl

__all__ = ["StateFile", "StateFileError"]

T = TypeVar("T", bound=msgspec.Struct)


class StateFileError(Exception):
    """The state file cannot be locked, read or written."""


class StateFile(Generic[T]):
    """Loads and atomically saves one msgspec struct as JSON at ``path``."""

    def __init__(self, path: str | os.PathLike[str], kind: type[T], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._kind = kind
        self._fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform != "win32":
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                raise StateFileError(f"{self.path}: the custody policy state is in use by another process") from None

    def load(self) -> T | None:
        """Return the saved state, or None if nothing was saved yet; raise :class:`StateFileError` if unreadable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot read: {exc}") from None
        try:
            return msgspec.json.decode(data, type=self._kind)
        except msgspec.DecodeError as exc:
            raise StateFileError(
                f"{self.path}: not a valid custody policy state ({exc}); restore it from a backup"
            ) from None

    def save(self, state: T) -> None:
        """Replace the saved state with ``state`` atomically."""
        data = msgspec.json.encode(state)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self._fsync:
                    f.flush()
                    datasync(f.fileno())
            os.replace(tmp, self.path)
            if self._fsync:
                fsync_directory(self.path.parent)
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot save the custody policy state: {exc}") from exc

    def close(self) -> None:
        """Release the lock."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
