"""Check an audit log file end to end and report the first broken link."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from exchange_framework.audit.entry import GENESIS_HASH, AuditFormatError, decode_line, entry_hash
from exchange_framework.audit.store import scan_lines

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify", "verify_lines"]


class ProblemKind(StrEnum):
    """What is wrong with an entry."""

    UNPARSEABLE = "unparseable line"
    BAD_SEQUENCE = "bad sequence"
    BROKEN_PREV_LINK = "broken prev link"
    HASH_MISMATCH = "hash mismatch"
    TORN_TAIL = "incomplete last line"
    HEAD_MISMATCH = "head mismatch"
    MISSING = "missing file"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong: at which entry (1-based line number), at which byte, what and why."""

    entry: int
    offset: int
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return f"entry {self.entry} (byte {self.offset}): {self.kind.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify`: how many entries are valid, the last valid hash, and the first problem."""

    path: Path
    entries: int
    head: str
    problem: Problem | None

    @property
    def ok(self) -> bool:
        """Whether the whole file is a valid chain (and matches the expected head, if one was given)."""
        return self.problem is None


def verify(
    path: str | os.PathLike[str],
    *,
    expect_head: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every entry of the log file at ``path``: parse, sequence, link to the previous hash, own hash.

    Stops at the first problem. ``expect_head`` is a hash written down earlier (``exchange audit head``): the log
    must end with it or continue past it, which also catches entries cut off the end. ``progress`` is called with
    the number of bytes checked so far.
    """
    path = Path(path)
    if not path.is_file():
        return VerifyReport(path, 0, GENESIS_HASH, Problem(1, 0, ProblemKind.MISSING, f"{path} is not a file"))
    return verify_lines(scan_lines(path), source=path, expect_head=expect_head, progress=progress)


def verify_lines(
    lines: Iterable[tuple[int, bytes, bool]],
    *,
    source: Path,
    expect_head: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check a log given as (position, line without newline, complete) in order; see :func:`verify`.

    Any store that keeps each entry's canonical line (the file, a database table) is verified this way.
    """
    head = GENESIS_HASH
    count = 0
    end = 0
    seen_expected = expect_head is None or expect_head == GENESIS_HASH
    for offset, line, complete in lines:
        number = count + 1
        checked = _check_line(line, complete, number, head)
        if isinstance(checked, tuple):
            return VerifyReport(source, count, head, Problem(number, offset, *checked))
        head = checked
        count = number
        end = offset + len(line) + 1
        if not seen_expected and head == expect_head:
            seen_expected = True
        if progress is not None:
            progress(end)
    if not seen_expected:
        return VerifyReport(
            source,
            count,
            head,
            Problem(
                count + 1,
                end,
                ProblemKind.HEAD_MISMATCH,
                f"no entry has the expected head hash {expect_head}: entries were removed or rewritten "
                f"(the log ends at entry {count} with hash {head})",
            ),
        )
    return VerifyReport(source, count, head, None)


def _check_line(line: bytes, complete: bool, number: int, prev: str) -> str | tuple[ProblemKind, str]:
    """Return the entry's hash if ``line`` validly follows ``prev`` as entry ``number``, else what is wrong."""
    if not complete:
        return (
            ProblemKind.TORN_TAIL,
            f"{len(line)} bytes without a newline: a crash during an append, or damage; it is not an entry",
        )
    try:
        entry = decode_line(line)
    except AuditFormatError as exc:
        return ProblemKind.UNPARSEABLE, str(exc)
    if entry.seq != number:
        return ProblemKind.BAD_SEQUENCE, f"expected seq {number}, found {entry.seq}"
    if entry.prev_hash != prev:
        return ProblemKind.BROKEN_PREV_LINK, f"prev_hash is {entry.prev_hash}, but entry {number - 1} hashes to {prev}"
    computed = entry_hash(entry.fields(with_hash=False))
    if computed != entry.hash:
        return ProblemKind.HASH_MISMATCH, f"stored hash {entry.hash}, contents hash to {computed}"
    return entry.hash
