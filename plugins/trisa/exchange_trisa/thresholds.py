"""Travel rule thresholds per jurisdiction: at or above them, originator and beneficiary data must travel.

Defaults: the United States' rule from USD 3,000; FATF recommendation 16 from USD/EUR 1,000. Override or add with
``[plugins.settings.trisa.thresholds]``, e.g. ``EU = { amount = "0", currency = "EUR" }`` (the EU's transfer of
funds regulation has no threshold between VASPs). Amounts are decimal strings, held as integer cents.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

import msgspec

__all__ = ["DEFAULT_THRESHOLDS", "Threshold", "ThresholdError", "parse_thresholds", "requires_travel_rule"]


class ThresholdError(ValueError):
    """A threshold setting that cannot be used; the message names it."""


class Threshold(msgspec.Struct, frozen=True):
    """The value (in cents of ``currency``) from which a jurisdiction's travel rule applies."""

    cents: int
    currency: str


DEFAULT_THRESHOLDS: Mapping[str, Threshold] = {
    "US": Threshold(300_000, "USD"),
    "FATF": Threshold(100_000, "USD"),
    "FATF-EUR": Threshold(100_000, "EUR"),
}


def parse_thresholds(settings: Mapping[str, Mapping[str, str]]) -> dict[str, Threshold]:
    """The defaults overlaid with ``{jurisdiction: {"amount": "<decimal>", "currency": "<ISO 4217>"}}``."""
    found = dict(DEFAULT_THRESHOLDS)
    for jurisdiction, item in settings.items():
        where = f"[plugins.settings.trisa.thresholds] {jurisdiction}"
        try:
            amount = Decimal(str(item["amount"]))
            currency = str(item["currency"])
        except (KeyError, TypeError, InvalidOperation):
            raise ThresholdError(f'{where}: write {{ amount = "1000", currency = "USD" }}') from None
        cents = amount * 100
        if not amount.is_finite() or amount < 0 or cents != cents.to_integral_value():
            raise ThresholdError(f"{where}: amount {item['amount']!r} must be a non-negative amount in whole cents")
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise ThresholdError(f"{where}: currency {currency!r} must be an ISO 4217 code such as USD")
        found[jurisdiction] = Threshold(int(cents), currency)
    return found


def requires_travel_rule(thresholds: Mapping[str, Threshold], jurisdiction: str, cents: int, currency: str) -> bool:
    """Whether a transfer worth ``cents`` of ``currency`` needs travel rule data in ``jurisdiction``.

    An unknown jurisdiction, or a value in another currency than its threshold's, requires it (fail closed).
    """
    threshold = thresholds.get(jurisdiction)
    if threshold is None or threshold.currency != currency:
        return True
    return cents >= threshold.cents
