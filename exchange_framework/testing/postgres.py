"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temporary directory, start on a free
loopback port, stop and delete on exit. Shipped in the package so plugin authors can use it too.

``DATABASE_URL`` (a ``postgresql://`` URL) is honoured instead when set.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (``bash scripts/setup`` installs them)."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise PostgresUnavailable("PostgreSQL is not installed: run `bash scripts/setup` (Debian package postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """One running cluster; :meth:`create_database` gives each test its own empty database."""

    def __init__(self) -> None:
        self.url_base = ""
        self._dir: Path | None = None
        self._pg_ctl: list[str] = []

    def start(self) -> None:
        bindir = _bin_dir()
        self._dir = Path(tempfile.mkdtemp(prefix="exchange-pg-"))
        data, sock = self._dir / "data", self._dir / "sock"
        sock.mkdir()
        port = _free_port()
        as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self._dir, owner.pw_uid, owner.pw_gid)
            os.chown(sock, owner.pw_uid, owner.pw_gid)
            as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
        self._pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data)]
        subprocess.run(
            [*self._pg_ctl, "-o", options, "-l", str(self._dir / "log"), "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
        )
        self.url_base = f"postgresql://postgres@127.0.0.1:{port}"

    def stop(self) -> None:
        if self._pg_ctl:
            subprocess.run([*self._pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
            self._pg_ctl = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        _admin(self.url_base + "/postgres", f'CREATE DATABASE "{name}"')
        return f"{self.url_base}/{name}"


def _admin(url: str, sql: str) -> None:
    """Run one statement with asyncpg (autocommit), e.g. CREATE DATABASE."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started cluster, stopped and deleted afterwards."""
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class ExistingPostgres(ThrowawayPostgres):
    """``DATABASE_URL``'s server: databases are created on it, nothing is started or stopped."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url_base = url.rsplit("/", 1)[0]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@contextlib.contextmanager
def postgres_for_tests() -> Iterator[ThrowawayPostgres]:
    """``DATABASE_URL``'s server if set, else a throwaway cluster."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgresql:", "postgres:")):
        yield ExistingPostgres(url)
        return
    with throwaway_postgres() as cluster:
        yield cluster
