"""Snapshots of engine state, so recovery replays only the journal's tail.

Each snapshot is one file, ``snapshot-<seq>.snap``: a 28-byte header ``<8sqQI`` -- :data:`SNAPSHOT_MAGIC`, the seq of
the last command applied, the state's length and a CRC-32 over (seq, length, state) -- then the state. It is
written atomically: a temporary file, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from pathlib import Path

from exchange_framework.sequencer._fs import datasync, fsync_directory

__all__ = ["SNAPSHOT_MAGIC", "SnapshotStore"]

SNAPSHOT_MAGIC = b"EXFSNAP\x01"
"""First bytes of every snapshot file: the format name and its version (1)."""

_HEADER = struct.Struct("<8sqQI")
_SEQ_LEN = struct.Struct("<qQ")
_NAME = re.compile(r"snapshot-(\d{20})\.snap")
_TEMP = re.compile(r"\.snapshot-\d{20}\.snap\.(\d+)\.\d+\.tmp")
_log = logging.getLogger(__name__)


class _DamagedSnapshot(Exception):
    pass


class SnapshotStore:
    """A directory of checksummed snapshots, one per seq; the newest valid one seeds recovery."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)

    @property
    def directory(self) -> Path:
        """The snapshot directory."""
        return self._dir

    def path_for(self, seq: int) -> Path:
        """The file that holds the snapshot taken after ``seq``."""
        return self._dir / f"snapshot-{seq:020d}.snap"

    def save(self, seq: int, state: bytes) -> Path:
        """Write the state after command ``seq`` atomically and durably; return its path."""
        if seq < 0:
            raise ValueError(f"seq must not be negative, not {seq}")
        final = self.path_for(seq)
        temp = self._dir / f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        crc = zlib.crc32(state, zlib.crc32(_SEQ_LEN.pack(seq, len(state))))
        data = _HEADER.pack(SNAPSHOT_MAGIC, seq, len(state), crc)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                for chunk in (data, state):
                    with memoryview(chunk) as view:
                        written = 0
                        while written < len(view):
                            written += os.write(fd, view[written:])
                datasync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(self._dir)
        return final

    def seqs(self) -> list[int]:
        """The seqs of the snapshot files present (valid or not), oldest first."""
        found = []
        for entry in os.scandir(self._dir):
            match = _NAME.fullmatch(entry.name)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def latest(self) -> tuple[int, bytes] | None:
        """Return ``(seq, state)`` of the newest valid snapshot, skipping (and logging) damaged ones."""
        for seq in reversed(self.seqs()):
            path = self.path_for(seq)
            try:
                return seq, self._load(path, seq)
            except (OSError, _DamagedSnapshot) as exc:
                _log.warning(
                    "skipping damaged snapshot %s (%s); falling back to an older one and the journal", path, exc
                )
        return None

    def load(self, seq: int) -> bytes | None:
        """Return the state of the snapshot taken at ``seq``, or None if it is missing or damaged (logged)."""
        path = self.path_for(seq)
        try:
            return self._load(path, seq)
        except (OSError, _DamagedSnapshot) as exc:
            _log.warning("skipping damaged or missing snapshot %s (%s)", path, exc)
            return None

    def _load(self, path: Path, seq: int) -> bytes:
        data = path.read_bytes()
        if len(data) < _HEADER.size:
            raise _DamagedSnapshot(f"{len(data)} bytes, shorter than the header")
        magic, stored_seq, length, crc = _HEADER.unpack_from(data)
        if magic != SNAPSHOT_MAGIC:
            raise _DamagedSnapshot(f"header {magic!r} is not {SNAPSHOT_MAGIC!r}")
        if stored_seq != seq:
            raise _DamagedSnapshot(f"holds seq {stored_seq}, not the {seq} of its name")
        if len(data) - _HEADER.size != length:
            raise _DamagedSnapshot(f"{len(data) - _HEADER.size} bytes of state where {length} were written")
        state = data[_HEADER.size :]
        if zlib.crc32(state, zlib.crc32(_SEQ_LEN.pack(seq, length))) != crc:
            raise _DamagedSnapshot("checksum mismatch")
        return state

    def prune(self, keep: int = 3) -> list[Path]:
        """Delete all but the newest ``keep`` snapshots (and temporary files of crashed saves); return them."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        removed = [self.path_for(seq) for seq in self.seqs()[:-keep]]
        own_pid = str(os.getpid())
        for entry in os.scandir(self._dir):
            match = _TEMP.fullmatch(entry.name)
            if match and match.group(1) != own_pid:  # left by an earlier process that crashed mid-save
                removed.append(Path(entry.path))
        for path in removed:
            path.unlink(missing_ok=True)
        if removed:
            fsync_directory(self._dir)
        return removed
