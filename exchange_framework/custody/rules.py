"""What the custody policy engine is configured with: networks, wallets, ordered rules, velocity limits, groups.

All amounts are integers in the asset's atomic units and all durations integer nanoseconds; the ``[custody]``
config table is converted into these values at the edge (:mod:`exchange_framework.custody.policy_config`).
:meth:`PolicyConfig.problems` lists every mistake in one pass, each naming the item and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import NamedTuple

import msgspec

__all__ = [
    "DestinationMatch",
    "Network",
    "PolicyConfig",
    "PolicyProblem",
    "Rule",
    "RuleAction",
    "Tier",
    "VelocityLimit",
    "VelocityScope",
    "Wallet",
]

SECOND_NS = 10**9


class Tier(StrEnum):
    """How exposed a source wallet's keys are."""

    HOT = "hot"  # HSM or software keystore, signs automatically
    WARM = "warm"  # threshold signers
    COLD = "cold"  # offline Shamir shares


class RuleAction(StrEnum):
    """What a matching rule decides."""

    ALLOW = "allow"
    BLOCK = "block"
    APPROVE = "approve"  # require ``approvals`` distinct approvals from ``group``


class DestinationMatch(StrEnum):
    """Which destinations a rule applies to."""

    WHITELISTED = "whitelisted"  # on the custody whitelist and past its cooling-off (the default)
    UNLISTED = "unlisted"  # not (yet) usable from the whitelist, such as a customer's own address book entry
    ANY = "any"


class Rule(msgspec.Struct, frozen=True):
    """One policy rule. A field left ``None`` matches anything; amount bounds are inclusive atomic units.

    Rules are tried in order and the first that matches decides; a withdrawal no rule matches is blocked. By
    default a rule only matches whitelisted destinations: a rule for others must say ``destination``.
    """

    name: str
    action: RuleAction
    chain: str | None = None
    asset: str | None = None
    tier: Tier | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    approvals: int = 0
    group: str | None = None
    destination: DestinationMatch = DestinationMatch.WHITELISTED

    def matches(self, *, chain: str, asset: str, tier: Tier, amount: int, whitelisted: bool) -> bool:
        """Whether this rule applies to a withdrawal of ``amount`` ``asset`` on ``chain`` from a ``tier`` wallet
        to a destination that is (or is not) ``whitelisted``."""
        return (
            self.destination is DestinationMatch.ANY
            or (self.destination is DestinationMatch.WHITELISTED) == whitelisted
        ) and (
            (self.chain is None or self.chain == chain)
            and (self.asset is None or self.asset == asset)
            and (self.tier is None or self.tier == tier)
            and (self.min_amount is None or amount >= self.min_amount)
            and (self.max_amount is None or amount <= self.max_amount)
        )


class VelocityScope(StrEnum):
    """What a velocity limit sums over."""

    ASSET = "asset"  # every withdrawal of the asset
    ACCOUNT = "account"  # each customer account's withdrawals of the asset


class VelocityLimit(msgspec.Struct, frozen=True):
    """At most ``max_amount`` of ``asset`` approved in any sliding window of ``window_ns`` (per ``per``).

    ``tier`` and ``chain``, when set, restrict which withdrawals count (and are limited).
    """

    name: str
    asset: str
    window_ns: int
    max_amount: int
    per: VelocityScope = VelocityScope.ASSET
    tier: Tier | None = None
    chain: str | None = None

    def applies(self, *, chain: str, asset: str, tier: Tier) -> bool:
        """Whether withdrawals of ``asset`` on ``chain`` from a ``tier`` wallet count against this limit."""
        return (
            self.asset == asset
            and (self.tier is None or self.tier == tier)
            and (self.chain is None or self.chain == chain)
        )


class Network(msgspec.Struct, frozen=True):
    """A chain the exchange withdraws on: the chain id its transactions must carry, and an optional fee cap."""

    chain: str
    chain_id: str
    max_fee: int | None = None  # in the chain's fee asset atomic units


class Wallet(msgspec.Struct, frozen=True):
    """A custody wallet withdrawals may pay from: its address on ``chain``, its tier and, if set, its key."""

    chain: str
    address: str
    tier: Tier
    key_id: str | None = None


class PolicyProblem(NamedTuple):
    """One mistake in a policy configuration: where (a key path under ``[custody]``), the value, and what to do."""

    path: tuple[str | int, ...]
    value: object
    message: str

    def __str__(self) -> str:
        return self.message


