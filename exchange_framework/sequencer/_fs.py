"""File-system durability helpers shared by the journal and the snapshot store."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

if sys.platform == "darwin":
    import fcntl

__all__ = ["datasync", "fsync_directory"]


def _make_datasync() -> Callable[[int], None]:
    if sys.platform == "darwin":  # fsync on macOS does not reach stable storage; F_FULLFSYNC does

        def full_fsync(fd: int) -> None:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

        return full_fsync
    sync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
    return sync


datasync = _make_datasync()
"""Make a file's data (and the size needed to read it) durable: fdatasync, or F_FULLFSYNC on macOS."""


def fsync_directory(directory: Path) -> None:
    """Make a file creation or rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
