"""Identity verification (KYC) through whichever provider ``[compliance.kyc] provider`` names.

Providers are :class:`~exchange_framework.interfaces.KycProvider` objects registered by plugins
(``register_kyc_providers``); the built-in ``manual`` one is the operator review queue
(:mod:`exchange_framework.default_kyc`). The kernel asks a provider only through :func:`kyc_verdict`, which fails
closed: an error, a timeout or an answer that is not a :class:`~exchange_framework.interfaces.Decision` is a hold.
:func:`apply_verdict` writes a verdict to the identity store: an allow raises the customer to the tier the
provider verified, a hold marks them pending, a rejection marks them rejected; nothing ever lowers a tier.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from exchange_framework.interfaces import Decision, KycProvider, Outcome

if TYPE_CHECKING:
    import pluggy

    from exchange_framework.config import ExchangeConfig
    from exchange_framework.identity import IdentityStore

__all__ = ["KycSetupError", "apply_verdict", "kyc_provider", "kyc_providers", "kyc_verdict"]

_log = logging.getLogger(__name__)


class KycSetupError(RuntimeError):
    """The configured KYC provider is not registered; the message lists those that are."""


def kyc_providers(pm: pluggy.PluginManager, config: ExchangeConfig) -> dict[str, KycProvider]:
    """Every registered KYC provider by name."""
    from exchange_framework.plugins import collect_registered  # the plugin manager imports the compliance package

    return collect_registered(pm, "register_kyc_providers", config=config)


def kyc_provider(pm: pluggy.PluginManager, config: ExchangeConfig, name: str | None = None) -> KycProvider:
    """The provider called ``name`` (default: ``[compliance.kyc] provider``); raise :class:`KycSetupError` if absent."""
    wanted = name or config.compliance.kyc.provider
    found = kyc_providers(pm, config)
    if wanted not in found:
        have = ", ".join(sorted(found)) or "none"
        raise KycSetupError(
            f"[compliance.kyc] provider = {wanted!r} is not a registered KYC provider (registered: {have}); "
            "install and enable its plugin or pick one of those"
        )
    return found[wanted]


def kyc_verdict(provider: KycProvider, reference: str) -> Decision:
    """Ask ``provider`` for its verdict on ``reference``, failing closed: any error or odd answer is a hold."""
    try:
        answer = provider.status(reference)
    except Exception as exc:
        _log.warning("KYC provider %s failed on %s: %s", provider.name, reference, exc)
        return Decision.hold(f"KYC provider {provider.name} failed: {exc}", provider=provider.name)
    if not isinstance(answer, Decision):
        return Decision.hold(f"KYC provider {provider.name} gave no decision: {answer!r}", provider=provider.name)
    return answer


def apply_verdict(identity: IdentityStore, account: int, verdict: Decision, *, tier: int = 1) -> None:
    """Record a provider's verdict on ``account``: allow raises it to ``tier``; hold is pending; reject rejected.

    A tier is never lowered here (an operator does that); ``tier`` must be 1 or more.
    """
    if tier < 1:
        raise ValueError("a verified KYC tier is 1 or more")
    user = identity.user(account)
    if user is None:
        raise ValueError(f"there is no user with account {account}")
    if verdict.outcome is Outcome.ALLOW:
        identity.set_kyc(account, tier=max(user.kyc_tier, tier), status="approved")
    elif verdict.outcome is Outcome.REJECT:
        identity.set_kyc(account, tier=user.kyc_tier, status="rejected")
    else:
        identity.set_kyc(account, tier=user.kyc_tier, status="pending")
