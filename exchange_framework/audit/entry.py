"""One audit log entry, its canonical encoding and its hash.

An entry is stored as one line: the canonical JSON of every field (keys sorted, no spaces, UTF-8, no floats), then
``\\n``. Its ``hash`` is the lowercase hex SHA-256 of the canonical JSON of all the other fields, so each entry names
the one before it (``prev_hash``) and changing any entry breaks every link after it. The first entry's
``prev_hash`` is :data:`GENESIS_HASH`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditFormatError",
    "canonical_json",
    "decode_line",
    "entry_hash",
]

FORMAT_VERSION = 1
"""The ``v`` field of every entry: bump it if the encoding ever changes."""
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first entry."""

_FIELDS = frozenset({"v", "seq", "ts_ns", "actor", "action", "target", "details", "prev_hash", "hash"})
_HEX = frozenset("0123456789abcdef")


class AuditFormatError(ValueError):
    """A value cannot be written to the audit log, or a line of it cannot be read as an entry."""


def _check_json(value: object, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise AuditFormatError(f"{where}: strings must be valid Unicode (no lone surrogates)") from None
        return
    if isinstance(value, float):
        raise AuditFormatError(
            f"{where} = {value!r}: floats are not allowed in the audit log; write amounts as integers "
            "(atomic units) or as decimal strings"
        )
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditFormatError(f"{where}: object keys must be strings, not {key!r}")
            _check_json(key, f"{where} key")
            _check_json(item, f"{where}.{key}")
        return
    raise AuditFormatError(
        f"{where}: {type(value).__name__} is not a JSON value; use str, int, bool, None, lists and dicts"
    )


def canonical_json(value: object) -> bytes:
    """Encode a JSON value canonically: sorted keys, no whitespace, UTF-8; refuse floats and non-JSON types."""
    _check_json(value, "value")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action, chained to the entry before it. ``details`` is a read-only JSON object."""

    seq: int
    ts_ns: int
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def fields(self, *, with_hash: bool = True) -> dict[str, Any]:
        """Return the entry as a plain JSON object (what its line encodes)."""
        data: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "seq": self.seq,
            "ts_ns": self.ts_ns,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": _thaw(self.details),
            "prev_hash": self.prev_hash,
        }
        if with_hash:
            data["hash"] = self.hash
        return data

    def line(self) -> bytes:
        """Return the entry's line in the log file, newline included."""
        return canonical_json(self.fields()) + b"\n"

    @classmethod
    def create(
        cls,
        *,
        seq: int,
        ts_ns: int,
        actor: str,
        action: str,
        target: str,
        details: Mapping[str, Any],
        prev_hash: str,
    ) -> AuditEntry:
        """Build a new entry, validating every field and computing its hash."""
        if type(seq) is not int or seq < 1:
            raise AuditFormatError(f"seq = {seq!r}: must be a positive integer")
        if type(ts_ns) is not int or ts_ns < 0:
            raise AuditFormatError(f"ts_ns = {ts_ns!r}: must be a non-negative integer (nanoseconds since the epoch)")
        for name, text in (("actor", actor), ("action", action)):
            if not isinstance(text, str) or not text:
                raise AuditFormatError(f"{name} = {text!r}: must be a non-empty string")
        if not isinstance(target, str):
            raise AuditFormatError(f"target = {target!r}: must be a string")
        if not isinstance(details, Mapping):
            raise AuditFormatError(f"details = {details!r}: must be a JSON object (a dict)")
        _check_json(details, "details")
        _check_hash(prev_hash, "prev_hash")
        draft = cls(seq, ts_ns, actor, action, target, _freeze(details), prev_hash, "")
        digest = entry_hash(draft.fields(with_hash=False))
        return cls(seq, ts_ns, actor, action, target, draft.details, prev_hash, digest)


def entry_hash(fields: Mapping[str, Any]) -> str:
    """Return the lowercase hex SHA-256 of the canonical JSON of an entry's fields (``hash`` left out)."""
    return hashlib.sha256(canonical_json({k: v for k, v in fields.items() if k != "hash"})).hexdigest()


def _check_hash(value: object, name: str) -> None:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise AuditFormatError(f"{name} = {value!r}: must be 64 lowercase hex digits")


def _refuse_float(text: str) -> Any:
    raise AuditFormatError(f"number {text} is not an integer: floats are not allowed in the audit log")


def _refuse_constant(text: str) -> Any:
    raise AuditFormatError(f"{text} is not valid JSON")


def decode_line(line: bytes) -> AuditEntry:
    """Parse one line (without its newline) into an entry; raise :class:`AuditFormatError` if it is not one.

    The line must be exactly the canonical encoding of its fields, so no byte of it can change unnoticed. The
    stored hash is not checked here: :func:`exchange_framework.audit.verify.verify` compares it.
    """
    try:
        data = json.loads(line.decode("utf-8"), parse_float=_refuse_float, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise AuditFormatError(f"not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise AuditFormatError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AuditFormatError("not a JSON object")
    if set(data) != _FIELDS:
        missing = sorted(_FIELDS - set(data))
        extra = sorted(set(data) - _FIELDS)
        raise AuditFormatError(f"wrong fields (missing: {missing or 'none'}, unexpected: {extra or 'none'})")
    if data["v"] != FORMAT_VERSION or type(data["v"]) is not int:
        raise AuditFormatError(f"unsupported format version {data['v']!r} (this reader knows {FORMAT_VERSION})")
    _check_hash(data["hash"], "hash")
    try:
        entry = AuditEntry.create(
            seq=data["seq"],
            ts_ns=data["ts_ns"],
            actor=data["actor"],
            action=data["action"],
            target=data["target"],
            details=data["details"],
            prev_hash=data["prev_hash"],
        )
    except TypeError as exc:
        raise AuditFormatError(str(exc)) from None
    if canonical_json(data) != line:
        raise AuditFormatError("not in canonical form (keys sorted, no spaces, UTF-8 without escapes)")
    return AuditEntry(
        entry.seq, entry.ts_ns, entry.actor, entry.action, entry.target, entry.details, entry.prev_hash, data["hash"]
    )
