"""Keeping the SDN list current: fetch, validate, keep the last good copy, start from it when a download fails.

A source is a URL (``http``, ``https`` or ``file``) or a path: a directory (or base URL ending in ``/``) holding
the CSV files, the ``sdn.csv`` file itself (its siblings ``alt.csv``, ``add.csv`` and ``sdn_comments.csv`` are read
beside it, in the same letter case, when present), or an ``.xml`` file (``sdn.xml`` or ``sdn_advanced.xml``).
``builtin`` names the small real snapshot shipped with the framework (for the demo and tests; never a production
list).

A refresh downloads every file, parses it, and only if that succeeds replaces the cached copy (``ofac/`` in the
node's data directory: written to a new directory, then swapped in by rename) and the list in memory. Any failure
(unreachable server, HTTP error, garbage, an empty list) leaves both as they were and is kept in :attr:`status`.
A refresh that changed the list calls the keeper's listeners (:meth:`OfacListKeeper.add_listener`): the running
exchange re-screens its customers that way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import msgspec

from exchange_framework.compliance.ofac import SdnFormatError, SdnList, parse_csv, parse_xml

__all__ = ["BUILTIN_SNAPSHOT", "ListStatus", "OfacListKeeper", "RefreshError"]

_log = logging.getLogger(__name__)

BUILTIN = "builtin"
BUILTIN_SNAPSHOT = Path(__file__).resolve().parent / "data"
CSV_FILES = ("sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv")
MAX_BYTES = 128 * 1024 * 1024  # the full SDN files are a few MB each; anything this large is not one


class RefreshError(Exception):
    """The list could not be fetched or did not parse; the previous list stays in use."""


class ListStatus(msgspec.Struct, frozen=True):
    """What an operator sees about the list: loaded or not, from where, how big, and the last refresh's outcome."""

    loaded: bool
    source: str
    entries: int = 0
    addresses: int = 0
    published: str = ""
    loaded_from: str = ""  # "download" or "cache"
    loaded_at_ns: int = 0
    last_attempt_ns: int = 0
    last_error: str = ""


def _sibling(name: str, like: str) -> str:
    return name.upper() if like.isupper() else name


