"""Where audit entries are kept: the :class:`AuditStore` protocol and the embedded default, an append-only file.

The file holds one entry per line (see :mod:`exchange_framework.audit.entry`). An append writes the whole line and
fsyncs before returning, so an entry that was returned is durable. A crash in the middle of a write leaves a last
line without its newline: opening the file finds it and raises :class:`TornTailError` (the operator decides, with
``exchange audit recover``), unless the caller asked to recover, which moves the torn bytes to a side file and
records that in the log itself. The torn tail is never read as an entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from exchange_framework.audit.entry import AuditEntry, AuditFormatError, decode_line
from exchange_framework.sequencer._fs import datasync, fsync_directory

if sys.platform != "win32":
    import fcntl

__all__ = [
    "AuditError",
    "AuditStore",
    "CorruptAuditLogError",
    "FileAuditStore",
    "TornTail",
    "TornTailError",
    "read_entries",
    "scan_lines",
]

_CHUNK = 1 << 20


class AuditError(Exception):
    """The audit log cannot be opened or written."""


class CorruptAuditLogError(AuditError):
    """A line of the audit log (other than a torn last line) is not a valid entry."""


class TornTail:
    """The incomplete last line a crash left behind: where it starts and its bytes."""

    def __init__(self, offset: int, data: bytes) -> None:
        self.offset = offset
        self.data = data

    def describe(self) -> str:
        """Say what was found, for an operator."""
        digest = hashlib.sha256(self.data).hexdigest()
        return f"incomplete last line at byte {self.offset}: {len(self.data)} bytes without a newline (sha256 {digest})"


class TornTailError(AuditError):
    """The log ends with an incomplete line (a crash during an append, or damage)."""

    def __init__(self, path: Path, tail: TornTail) -> None:
        self.path = path
        self.tail = tail
        super().__init__(
            f"{path}: {tail.describe()}. It was never acknowledged as written. Check the log with "
            f"`exchange audit verify {path}`, then run `exchange audit recover {path}` to move it aside "
            "(the recovery is itself recorded in the log)."
        )


@runtime_checkable
class AuditStore(Protocol):
    """Durable storage for audit entries, in sequence order. A database-backed store implements the same."""

    def last(self) -> AuditEntry | None:
        """Return the newest entry, or None if the log is empty."""
        ...

    def append(self, build: Callable[[AuditEntry | None], AuditEntry]) -> AuditEntry:
        """Store durably, and return, the entry ``build`` makes from the newest stored entry (None if empty).

        Atomic with respect to every other writer of the same log: no entry may be stored between the one passed
        to ``build`` and the one it returns (a file lock, or a database transaction with a unique ``seq``).
        """
        ...

    def entries(self) -> Iterator[AuditEntry]:
        """Yield every stored entry, oldest first."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


