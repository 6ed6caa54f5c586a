"""{{ cookiecutter.plugin_name.strip() }}: a sanctions screener backed by a small local list.

The lists come from the plugin's settings in ``exchange.toml``::

    [plugins.settings.{{ cookiecutter.__slug }}]
    names = ["Bad Actor Trading Ltd"]        # people and companies
    countries = ["KP"]                       # ISO 3166-1 alpha-2 codes
    addresses = ["bitcoin:1BadActor..."]     # "<chain>:<address>"

To screen against a vendor instead, replace the set lookups in :class:`LocalListScreener` with calls to its API
and keep the fail-closed rule: raise when you cannot get an answer (the kernel then holds the action for review);
never return ``Decision.allow`` in doubt.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import Decision, DepositRequest, WithdrawalRequest

PLUGIN_NAME = "{{ cookiecutter.__slug }}"
SETTINGS = f"[plugins.settings.{PLUGIN_NAME}]"


def normalise_name(name: str) -> str:
    """Return ``name`` case-folded, without accents or punctuation, with single spaces: the form lists match on."""
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(char if char.isalnum() else " " for char in decomposed if not unicodedata.combining(char))
    return " ".join(kept.casefold().split())


def address_key(chain: str, address: str) -> tuple[str, str]:
    """Return the form addresses match on: case-folded, so a listed address is found whatever its letter case.

    Case-folding can only add matches (two base58 addresses that differ in case alone both count as listed): the
    screener may over-match, never miss.
    """
    return chain.strip().casefold(), address.strip().casefold()


class LocalListScreener:
    """Screens names, countries and addresses against lists held in memory; exact matches after normalising."""

    def __init__(
        self,
        *,
        names: Iterable[str] = (),
        countries: Iterable[str] = (),
        addresses: Iterable[tuple[str, str]] = (),
        name: str = PLUGIN_NAME,
    ) -> None:
        self.name = name
        self.names = frozenset(normalise_name(listed) for listed in names)
        self.countries = frozenset(country.strip().upper() for country in countries)
        self.addresses = frozenset(address_key(chain, address) for chain, address in addresses)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LocalListScreener:
        """Build a screener from the plugin's settings table; raise ``ValueError`` naming the first bad entry."""
        unknown = sorted(set(settings) - {"names", "countries", "addresses"})
        if unknown:
            raise ValueError(f"{SETTINGS}: unknown key {unknown[0]!r}; known keys: names, countries, addresses")
        names = _strings(settings, "names")
        countries = _strings(settings, "countries")
        for country in countries:
            if len(country.strip()) != 2 or not country.strip().isalpha():
                raise ValueError(f"{SETTINGS} countries: {country!r} is not a two-letter ISO 3166-1 code")
        addresses: list[tuple[str, str]] = []
        for entry in _strings(settings, "addresses"):
            chain, _, address = entry.partition(":")
            if not chain.strip() or not address.strip():
                raise ValueError(f"{SETTINGS} addresses: {entry!r} is not written '<chain>:<address>'")
            addresses.append((chain, address))
        return cls(names=names, countries=countries, addresses=addresses)

    def screen_party(self, name: str, country: str) -> Decision:
        """Reject a person or company whose name or country is listed; allow anyone else."""
        if normalise_name(name) in self.names:
            return Decision.reject(f"{name!r} is on the {self.name} sanctions list", provider=self.name)
        if country.strip().upper() in self.countries:
            return Decision.reject(f"country {country!r} is on the {self.name} sanctions list", provider=self.name)
        return Decision.allow(provider=self.name)

    def screen_address(self, chain: str, address: str) -> Decision:
        """Reject an address listed for ``chain``; allow any other."""
        if address_key(chain, address) in self.addresses:
            return Decision.reject(
                f"{chain} address {address} is on the {self.name} sanctions list", provider=self.name
            )
        return Decision.allow(provider=self.name)


def _strings(settings: Mapping[str, Any], key: str) -> list[str]:
    value = settings.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{SETTINGS} {key} must be a list of strings, not {value!r}")
    return value


def screener(config: ExchangeConfig) -> LocalListScreener:
    """Return the screener described by ``config``'s settings for this plugin."""
    return LocalListScreener.from_settings(config.plugin_settings(PLUGIN_NAME))


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the plugin's settings as the exchange starts: a mistake stops the start with a clear error."""
    screener(config)


@hookimpl
def register_sanctions_screeners(config: ExchangeConfig) -> list[LocalListScreener]:
    """Register the screener, under the plugin's name."""
    return [screener(config)]


@hookimpl
def screen_deposit(config: ExchangeConfig, request: DepositRequest) -> Decision | None:
    """Reject a deposit paid from a listed address, allow one from unlisted addresses.

    ``None`` (no opinion) when the chain reported no payer address: there is nothing to screen, and the kernel
    holds the deposit if no other screener has an opinion either.
    """
    if not request.source_addresses:
        return None
    listed = screener(config)
    return Decision.combine(listed.screen_address(request.chain, source) for source in request.source_addresses)


@hookimpl
def screen_withdrawal(config: ExchangeConfig, request: WithdrawalRequest) -> Decision:
    """Reject a withdrawal to a listed address; allow one to any other."""
    return screener(config).screen_address(request.chain, request.address)
