"""Built-in plugin: OFAC SDN screening of deposit sources, withdrawal destinations and applicants' names.

Configured by ``[compliance.ofac]`` (see :class:`~exchange_framework.config.OfacSettings`). Without a ``source``
it has no opinion (the kernel still holds anything nobody else screens). With one, it answers:

- a listed deposit source or withdrawal destination: HOLD with the reason :data:`FROZEN_REASON` ("sanctions hit:
  frozen") and what was hit. A hold, never a rejection: a rejected withdrawal's funds are released back to the
  customer and a rejected deposit is never looked at again, while a sanctioned party's funds must stay frozen
  until an operator works the case (and files the report);
- an applicant whose name resembles a listed name or alias at ``name_threshold`` or above: HOLD with
  :data:`FROZEN_REASON`, each hit explained (matched name, score, threshold, SDN entry and programme): the account
  is frozen until an officer clears the case (:mod:`exchange_framework.compliance.onboarding`); an applicant
  without a name yet (a sign-up before KYC): no opinion;
- otherwise ALLOW, but only while a list is loaded: with no usable list (never downloaded, no cached copy) it
  answers HOLD, failing closed.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.compliance.ofac import SdnList
from exchange_framework.compliance.onboarding import frozen_accounts
from exchange_framework.compliance.refresh import BUILTIN, OfacListKeeper
from exchange_framework.config import ExchangeConfig
from exchange_framework.hookspecs import hookimpl
from exchange_framework.interfaces import (
    Decision,
    DepositRequest,
    OnboardingRequest,
    SanctionsScreener,
    WithdrawalRequest,
)

__all__ = ["PROVIDER", "OfacScreener", "applicant_name", "keeper_for"]

PROVIDER = "ofac"

_keepers: dict[tuple[Path, str], OfacListKeeper] = {}
_keepers_lock = threading.Lock()
_by_config: dict[int, tuple[ExchangeConfig, OfacListKeeper]] = {}  # the config object kept: its id is not reused


def keeper_for(config: ExchangeConfig | None) -> OfacListKeeper | None:
    """Return the (started) SDN list keeper of the exchange ``config`` describes, or None if no source is set.

    One keeper per data directory and source, shared by every plugin manager of that exchange in this process.
    """
    if not isinstance(config, ExchangeConfig) or config.compliance.ofac.source is None:
        return None
    known = _by_config.get(id(config))
    if known is not None and known[0] is config:  # every screening asks: skip resolving paths again
        return known[1]
    settings = config.compliance.ofac
    assert settings.source is not None
    source = settings.source
    if source != BUILTIN and urllib.parse.urlsplit(source).scheme not in {"http", "https", "file"}:
        source = str(config.resolve_path(source))
    cache_dir = config.journal_path().parent / "ofac"
    key = (cache_dir.resolve(), source)
    with _keepers_lock:
        keeper = _keepers.get(key)
        if keeper is None:
            keeper = _keepers[key] = OfacListKeeper(
                source, cache_dir, refresh_seconds=settings.refresh_hours * 3600, timeout=settings.timeout_seconds
            )
    keeper.start()
    with _keepers_lock:
        if len(_by_config) >= 64:
            _by_config.clear()
        _by_config[id(config)] = (config, keeper)
    return keeper


def _current(keeper: OfacListKeeper) -> SdnList | Decision:
    found = keeper.current
    if found is None:
        error = keeper.status.last_error or "not loaded"
        return Decision.hold(f"OFAC screening has no usable SDN list ({error})", provider=PROVIDER)
    keeper.refresh_if_due()
    return found


def _screen_addresses(sdn: SdnList, addresses: tuple[str, ...], role: str) -> Decision:
    hits = [hit for address in addresses for hit in sdn.screen_address(address)]
    if hits:
        return Decision.hold(FROZEN_REASON, *(f"{role}: {hit.explain()}" for hit in hits), provider=PROVIDER)
    if not addresses:
        return Decision.allow(f"no {role} address to screen", provider=PROVIDER)
    return Decision.allow(f"{role} not on the OFAC SDN list", provider=PROVIDER)


def applicant_name(details: Mapping[str, str]) -> str:
    """Return the applicant's name from an onboarding request's details (``full_name``, ``name``, or first + last)."""
    for key in ("full_name", "name"):
        if str(details.get(key, "")).strip():
            return str(details[key]).strip()
    parts = (str(details.get(key, "")).strip() for key in ("first_name", "middle_name", "last_name"))
    return " ".join(part for part in parts if part)


class OfacScreener:
    """The built-in :class:`~exchange_framework.interfaces.SanctionsScreener`: the OFAC SDN list, in process."""

    name = PROVIDER

    def __init__(self, keeper: OfacListKeeper, threshold: float) -> None:
        self.keeper = keeper
        self.threshold = threshold

    def screen_party(self, name: str, country: str) -> Decision:
        """Hold a name resembling a listed name or alias (every hit explained); allow others."""
        sdn = _current(self.keeper)
        if isinstance(sdn, Decision):
            return sdn
        if not name.strip():
            return Decision.hold("no applicant name to screen against the OFAC SDN list", provider=PROVIDER)
        hits = sdn.screen_name(name, threshold=self.threshold)
        if hits:
            return Decision.hold(
                "possible OFAC SDN name match", *(hit.explain() for hit in hits), FROZEN_REASON, provider=PROVIDER
            )
        return Decision.allow(f"{name!r} resembles no OFAC SDN name at {self.threshold}", provider=PROVIDER)

    def screen_address(self, chain: str, address: str) -> Decision:
        """Hold (frozen) a listed address; allow others."""
        sdn = _current(self.keeper)
        if isinstance(sdn, Decision):
            return sdn
        return _screen_addresses(sdn, (address,), "address")


def _screener(config: ExchangeConfig | None) -> OfacScreener | None:
    keeper = keeper_for(config)
    if keeper is None or not isinstance(config, ExchangeConfig):
        return None
    return OfacScreener(keeper, float(config.compliance.ofac.name_threshold))


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Load the SDN list (cached copy, then a refresh) as the exchange starts."""
    keeper_for(config)