def scan_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (byte offset, line without newline, complete) per line of ``path``; only the last may be incomplete."""
    with open(path, "rb") as f:
        offset = 0
        pending = b""
        while chunk := f.read(_CHUNK):
            data = pending + chunk
            start = 0
            while (end := data.find(b"\n", start)) >= 0:
                yield offset, data[start:end], True
                offset += end + 1 - start
                start = end + 1
            pending = data[start:]
        if pending:
            yield offset, pending, False


def read_entries(path: str | os.PathLike[str]) -> Iterator[AuditEntry]:
    """Yield the entries of a log file without opening it for writing; a torn last line is not yielded.

    Raise :class:`CorruptAuditLogError` at the first line that is not an entry (the chain is not checked here).
    """
    path = Path(path)
    for number, (offset, line, complete) in enumerate(scan_lines(path), start=1):
        if not complete:
            return
        try:
            yield decode_line(line)
        except AuditFormatError as exc:
            raise CorruptAuditLogError(
                f"{path}: line {number} (byte {offset}) is not a valid entry: {exc}; run `exchange audit verify {path}`"
            ) from None


def _pread_all(fd: int, start: int, end: int) -> bytes:
    data = b""
    while len(data) < end - start:
        more = os.pread(fd, end - start - len(data), start + len(data))
        if not more:
            raise AuditError(f"the audit log shrank while being read (expected {end} bytes)")
        data += more
    return data


def _line_start(fd: int, end: int) -> int:
    """Return the offset just after the last newline before ``end`` (0 if there is none)."""
    position = end
    while position > 0:
        start = max(0, position - _CHUNK // 16)
        found = _pread_all(fd, start, position).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        position = start
    return 0


class FileAuditStore:
    """The embedded default :class:`AuditStore`: one append-only file, one canonical JSON entry per line.

    Several processes may append to the same file: each append holds an exclusive ``flock`` while it reads the
    newest entry (if another process has appended since) and writes its own. Threads of one process must share
    one store through :class:`~exchange_framework.audit.AuditLog`, which serialises them. Opening reads only the
    newest entry (and finds a torn last line); checking the whole chain is
    :func:`~exchange_framework.audit.verify.verify`'s job. ``fsync=False`` is for tests only.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, recover_torn_tail: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self.recovered: TornTail | None = None
        """The torn tail moved aside when the store was opened with ``recover_torn_tail=True``, if there was one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = 0
        self._last: AuditEntry | None = None
        try:
            if created and self._fsync:
                fsync_directory(self.path.parent)
            with self._locked():
                self._refresh(recover=recover_torn_tail)
        except BaseException:
            os.close(self._fd)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._fd < 0:
            raise AuditError(f"{self.path}: the audit log is closed")
        if sys.platform == "win32":  # pragma: no cover - no flock: one writing process only
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _refresh(self, *, recover: bool = False) -> None:
        """Re-read the newest entry if the file changed since this store last wrote or read it (lock held)."""
        size = os.fstat(self._fd).st_size
        if size == self._size:
            return
        self._last, self._size = self._read_last(size, recover), os.fstat(self._fd).st_size

    def _read_last(self, size: int, recover: bool) -> AuditEntry | None:
        # Only the end of the file is read: whole-chain checks are verify()'s job, and appending stays fast.
        if size == 0:
            return None
        tail_start = _line_start(self._fd, size)
        if os.pread(self._fd, 1, size - 1) != b"\n":
            tail = TornTail(tail_start, _pread_all(self._fd, tail_start, size))
            if not recover:
                raise TornTailError(self.path, tail)
            self._move_aside(tail)
            size = tail_start
            if size == 0:
                return None
        start = _line_start(self._fd, size - 1)
        line = _pread_all(self._fd, start, size - 1)
        try:
            return decode_line(line)
        except AuditFormatError as exc:
            raise CorruptAuditLogError(
                f"{self.path}: the last entry (byte {start}) is not valid: {exc}; "
                f"run `exchange audit verify {self.path}`"
            ) from None

    def _move_aside(self, tail: TornTail) -> None:
        side = self.path.with_name(f"{self.path.name}.torn-{tail.offset}")
        side.write_bytes(tail.data)
        if self._fsync:
            with open(side, "rb") as f:
                datasync(f.fileno())
            fsync_directory(self.path.parent)
        os.ftruncate(self._fd, tail.offset)
        if self._fsync:
            os.fsync(self._fd)
        self.recovered = tail

    def last(self) -> AuditEntry | None:
        """Return the newest entry (written by any process), or None if the log is empty."""
        with self._locked():
            self._refresh()
            return self._last

    def append(self, build: Callable[[AuditEntry | None], AuditEntry]) -> AuditEntry:
        """Write the entry ``build`` makes from the newest one, and fsync it, holding the file lock throughout.

        A failed write is cut off again so no torn line is left behind. If the log ends in a torn line (another
        writer crashed mid-append), raise :class:`TornTailError` and write nothing.
        """
        with self._locked():
            self._refresh()
            entry = build(self._last)
            data = entry.line()
            size = self._size
            try:
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
                if self._fsync:
                    datasync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)
                raise AuditError(f"{self.path}: cannot append to the audit log: {exc}") from exc
            self._last = entry
            self._size = size + len(data)
            return entry

    def entries(self) -> Iterator[AuditEntry]:
        """Yield every entry in the file, oldest first (a torn last line is skipped: it is not an entry)."""
        return read_entries(self.path)

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