class PolicyConfig(msgspec.Struct, frozen=True):
    """Everything the policy engine decides with (see ``docs/custody-policy.md``)."""

    networks: Sequence[Network]
    wallets: Sequence[Wallet]
    rules: Sequence[Rule]
    groups: Mapping[str, frozenset[str]] = {}
    limits: Sequence[VelocityLimit] = ()
    approval_ttl_ns: int = 24 * 3600 * SECOND_NS  # how long an approval counts
    release_ttl_ns: int = 3600 * SECOND_NS  # how long an approved withdrawal may wait for the signer

    def network(self, chain: str) -> Network | None:
        """Return the configured network of ``chain``, if any."""
        for network in self.networks:
            if network.chain == chain:
                return network
        return None

    def wallet(self, chain: str, address: str) -> Wallet | None:
        """Return the custody wallet at ``address`` on ``chain``, if any."""
        for wallet in self.wallets:
            if wallet.chain == chain and wallet.address == address:
                return wallet
        return None

    def first_match(self, *, chain: str, asset: str, tier: Tier, amount: int, whitelisted: bool) -> Rule | None:
        """Return the first rule matching the withdrawal, or None (then it is blocked)."""
        for rule in self.rules:
            if rule.matches(chain=chain, asset=asset, tier=tier, amount=amount, whitelisted=whitelisted):
                return rule
        return None

    def rule(self, name: str) -> Rule | None:
        """Return the rule called ``name``, if it is configured."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        return None

    def problems(self) -> list[PolicyProblem]:
        """Return every mistake in the configuration (empty if it is usable), each with where it is."""
        problems: list[PolicyProblem] = []

        def add(path: tuple[str | int, ...], value: object, message: str) -> None:
            problems.append(PolicyProblem(path, value, message))

        chains = [n.chain for n in self.networks]
        for chain in sorted({c for c in chains if chains.count(c) > 1}):
            add(("networks", chain), chain, f"network {chain!r} is configured more than once")
        for n in self.networks:
            if not n.chain_id:
                add(("networks", n.chain, "chain_id"), n.chain_id, f"network {n.chain!r}: chain_id must not be empty")
            if n.max_fee is not None and n.max_fee < 0:
                add(("networks", n.chain, "max_fee"), n.max_fee, f"network {n.chain!r}: max_fee must not be negative")
        seen_wallets: set[tuple[str, str]] = set()
        for i, w in enumerate(self.wallets):
            if (w.chain, w.address) in seen_wallets:
                add(("wallets", i), w.address, f"wallet {w.chain}:{w.address} is listed more than once")
            seen_wallets.add((w.chain, w.address))
            if w.chain not in chains:
                add(
                    ("wallets", i, "chain"),
                    w.chain,
                    f"wallet {w.chain}:{w.address}: no network {w.chain!r} is configured",
                )
        for name, members in self.groups.items():
            if not members:
                add(("groups", name), [], f"approver group {name!r} has no members")
        names = [r.name for r in self.rules]
        for i, rule in enumerate(self.rules):
            where = f"rule {i + 1} ({rule.name!r})"
            path: tuple[str | int, ...] = ("rules", i)
            if not rule.name:
                add((*path, "name"), rule.name, f"rule {i + 1}: needs a name (it is recorded with every decision)")
            elif names.count(rule.name) > 1:
                add((*path, "name"), rule.name, f"{where}: another rule has the same name")
            if rule.chain is not None and rule.chain not in chains:
                add((*path, "chain"), rule.chain, f"{where}: no network {rule.chain!r} is configured")
            if (rule.min_amount is not None or rule.max_amount is not None) and rule.asset is None:
                add(path, rule.name, f"{where}: amount bounds need an asset (amounts are in that asset's atomic units)")
            for key, value in (("min_amount", rule.min_amount), ("max_amount", rule.max_amount)):
                if value is not None and value < 0:
                    add((*path, key), value, f"{where}: {key} must not be negative")
            if rule.min_amount is not None and rule.max_amount is not None and rule.min_amount > rule.max_amount:
                add(
                    (*path, "min_amount"),
                    rule.min_amount,
                    f"{where}: min_amount is above max_amount, so the rule can never match",
                )
            if rule.action is RuleAction.APPROVE:
                if rule.group is None:
                    add((*path, "group"), None, f"{where}: action 'approve' needs a group of approvers")
                elif rule.group not in self.groups:
                    known = ", ".join(sorted(self.groups)) or "none defined"
                    add(
                        (*path, "group"),
                        rule.group,
                        f"{where}: unknown approver group {rule.group!r} (groups: {known})",
                    )
                elif not 1 <= rule.approvals <= len(self.groups[rule.group]):
                    add(
                        (*path, "approvals"),
                        rule.approvals,
                        f"{where}: approvals must be between 1 and the size of group {rule.group!r} "
                        f"({len(self.groups[rule.group])}), not {rule.approvals}",
                    )
            elif rule.approvals or rule.group is not None:
                add(path, rule.name, f"{where}: only action 'approve' takes approvals and a group")
        if not self.rules:
            add(("rules",), [], "no rules: every withdrawal would be blocked; add at least one rule")
        limit_names = [limit.name for limit in self.limits]
        for i, limit in enumerate(self.limits):
            where = f"velocity limit {limit.name!r}"
            path = ("limits", i)
            if limit_names.count(limit.name) > 1:
                add((*path, "name"), limit.name, f"{where}: another limit has the same name")
            if limit.window_ns <= 0:
                add((*path, "window"), limit.window_ns, f"{where}: the window must be positive")
            if limit.max_amount < 0:
                add((*path, "max_amount"), limit.max_amount, f"{where}: max_amount must not be negative")
            if limit.chain is not None and limit.chain not in chains:
                add((*path, "chain"), limit.chain, f"{where}: no network {limit.chain!r} is configured")
        if self.approval_ttl_ns <= 0:
            add(("approval_ttl",), self.approval_ttl_ns, "approval_ttl must be positive")
        if self.release_ttl_ns <= 0:
            add(("release_ttl",), self.release_ttl_ns, "release_ttl must be positive")
        return problems
