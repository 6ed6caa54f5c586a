"""The ``[custody]`` table of ``exchange.toml``: parsed here, converted to the policy engine's integer values.

Amounts are written as decimals in the asset's units (``max_amount = "1.5"``) and become atomic units using the
asset's ``decimals`` from ``[assets]``; durations are integer seconds. :func:`custody_problems` finds every
mistake across keys for ``exchange config check``; :func:`open_policy_engine` builds the engine from a validated
config. The format is documented in ``docs/custody-policy.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from exchange_framework.custody.rules import (
    SECOND_NS,
    DestinationMatch,
    Network,
    PolicyConfig,
    Rule,
    RuleAction,
    Tier,
    VelocityLimit,
    VelocityScope,
    Wallet,
)
from exchange_framework.custody.tiers import TierSettings, tier_problems
from exchange_framework.custody.whitelist import WhitelistApprovers, WhitelistError
from exchange_framework.money import MoneyError, parse_decimal, to_atomic

if TYPE_CHECKING:
    from exchange_framework.audit import AuditLog, Clock
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.custody.policy import PolicyEngine

__all__ = [
    "CustodyLimit",
    "CustodyNetwork",
    "CustodyRule",
    "CustodySettings",
    "CustodyWallet",
    "custody_problems",
    "open_policy_engine",
    "policy_config",
    "whitelist_approvers",
]

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


def _decimal_input(value: object) -> Decimal:
    try:
        return parse_decimal(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


_Amount = Annotated[Decimal, BeforeValidator(_decimal_input), Field(ge=0)]
_Seconds = Annotated[int, Field(gt=0)]
_PersonName = Annotated[str, Field(pattern=_NAME)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CustodyNetwork(_Table):
    """``[custody.networks.<chain>]``: the chain id withdrawals must carry, and an optional fee cap."""

    chain_id: str = Field(min_length=1)
    max_fee: _Amount | None = None
    fee_asset: str | None = None  # the asset max_fee is written in (required with max_fee)


class CustodyWallet(_Table):
    """``[[custody.wallets]]``: a custody wallet withdrawals may pay from."""

    chain: str = Field(min_length=1)
    address: str = Field(min_length=1)
    tier: Literal["hot", "warm", "cold"]
    key_id: str | None = None


class CustodyRule(_Table):
    """``[[custody.rules]]``: one rule; rules are tried in order and the first match decides."""

    name: str = Field(min_length=1)
    action: Literal["allow", "block", "approve"]
    chain: str | None = None
    asset: str | None = None
    tier: Literal["hot", "warm", "cold"] | None = None
    min_amount: _Amount | None = None
    max_amount: _Amount | None = None
    approvals: int = Field(default=0, ge=0)
    group: str | None = None
    destination: Literal["whitelisted", "unlisted", "any"] = "whitelisted"


class CustodyLimit(_Table):
    """``[[custody.limits]]``: at most ``max_amount`` of ``asset`` approved in any ``window_s`` seconds."""

    name: str = Field(min_length=1)
    asset: str
    window_s: _Seconds
    max_amount: _Amount
    per: Literal["asset", "account"] = "asset"
    tier: Literal["hot", "warm", "cold"] | None = None
    chain: str | None = None


class CustodySettings(_Table):
    """``[custody]``: the custody policy (see ``docs/custody-policy.md``)."""

    state_path: str = Field(default="var/custody/policy.db", min_length=1)
    approval_ttl_s: _Seconds = 24 * 3600
    release_ttl_s: _Seconds = 3600
    whitelist_quorum: int = Field(default=3, ge=1)
    whitelist_change_ttl_s: _Seconds = 72 * 3600
    networks: dict[str, CustodyNetwork] = {}
    wallets: list[CustodyWallet] = []
    groups: dict[str, list[_PersonName]] = {}
    whitelist_approvers: dict[_PersonName, str] = {}  # name -> Ed25519 public key, 64 hex digits
    rules: list[CustodyRule] = []
    limits: list[CustodyLimit] = []
    tiers: TierSettings = TierSettings()  # [custody.tiers]: bands, forecaster, sweep planner (docs/custody-tiers.md)


Loc = tuple[str | int, ...]


def _atomic(
    value: Decimal | None,
    asset: str | None,
    decimals: Mapping[str, int],
    loc: Loc,
    problems: list[tuple[Loc, object, str]],
) -> int | None:
    if value is None or asset is None or asset not in decimals:
        return None
    try:
        return to_atomic(value, decimals[asset])
    except MoneyError:
        problems.append((loc, value, f"{asset} has {decimals[asset]} decimals: this amount has more"))
        return None


def _convert(
    settings: CustodySettings, decimals: Mapping[str, int]
) -> tuple[PolicyConfig, list[tuple[Loc, object, str]]]:
    problems: list[tuple[Loc, object, str]] = []
    known = ", ".join(sorted(decimals)) or "none defined"

    def need_asset(asset: str | None, loc: Loc) -> None:
        if asset is not None and asset not in decimals:
            problems.append((loc, asset, f"unknown asset; define [assets.{asset}] or use one of: {known}"))

    networks = []
    for chain, n in settings.networks.items():
        loc: Loc = ("custody", "networks", chain)
        if n.max_fee is not None and n.fee_asset is None:
            problems.append(((*loc, "fee_asset"), None, "max_fee needs fee_asset, the asset it is written in"))
        need_asset(n.fee_asset, (*loc, "fee_asset"))
        networks.append(
            Network(chain, n.chain_id, _atomic(n.max_fee, n.fee_asset, decimals, (*loc, "max_fee"), problems))
        )
    wallets = [Wallet(w.chain, w.address, Tier(w.tier), w.key_id) for w in settings.wallets]
    rules = []
    for i, r in enumerate(settings.rules):
        loc = ("custody", "rules", i)
        need_asset(r.asset, (*loc, "asset"))
        rules.append(
            Rule(
                name=r.name,
                action=RuleAction(r.action),
                chain=r.chain,
                asset=r.asset,
                tier=Tier(r.tier) if r.tier is not None else None,
                min_amount=_atomic(r.min_amount, r.asset, decimals, (*loc, "min_amount"), problems),
                max_amount=_atomic(r.max_amount, r.asset, decimals, (*loc, "max_amount"), problems),
                approvals=r.approvals,
                group=r.group,
                destination=DestinationMatch(r.destination),
            )
        )
        if r.asset is None and (r.min_amount is not None or r.max_amount is not None):
            problems.append((loc, r.name, "amount bounds need an asset: amounts are written in that asset's units"))
    limits = []
    for i, lim in enumerate(settings.limits):
        loc = ("custody", "limits", i)
        need_asset(lim.asset, (*loc, "asset"))
        limits.append(
            VelocityLimit(
                name=lim.name,
                asset=lim.asset,
                window_ns=lim.window_s * SECOND_NS,
                max_amount=_atomic(lim.max_amount, lim.asset, decimals, (*loc, "max_amount"), problems) or 0,
                per=VelocityScope(lim.per),
                tier=Tier(lim.tier) if lim.tier is not None else None,
                chain=lim.chain,
            )
        )
    config = PolicyConfig(
        networks=networks,
        wallets=wallets,
        rules=rules,
        groups={name: frozenset(members) for name, members in settings.groups.items()},
        limits=limits,
        approval_ttl_ns=settings.approval_ttl_s * SECOND_NS,
        release_ttl_ns=settings.release_ttl_s * SECOND_NS,
    )
    return config, problems


def _approver_keys(settings: CustodySettings) -> Iterator[tuple[str, bytes | None, str]]:
    for name, text in settings.whitelist_approvers.items():
        if _HEX_KEY.fullmatch(text):
            yield name, bytes.fromhex(text), text
        else:
            yield name, None, text


def custody_problems(settings: CustodySettings, decimals: Mapping[str, int]) -> list[tuple[Loc, object, str]]:
    """Return (key path, value, message) for every mistake in ``[custody]``, given each asset's decimals."""
    config, problems = _convert(settings, decimals)
    problems.extend((("custody", *p.path), p.value, p.message) for p in config.problems())
    problems.extend(tier_problems(settings.tiers, decimals))
    keys = {}
    for name, raw, text in _approver_keys(settings):
        if raw is None:
            problems.append(
                (("custody", "whitelist_approvers", name), text, "must be an Ed25519 public key: 64 hex digits")
            )
        else:
            keys[name] = raw
    if len(keys) == len(settings.whitelist_approvers):
        try:
            WhitelistApprovers(keys, quorum=settings.whitelist_quorum)
        except WhitelistError as exc:
            problems.append((("custody", "whitelist_approvers"), f"{len(keys)} approvers", str(exc)))
    return problems


