"""The embedded default journal: one append-only file of length-prefixed, checksummed records.

File layout, little-endian: the 8-byte file header :data:`FILE_MAGIC` (format name and version), then records.
A record is a 24-byte header ``<IIqq`` -- payload length, CRC-32 over (seq, ts_ns, payload), seq, ts_ns -- and
the payload. The checksummed bytes (the last 16 header bytes and the payload) are contiguous on disk.

Opening verifies every record. A torn tail -- what a crash in the middle of a write leaves: a partial header, or a
last record that is incomplete or fails its checksum with nothing valid after it -- is cut off and reported in
:attr:`FileJournal.recovered_tail_bytes`; it was never acknowledged, because acknowledgement waits for the fsync.
Damage anywhere else raises :class:`~exchange_framework.sequencer.journal.CorruptJournalError`.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from exchange_framework.sequencer._fs import datasync, fsync_directory
from exchange_framework.sequencer.journal import CorruptJournalError, JournalError, JournalRecord

if sys.platform != "win32":
    import fcntl

__all__ = ["FILE_MAGIC", "HEADER", "INDEX_EVERY", "MAX_PAYLOAD", "FileJournal"]

FILE_MAGIC = b"EXFJRNL\x01"
"""First bytes of every journal file: the format name and its version (1)."""
HEADER = struct.Struct("<IIqq")
"""Record header: payload length, CRC-32 over (seq, ts_ns, payload), seq, ts_ns."""
MAX_PAYLOAD = 64 << 20
"""Largest payload accepted (64 MiB); a larger length field on disk is damage, not a record."""
INDEX_EVERY = 1024
"""The in-memory index keeps the file offset of one record in this many, for :meth:`FileJournal.read`."""

_HEADER_SIZE = HEADER.size
_SEQ_TS = struct.Struct("<qq")
_READ_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise JournalError(f"journal file ended at byte {offset + len(data)} while {size} bytes were expected")
        data += more
    return data


class FileJournal:
    """The embedded default :class:`~exchange_framework.sequencer.journal.Journal`: an append-only local file.

    ``fsync=False`` skips every fsync (tests and benchmarks only: it voids "sequenced before acknowledged").
    One process at a time may open a journal file; a second open raises :class:`JournalError`.
    """

    recovered_tail_bytes: int
    """Bytes of torn tail cut off when the journal was opened (0 after a clean shutdown)."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, read_only: bool = False) -> None:
        self._path = Path(path)
        self._fsync = fsync
        self._read_only = read_only
        self._closed = True
        self._failed: BaseException | None = None
        self._index = array("q")  # _index[k] = file offset of the record with seq k * INDEX_EVERY + 1
        self._last_seq = 0
        self._last_ts_ns = 0
        self._end = len(FILE_MAGIC)
        self.recovered_tail_bytes = 0
        if read_only:
            try:
                self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
            except FileNotFoundError:
                raise JournalError(f"there is no journal at {self._path}") from None
        else:
            flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
            try:
                self._fd = os.open(self._path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._fd = os.open(self._path, flags)
        try:
            if not read_only:
                self._lock()
            self._load()
        except BaseException:
            os.close(self._fd)
            raise
        self._closed = False

    # -- opening ---------------------------------------------------------------------------------------------

    def _lock(self) -> None:
        if sys.platform == "win32":
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(
                f"journal {self._path} is already open in another process or FileJournal; "
                "only one writer may use a journal file: stop the other one first"
            ) from None

    def _sync(self) -> None:
        if self._fsync:
            datasync(self._fd)

    def _load(self) -> None:
        size = os.fstat(self._fd).st_size
        magic_size = len(FILE_MAGIC)
        head = _pread_exact(self._fd, min(size, magic_size), 0)
        if head != FILE_MAGIC[: len(head)]:
            raise JournalError(
                f"{self._path} is not a journal file of this format (it starts with {head!r}, "
                f"expected {FILE_MAGIC!r}); check the configured journal path"
            )
        if size >= magic_size:
            self._scan(size)
            return
        if self._read_only:
            raise JournalError(f"{self._path} is empty: no journal has been written there yet")
        if size:  # a crash while the file was being created
            self._truncate_tail(0, size, "partial file header")
        os.write(self._fd, FILE_MAGIC)
        self._sync()
        if self._fsync:
            fsync_directory(self._path.parent)

    def _scan(self, size: int) -> None:
        """Verify every record, build the sparse index and cut a torn tail."""
        fd = self._fd
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        index = self._index
        pos = len(FILE_MAGIC)  # file offset of buf[0]
        buf = b""
        view = memoryview(buf)
        i = 0
        seq = 0
        ts_ns = 0
        while True:
            offset = pos + i
            if offset == size:
                break
            if len(buf) - i < _HEADER_SIZE:
                if size - offset < _HEADER_SIZE:
                    self._bad_record(offset, size, seq + 1, "partial record header")
                    break
                buf = buf[i:] + _pread_exact(fd, min(_READ_CHUNK, size - pos - len(buf)), pos + len(buf))
                view = memoryview(buf)
                pos, i = offset, 0
            length, crc, rec_seq, rec_ts = unpack(buf, i)
            if length > MAX_PAYLOAD:
                self._bad_record(offset, size, seq + 1, f"payload length {length} exceeds {MAX_PAYLOAD}")
                break
            if offset + _HEADER_SIZE + length > size:
                self._bad_record(offset, size, seq + 1, f"a {length}-byte payload runs past the end of the file")
                break
            j = i + _HEADER_SIZE + length
            if j > len(buf):
                want = max(_READ_CHUNK, _HEADER_SIZE + length - (len(buf) - i))
                buf = buf[i:] + _pread_exact(fd, min(want, size - pos - len(buf)), pos + len(buf))
                view = memoryview(buf)
                pos, i = offset, 0
                j = _HEADER_SIZE + length
            if crc32(view[i + 8 : j]) != crc:
                self._bad_record(offset, size, seq + 1, "checksum mismatch")
                break
            if rec_seq != seq + 1:
                raise CorruptJournalError(
                    str(self._path), offset, seq + 1, f"found sequence number {rec_seq} where {seq + 1} belongs"
                )
            if seq % INDEX_EVERY == 0:
                index.append(offset)
            seq = rec_seq
            ts_ns = rec_ts
            i = j
        view.release()
        self._last_seq = seq
        self._last_ts_ns = ts_ns
        self._end = pos + i  # just past the last valid record (a torn tail is cut, or ignored when read-only)

    def _bad_record(self, offset: int, size: int, seq: int, reason: str) -> None:
        """Cut a torn tail at ``offset``; raise if a valid record follows, since then it is not a tail."""
        if self._valid_record_after(offset + 1, size, seq):
            raise CorruptJournalError(
                str(self._path), offset, seq, f"{reason}, and valid records follow it (not a torn tail)"
            )
        self._truncate_tail(offset, size, reason)

    def _valid_record_after(self, start: int, size: int, next_seq: int) -> bool:
        last_start = size - _HEADER_SIZE
        if start > last_start:
            return False
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        max_seq = next_seq + (size - start) // _HEADER_SIZE + 1
        with mmap.mmap(self._fd, size, access=mmap.ACCESS_READ) as data:
            for offset in range(start, last_start + 1):
                length, crc, seq, _ = unpack(data, offset)
                if (
                    next_seq <= seq <= max_seq
                    and length <= size - offset - _HEADER_SIZE
                    and crc32(data[offset + 8 : offset + _HEADER_SIZE + length]) == crc
                ):
                    return True
        return False

    def _truncate_tail(self, offset: int, size: int, reason: str) -> None:
        if self._read_only:
            self.recovered_tail_bytes = size - offset
            _log.warning(
                "journal %s: ignoring a torn tail of %d bytes at byte offset %d (%s); opened read-only, "
                "the file is left as it is",
                self._path,
                size - offset,
                offset,
                reason,
            )
            return
        os.ftruncate(self._fd, offset)
        self._sync()
        self.recovered_tail_bytes = size - offset
        _log.warning(
            "journal %s: cut a torn tail of %d bytes at byte offset %d (%s); "
            "it is what a crash during a write leaves and was never acknowledged",
            self._path,
            size - offset,
            offset,
            reason,
        )

    # -- the Journal protocol --------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    @property
    def last_seq(self) -> int:
        """The sequence number of the last durable record, 0 when the journal is empty."""
        return self._last_seq

    @property
    def last_ts_ns(self) -> int:
        """The timestamp of the last durable record, 0 when the journal is empty."""
        return self._last_ts_ns

    def append(self, records: Sequence[JournalRecord]) -> None:
        """Write ``records`` with one ``write`` and make them durable with one fsync before returning."""
        if self._closed:
            raise JournalError(f"journal {self._path} is closed")
        if self._read_only:
            raise JournalError(f"journal {self._path} was opened read-only")
        if self._failed is not None:
            raise JournalError(
                f"journal {self._path} refuses appends after a failed write ({self._failed}); "
                "reopen it to recover from what is on disk"
            )
        if not records:
            return
        pack = HEADER.pack
        crc32 = zlib.crc32
        pack_seq_ts = _SEQ_TS.pack
        parts: list[bytes] = []
        new_index: list[int] = []
        seq = self._last_seq
        offset = self._end
        try:
            for record in records:
                seq += 1
                if record.seq != seq:
                    raise JournalError(f"record seq {record.seq} does not follow {seq - 1} in journal {self._path}")
                payload = record.payload
                length = len(payload)
                if length > MAX_PAYLOAD:
                    raise JournalError(f"record seq {seq}: payload of {length} bytes exceeds {MAX_PAYLOAD}")
                if (seq - 1) % INDEX_EVERY == 0:
                    new_index.append(offset)
                parts.append(pack(length, crc32(payload, crc32(pack_seq_ts(seq, record.ts_ns))), seq, record.ts_ns))
                parts.append(payload)
                offset += _HEADER_SIZE + length
        except struct.error as exc:
            raise JournalError(f"record seq {seq} cannot be encoded: {exc}") from exc
        data = b"".join(parts)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                with memoryview(data) as rest:
                    while written < len(data):
                        written += os.write(self._fd, rest[written:])
            self._sync()
        except OSError as exc:
            self._failed = exc
            with contextlib.suppress(OSError):  # best effort: the next open cuts a partial record anyway
                os.ftruncate(self._fd, self._end)
            raise JournalError(
                f"writing {len(records)} records (seq {records[0].seq}..{seq}) to journal {self._path} failed: "
                f"{exc}; none of them is acknowledged and the journal refuses further appends"
            ) from exc
        self._index.extend(new_index)
        self._end = offset
        self._last_seq = seq
        self._last_ts_ns = records[-1].ts_ns

    def read(self, from_seq: int = 1) -> Iterator[JournalRecord]:
        """Yield the records from ``from_seq`` to the current ``last_seq``, verifying each checksum."""
        if self._closed:
            raise JournalError(f"journal {self._path} is closed")
        if from_seq < 1:
            raise ValueError(f"from_seq must be at least 1, not {from_seq}")
        last = self._last_seq
        if from_seq > last:
            return iter(())
        k = (from_seq - 1) // INDEX_EVERY
        return self._records(self._index[k], k * INDEX_EVERY + 1, from_seq, last, self._end)

    def _records(self, pos: int, seq: int, from_seq: int, last: int, end: int) -> Iterator[JournalRecord]:
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        record = JournalRecord
        buf = b""
        view = memoryview(buf)
        i = 0
        while seq <= last:
            if len(buf) - i < _HEADER_SIZE:
                buf, pos, i = self._refill(buf, pos, i, _HEADER_SIZE, end, seq)
                view = memoryview(buf)
            length, crc, rec_seq, ts_ns = unpack(buf, i)
            j = i + _HEADER_SIZE + length
            if j > len(buf):
                buf, pos, i = self._refill(buf, pos, i, _HEADER_SIZE + length, end, seq)
                view = memoryview(buf)
                j = _HEADER_SIZE + length
            if rec_seq != seq:
                raise CorruptJournalError(
                    str(self._path), pos + i, seq, f"found sequence number {rec_seq} while reading"
                )
            if seq >= from_seq:
                if crc32(view[i + 8 : j]) != crc:
                    raise CorruptJournalError(str(self._path), pos + i, seq, "checksum mismatch while reading")
                yield record(seq, ts_ns, buf[i + _HEADER_SIZE : j])
            seq += 1
            i = j

    def _refill(self, buf: bytes, pos: int, i: int, need: int, end: int, seq: int) -> tuple[bytes, int, int]:
        if self._closed:
            raise JournalError(f"journal {self._path} was closed while being read")
        have = len(buf) - i
        start = pos + len(buf)
        want = min(max(_READ_CHUNK, need - have), end - start)
        if have + want < need:
            raise CorruptJournalError(str(self._path), pos + i, seq, "record runs past the verified end of the file")
        return buf[i:] + _pread_exact(self._fd, want, start), pos + i, 0

    def close(self) -> None:
        """Close the file and release its lock; closing twice is harmless."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> FileJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileJournal({str(self._path)!r}, last_seq={self._last_seq})"
