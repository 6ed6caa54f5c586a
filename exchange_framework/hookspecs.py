"""Every hook a plugin can implement, grouped by when the kernel calls it.

Write an implementation with the ``hookimpl`` marker and the hook's name; accept only the arguments you need
(the kernel always calls hooks by keyword, so a hook can gain arguments without breaking plugins)::

    from exchange_framework import hookimpl

    @hookimpl
    def register_chain_adapters(config):
        return [MyChainAdapter(config.plugin_settings("my-chain"))]

Hook families, named by what the kernel does with the answer:

- ``register_*`` returns a list of named items; the kernel collects every plugin's list, and two plugins
  registering the same name is a start-up error naming both.
- ``extra_*`` returns something the kernel appends or merges into what it is building.
- ``prepare_*`` adjusts an object as the kernel makes it, in place; the return value is ignored.
- ``*_wrapper`` returns a function that wraps one of the kernel's (an ASGI app, say).
- ``screen_*`` returns a compliance :class:`~exchange_framework.interfaces.Decision`; the strictest one wins.

``docs/plugin-hooks.md`` is generated from this module: run ``python -m exchange_framework.plugins`` after changing
it. Sections are marked with ``# -- Title --`` comments, which the generator reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from exchange_framework.config import ExchangeConfig
    from exchange_framework.interfaces import (
        AdminPage,
        ChainAdapter,
        CustodyBalance,
        CustodySigner,
        Decision,
        DepositRequest,
        EventSubscriber,
        JournalBackend,
        KycProvider,
        LedgerBackend,
        MarketDataPublisher,
        OnboardingRequest,
        SanctionsScreener,
        TravelRuleProvider,
        WithdrawalRequest,
    )

PROJECT_NAME = "exchange_framework"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

ASGIApp = Callable[..., Any]  # starlette's ASGI callable: (scope, receive, send) -> awaitable


# -- Lifecycle --


@hookspec(historic=True)
def startup(config: ExchangeConfig) -> None:
    """Called once when an exchange instance starts, after every plugin is loaded and the config is validated.

    Use it to check a plugin's own settings (``config.plugin_settings(name)``) and fail fast by raising. The call is
    historic: a plugin registered later still receives it. The return value is ignored.
    """


@hookspec
def shutdown(config: ExchangeConfig) -> None:
    """Called once when an exchange instance stops cleanly, after the engine and consumers have stopped.

    Release what ``startup`` acquired. Not called after a crash: recovery relies on the journal, not on this hook.
    The return value is ignored.
    """


# -- Command line --


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called once as the ``exchange`` command line starts, to add commands to it.

    Add them with ``@cli.command()`` or ``cli.add_command(...)``. A command named like a built-in one is ignored
    in favour of the built-in. The return value is ignored.
    """


# -- Sequencing and storage --


@hookspec
def register_journal_backends(config: ExchangeConfig) -> list[JournalBackend] | None:
    """Return command journal backends, selected by ``[backends] journal = "<name>"``.

    Called at start-up; every plugin's items are collected. The built-in ``file`` backend is registered by
    ``exchange_framework.default_journal``. ``None`` means the plugin registers none.
    """


@hookspec
def register_ledger_stores(config: ExchangeConfig) -> list[LedgerBackend] | None:
    """Return ledger backends, selected by ``[backends] ledger = "<name>"``; each opens a :class:`LedgerStore`.

    Called at start-up; every plugin's items are collected. The built-in ``sqlite`` and ``postgresql`` backends
    are registered by ``exchange_framework.default_ledger``. ``None`` means the plugin registers none.
    """


# -- Engine events --


@hookspec
def register_event_subscribers(config: ExchangeConfig) -> list[EventSubscriber] | None:
    """Return subscribers that consume every engine event in sequence order.

    Called at start-up. Each subscriber reports the last sequence number it handled and receives events after it,
    so it must apply them idempotently by ``event.seq``. All registered subscribers run. ``None`` means none.
    """


@hookspec
def register_market_data_publishers(config: ExchangeConfig) -> list[MarketDataPublisher] | None:
    """Return publishers that send public market data (trades, order book changes) to a transport.

    Called at start-up; all registered publishers run. ``None`` means the plugin registers none.
    """


# -- Chains and custody --


@hookspec
def register_chain_adapters(config: ExchangeConfig) -> list[ChainAdapter] | None:
    """Return adapters for blockchain networks, one per chain (the adapter's ``name``, such as "bitcoin").

    Called at start-up; every plugin's items are collected, and two adapters with the same name are a start-up
    error. Read the adapter's settings (node URL, xpub, confirmations) with ``config.plugin_settings(name)``;
    an adapter holds no private key. The kernel's deposit tracker scans each adapter's chain and the withdrawal
    path builds, decodes, assembles and broadcasts through it. Run
    :class:`~exchange_framework.chains.conformance.ChainAdapterConformance` against your adapter in its tests;
    ``docs/chains.md`` explains the contract. ``None`` means the plugin registers none.
    """