class OfacListKeeper:
    """Holds the current SDN list of one exchange and refreshes it from ``source`` every ``refresh_seconds``."""

    def __init__(
        self,
        source: str,
        cache_dir: Path,
        *,
        refresh_seconds: float = 24 * 3600,
        timeout: float = 30,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.source = source
        self.cache_dir = cache_dir
        self.refresh_seconds = refresh_seconds
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._list: SdnList | None = None
        self._status = ListStatus(loaded=False, source=source)
        self._refreshing = False
        self._started = False
        self._fingerprint = ""  # SHA-256 of the files of the list in use
        self._listeners: list[Callable[[SdnList], None]] = []

    def add_listener(self, listener: Callable[[SdnList], None]) -> None:
        """Call ``listener(new_list)`` after a refresh that changed the list (re-screening customers, say).

        It runs on the refreshing thread; an exception it raises is logged and does not undo the refresh.
        """
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    # -- state --------------------------------------------------------------------------------------------------

    @property
    def current(self) -> SdnList | None:
        """The list in use, or None if none could be loaded yet."""
        return self._list

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of the files of the list in use ("" before one is loaded)."""
        return self._fingerprint

    @property
    def status(self) -> ListStatus:
        """The list's status for operators."""
        return self._status

    def start(self) -> SdnList | None:
        """Load the list once: the cached copy first (so a failed download still has a list), then a refresh.

        Never raises; returns the list in use. Later calls do nothing.
        """
        with self._lock:
            if self._started:
                return self._list
            self._started = True
            self._load_cache()
        try:
            self.refresh()
        except RefreshError as exc:
            _log.warning("OFAC list refresh from %s failed: %s", self.source, exc)
        return self._list

    def refresh_if_due(self) -> None:
        """Start a refresh in a background thread if the last attempt is older than ``refresh_seconds``."""
        with self._lock:
            due = self.clock() - self._status.last_attempt_ns >= self.refresh_seconds * 1e9
            if not due or self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._background_refresh, name="ofac-refresh", daemon=True).start()

    def _background_refresh(self) -> None:
        try:
            self.refresh()
        except RefreshError as exc:
            _log.warning("OFAC list refresh from %s failed: %s", self.source, exc)
        except Exception:  # a thread must not die with an unhandled exception
            _log.exception("OFAC list refresh from %s crashed", self.source)
        finally:
            self._refreshing = False

    def refresh(self) -> SdnList:
        """Fetch and parse the list now; on success cache it and use it. Raise :class:`RefreshError` otherwise."""
        attempt = self.clock()
        try:
            files = self._fetch()
            parsed = self._parse(files)
        except RefreshError as exc:
            with self._lock:
                self._status = msgspec.structs.replace(self._status, last_attempt_ns=attempt, last_error=str(exc))
            raise
        self._write_cache(files)
        fingerprint = _fingerprint(files)
        with self._lock:
            self._use(parsed, "download", attempt)
            changed = fingerprint != self._fingerprint
            self._fingerprint = fingerprint
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            try:
                listener(parsed)
            except Exception:  # the new list stays in use; the listener's failure is the operator's to see
                _log.exception("a listener of the OFAC list refresh failed")
        return parsed

    def _use(self, parsed: SdnList, origin: str, attempt: int) -> None:
        self._list = parsed
        self._status = ListStatus(
            loaded=True,
            source=self.source,
            entries=len(parsed.entries),
            addresses=parsed.address_count,
            published=parsed.published,
            loaded_from=origin,
            loaded_at_ns=self.clock(),
            last_attempt_ns=attempt,
            last_error="",
        )

    # -- fetching -------------------------------------------------------------------------------------------------

    def _locations(self) -> tuple[str, list[tuple[str, str, bool]]]:
        """Return the format ("csv" or "xml") and (file name, location, required) of each file to fetch."""
        source = str(BUILTIN_SNAPSHOT) + os.sep if self.source == BUILTIN else self.source
        parsed = urllib.parse.urlsplit(source)
        is_url = parsed.scheme in {"http", "https", "file"}
        if parsed.scheme and not is_url and len(parsed.scheme) > 1:  # one letter: a Windows drive
            raise RefreshError(f"OFAC list source {self.source!r}: only http, https and file URLs or paths are read")
        path = parsed.path if is_url else source
        name = path.rstrip("/").rpartition("/")[2]
        if name.lower().endswith(".xml"):
            return "xml", [("sdn.xml", source, True)]
        if name.lower() == "sdn.csv":
            base = source[: len(source) - len(name)] if not is_url else source.rsplit(name, 1)[0]
            like = name
        elif is_url and not path.endswith("/"):
            raise RefreshError(
                f"OFAC list source {self.source!r}: give a base URL ending in '/', the sdn.csv URL or an .xml URL"
            )
        else:
            base = source if source.endswith(("/", os.sep)) else source + os.sep
            like = "sdn.csv"
        return "csv", [(f, base + _sibling(f, like), f == "sdn.csv") for f in CSV_FILES]

    def _fetch(self) -> dict[str, bytes]:
        kind, locations = self._locations()
        files: dict[str, bytes] = {}
        for name, location, required in locations:
            data = self._read(location, required=required)
            if data is not None:
                files[name] = data
        return files if kind == "csv" else {"sdn.xml": files["sdn.xml"]}

    def _read(self, location: str, *, required: bool) -> bytes | None:
        scheme = urllib.parse.urlsplit(location).scheme
        if scheme in {"http", "https", "file"}:
            try:
                with urllib.request.urlopen(location, timeout=self.timeout) as response:
                    data: bytes = response.read(MAX_BYTES + 1)
            except urllib.error.HTTPError as exc:
                if exc.code == 404 and not required:
                    return None
                raise RefreshError(f"{location}: HTTP {exc.code} {exc.reason}") from None
            except urllib.error.URLError as exc:
                if not required and isinstance(exc.reason, FileNotFoundError):
                    return None
                raise RefreshError(f"{location}: {exc.reason}") from None
            except (OSError, TimeoutError) as exc:
                raise RefreshError(f"{location}: {type(exc).__name__}: {exc}") from None
        else:
            path = Path(location)
            if not path.is_file():
                if not required:
                    return None
                raise RefreshError(f"{location}: no such file")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise RefreshError(f"{location}: {exc}") from None
        if len(data) > MAX_BYTES:
            raise RefreshError(f"{location}: larger than {MAX_BYTES} bytes; not an SDN file")
        return data

    @staticmethod
    def _parse(files: dict[str, bytes]) -> SdnList:
        try:
            if "sdn.xml" in files:
                return parse_xml(files["sdn.xml"])
            text = {name: data.decode("utf-8-sig", errors="strict") for name, data in files.items()}
        except UnicodeDecodeError:
            try:  # the CSV files were published in Windows-1252 for years
                text = {name: data.decode("cp1252") for name, data in files.items()}
            except UnicodeDecodeError as exc:
                raise RefreshError(f"the SDN files are not text: {exc}") from None
        except SdnFormatError as exc:
            raise RefreshError(str(exc)) from None
        try:
            return parse_csv(
                text["sdn.csv"], text.get("alt.csv", ""), text.get("add.csv", ""), text.get("sdn_comments.csv", "")
            )
        except SdnFormatError as exc:
            raise RefreshError(str(exc)) from None

    # -- the cached copy -------------------------------------------------------------------------------------------

    def _write_cache(self, files: dict[str, bytes]) -> None:
        parent = self.cache_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        fresh = parent / f".{self.cache_dir.name}.new"
        old = parent / f".{self.cache_dir.name}.old"
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        fresh.mkdir()
        for name, data in files.items():
            with open(fresh / name, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        meta = {"source": self.source, "fetched_at_ns": self.clock(), "files": sorted(files)}
        (fresh / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if self.cache_dir.exists():
            self.cache_dir.rename(old)
        fresh.rename(self.cache_dir)
        shutil.rmtree(old, ignore_errors=True)

    def _load_cache(self) -> None:
        if not self.cache_dir.is_dir():
            return
        files = {p.name: p.read_bytes() for p in self.cache_dir.iterdir() if p.name in {*CSV_FILES, "sdn.xml"}}
        if not files:
            return
        try:
            parsed = self._parse(files)
        except RefreshError as exc:
            _log.warning("the cached OFAC list in %s does not parse (%s); ignoring it", self.cache_dir, exc)
            return
        self._use(parsed, "cache", 0)
        self._fingerprint = _fingerprint(files)


def _fingerprint(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()