@hookimpl(trylast=True)
def register_sanctions_screeners(config: ExchangeConfig) -> list[SanctionsScreener] | None:
    """Register the OFAC screener when ``[compliance.ofac] source`` is set."""
    screener = _screener(config)
    return [screener] if screener is not None else None


@hookimpl(trylast=True)
def screen_onboarding(config: ExchangeConfig, request: OnboardingRequest) -> Decision | None:
    """Screen the applicant's name against the SDN list's names and aliases."""
    screener = _screener(config)
    name = applicant_name(request.details)
    if screener is None or not name:  # nothing to screen yet (a sign-up before KYC): the kernel decides
        return None
    return screener.screen_party(name, request.country)


@hookimpl(trylast=True)
def screen_deposit(config: ExchangeConfig, request: DepositRequest) -> Decision | None:
    """Screen every source address of a deposit; a listed one freezes it (hold)."""
    keeper = keeper_for(config)
    if keeper is None:
        return None
    sdn = _current(keeper)
    if isinstance(sdn, Decision):
        return sdn
    return _screen_addresses(sdn, tuple(request.source_addresses), "deposit source")


@hookimpl(trylast=True)
def screen_withdrawal(config: ExchangeConfig, request: WithdrawalRequest) -> Decision | None:
    """Screen a withdrawal's destination; a listed one freezes it (hold, so the held funds stay held).

    A withdrawal of an account frozen at onboarding is held frozen whatever its destination.
    """
    keeper = keeper_for(config)
    if keeper is None or not isinstance(config, ExchangeConfig):
        return None
    if frozen_accounts(config).is_frozen(int(request.account)):
        return Decision.hold(
            FROZEN_REASON, f"account {request.account} is frozen by an onboarding compliance case", provider=PROVIDER
        )
    sdn = _current(keeper)
    if isinstance(sdn, Decision):
        return sdn
    return _screen_addresses(sdn, (request.address,), "withdrawal destination")