@hookspec
def register_custody_signers(config: ExchangeConfig) -> list[CustodySigner] | None:
    """Return custody signers (HSM, threshold, cold storage), selected by name in the custody policy.

    Called at start-up; every plugin's items are collected. A signer only ever sees requests the kernel's policy
    engine approved. The hot-wallet signer is the one named by ``[backends] keystore``: the built-in ``software``
    keystore (``exchange_framework.default_keystore``) by default. Construct signers without touching keys or
    devices; read secrets (passphrases, PINs) on first use. ``None`` means the plugin registers none.
    """


@hookspec
def custody_balances(config: ExchangeConfig, assets: Sequence[str]) -> list[CustodyBalance] | None:
    """Return what the plugin's custody holds of each of ``assets``, per wallet, in atomic units.

    Called by ledger reconciliation (``exchange ledger check``, the admin custody page), which compares the reports
    with the ledger's custody accounts and reports any difference: account by account for reports that name their
    ``account`` (``omnibus:<tier>:<chain>``), per asset for the rest. Report every wallet you control, including
    empty ones. ``None`` means the plugin holds no custody; raising makes the reconciliation fail, never pass.
    """


# -- Compliance providers --


@hookspec
def register_kyc_providers(config: ExchangeConfig) -> list[KycProvider] | None:
    """Return identity verification (KYC) providers.

    Called at start-up; every plugin's items are collected. ``None`` means the plugin registers none.
    """


@hookspec
def register_sanctions_screeners(config: ExchangeConfig) -> list[SanctionsScreener] | None:
    """Return sanctions and blockchain-risk screeners.

    Called at start-up; every plugin's items are collected. ``None`` means the plugin registers none.
    """


@hookspec
def register_travel_rule_providers(config: ExchangeConfig) -> list[TravelRuleProvider] | None:
    """Return travel rule providers that exchange originator and beneficiary data with other VASPs.

    Called at start-up; every plugin's items are collected. ``None`` means the plugin registers none.
    """


# -- Compliance decisions --


@hookspec
def screen_onboarding(config: ExchangeConfig, request: OnboardingRequest) -> Decision | None:
    """Decide whether an applicant may open an account: allow, hold for review, or reject.

    Called for every sign-up; every plugin's decision is collected and the strictest wins. ``None`` means no
    opinion. If no plugin has an opinion, or any raises, the kernel holds the application (fail closed).
    """


@hookspec
def screen_deposit(config: ExchangeConfig, request: DepositRequest) -> Decision | None:
    """Decide whether a deposit seen on chain may be credited: allow, hold for review, or reject.

    Called once the deposit has its confirmations and before it is credited; every plugin's decision is collected
    and the strictest wins. ``None`` means no opinion. If no plugin has an opinion, or any raises, the kernel
    holds the deposit (fail closed).
    """


@hookspec
def screen_withdrawal(config: ExchangeConfig, request: WithdrawalRequest) -> Decision | None:
    """Decide whether a held withdrawal may go on to custody policy and signing: allow, hold, or reject.

    Called after the withdrawal is held on the ledger and before any signer sees it; every plugin's decision is
    collected and the strictest wins. ``None`` means no opinion. If no plugin has an opinion, or any raises, the
    kernel holds the withdrawal (fail closed).
    """


# -- Portal and API --


@hookspec
def register_routes(config: ExchangeConfig) -> list[Any] | None:
    """Return extra HTTP or WebSocket routes (starlette ``Route``/``WebSocketRoute``/``Mount`` objects).

    Called once while the web application is built; plugin routes are matched before the kernel's own, so use
    paths under a prefix of your own. ``None`` means the plugin adds none.
    """


@hookspec
def register_admin_pages(config: ExchangeConfig) -> list[AdminPage] | None:
    """Return pages to list in the admin console's navigation.

    Called once while the web application is built. Serve each page with a route from ``register_routes``; admin
    pages require an operator login and every request to them is audited. ``None`` means the plugin adds none.
    """


@hookspec
def register_template_dirs(config: ExchangeConfig) -> list[Path] | None:
    """Return directories of jinja2 templates for the portal and admin console.

    Called once while the template environment is built. The directories are searched after the operator's
    ``templates/`` and before the kernel's, so a plugin can add templates and override the default theme's.
    ``None`` means the plugin adds none.
    """


@hookspec
def prepare_jinja2_environment(env: Any, config: ExchangeConfig) -> None:
    """Adjust the portal's ``jinja2.Environment`` as it is created: add filters, globals or tests.

    Called once, after the template loaders are set up. Change ``env`` in place; the return value is ignored.
    """


@hookspec
def extra_template_vars(template: str, request: Any, config: ExchangeConfig) -> dict[str, Any] | None:
    """Return extra variables for rendering ``template`` (``request`` is the starlette request, or None).

    Called every time a portal or admin page is rendered; every plugin's dictionary is merged into the context,
    later plugins first so earlier ones win on clashes. ``None`` means no extra variables.
    """


@hookspec
def asgi_wrapper(config: ExchangeConfig) -> Callable[[ASGIApp], ASGIApp] | None:
    """Return a function that wraps the exchange's ASGI application (middleware), or ``None``.

    Called once as the web application is built; each wrapper receives the application wrapped so far and
    returns a new one.
    """