def policy_config(config: ExchangeConfig) -> PolicyConfig:
    """Return the policy engine's configuration from a validated ``[custody]`` table (ValueError if absent)."""
    if config.custody is None:
        raise ValueError("the configuration has no [custody] table; see docs/custody-policy.md")
    return _convert(config.custody, {s: a.decimals for s, a in config.assets.items()})[0]


def whitelist_approvers(config: ExchangeConfig) -> WhitelistApprovers:
    """Return the designated whitelist approvers and quorum of ``[custody]``."""
    if config.custody is None:
        raise ValueError("the configuration has no [custody] table; see docs/custody-policy.md")
    keys = {name: raw for name, raw, _ in _approver_keys(config.custody) if raw is not None}
    return WhitelistApprovers(keys, quorum=config.custody.whitelist_quorum)


def open_policy_engine(config: ExchangeConfig, *, audit: AuditLog, clock: Clock) -> PolicyEngine:
    """Build the policy engine of ``config``: its ``[custody]`` rules, approvers and state file."""
    from exchange_framework.custody.policy import PolicyEngine

    if config.custody is None:
        raise ValueError("the configuration has no [custody] table; see docs/custody-policy.md")
    return PolicyEngine(
        policy_config(config),
        whitelist_approvers=whitelist_approvers(config),
        audit=audit,
        clock=clock,
        state_path=config.resolve_path(config.custody.state_path),
        change_ttl_ns=config.custody.whitelist_change_ttl_s * SECOND_NS,
    )
