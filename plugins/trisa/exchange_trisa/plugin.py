"""The ``trisa`` plugin: registers the TRISA travel rule provider from ``[plugins.settings.trisa]``.

See ``docs/travel-rule.md`` for every setting. The plugin is inactive without that table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import msgspec

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.funding.store import DepositStore
from exchange_framework.interfaces import TravelRuleProvider
from exchange_trisa import envelope
from exchange_trisa.directory import CounterpartyDirectory, GdsDirectory, StaticDirectory
from exchange_trisa.provider import UNKNOWN_VASP_POLICIES, TrisaProvider, parse_prices
from exchange_trisa.receiver import Receiver
from exchange_trisa.store import TransferStore
from exchange_trisa.thresholds import parse_thresholds
from exchange_trisa.transport import MtlsIdentity, TrisaClient, TrisaServer

__all__ = [
    "Settings",
    "TrisaSettingsError",
    "customer_addresses",
    "make_provider",
    "provider_for",
    "register_commands",
    "register_travel_rule_providers",
    "serve",
    "server_for",
    "shutdown",
    "startup",
]

NAME = "trisa"


class TrisaSettingsError(ValueError):
    """``[plugins.settings.trisa]`` cannot be used; the message names the setting."""


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    """``[plugins.settings.trisa]``. Paths are relative to the config file."""

    vasp_name: str  # our legal name, the originating VASP in IVMS101
    certificate: str  # PEM certificate (chain) issued to us by the directory's CA: our mTLS identity
    private_key: str  # its PEM private key
    trust_chain: str  # PEM CA bundle that issues TRISA certificates (the directory's)
    sealing_key: str  # PEM RSA private key that envelopes to us are sealed to
    jurisdiction: str = "FATF"
    reference_prices: dict[str, str] = {}  # asset -> price of one whole unit in the threshold currency
    thresholds: dict[str, dict[str, str]] = {}
    unknown_vasp: str = "hold"  # hold | reject | allow
    directory: str = "static"  # static | gds
    gds_endpoint: str = ""
    gds_trust_chain: str = ""  # PEM CA bundle for the directory's TLS certificate ("" = system roots)
    gds_client_certificate: bool = False  # present our certificate to the directory (its members endpoint)
    counterparties: dict[str, dict[str, str]] = {}  # common name -> {endpoint, name, country, sealing_key}
    addresses: dict[str, str] = {}  # destination address -> the common name of the VASP holding it
    timeout_seconds: float = 10.0
    retry_seconds: float = 10.0  # wait between attempts to deliver one transfer (unreachable, or pending)
    listen: str = ""  # "host:port" to answer incoming transfers on ("" = send only)
    receive_chains: list[str] = []  # chains whose deposit addresses are our customers' (for incoming transfers)


def _read(config_root: Path, path: str, what: str) -> bytes:
    full = Path(path) if Path(path).is_absolute() else config_root / path
    try:
        return full.read_bytes()
    except OSError as exc:
        raise TrisaSettingsError(f"[plugins.settings.trisa] {what} = {path!r}: cannot read {full}: {exc}") from None


def make_provider(settings: Settings, *, root: Path, data_dir: Path, decimals: Mapping[str, int]) -> TrisaProvider:
    """The provider for ``settings`` (files under ``root``, its records in ``data_dir/trisa.db``)."""
    if settings.unknown_vasp not in UNKNOWN_VASP_POLICIES:
        raise TrisaSettingsError(
            f"[plugins.settings.trisa] unknown_vasp = {settings.unknown_vasp!r}: "
            f"use one of {', '.join(UNKNOWN_VASP_POLICIES)}"
        )
    identity = MtlsIdentity(
        certificate=_read(root, settings.certificate, "certificate"),
        private_key=_read(root, settings.private_key, "private_key"),
        trust_chain=_read(root, settings.trust_chain, "trust_chain"),
    )
    try:
        common_name = identity.common_name()
        sealing_key = envelope.load_private_key(_read(root, settings.sealing_key, "sealing_key"))
        thresholds = parse_thresholds(settings.thresholds)
        prices = parse_prices(settings.reference_prices)
        directory: CounterpartyDirectory
        if settings.directory == "gds":
            if not settings.gds_endpoint:
                raise ValueError('directory = "gds" needs gds_endpoint = "host:port"')
            trust = _read(root, settings.gds_trust_chain, "gds_trust_chain") if settings.gds_trust_chain else None
            directory = GdsDirectory(
                settings.gds_endpoint,
                trust_chain=trust,
                identity=identity if settings.gds_client_certificate else None,
                timeout=settings.timeout_seconds,
            )
        elif settings.directory == "static":
            directory = StaticDirectory(settings.counterparties)
        else:
            raise ValueError(f'directory = {settings.directory!r}: use "static" or "gds"')
    except ValueError as exc:
        raise TrisaSettingsError(f"[plugins.settings.trisa] {exc}") from None
    return TrisaProvider(
        common_name=common_name,
        vasp_name=settings.vasp_name,
        client=TrisaClient(identity, timeout=settings.timeout_seconds),
        directory=directory,
        sealing_key=sealing_key,
        store=TransferStore(data_dir / "trisa.db"),
        thresholds=thresholds,
        jurisdiction=settings.jurisdiction,
        prices=prices,
        decimals=decimals,
        addresses=settings.addresses,
        unknown_vasp=settings.unknown_vasp,
        retry_seconds=settings.retry_seconds,
    )


_providers: dict[int, tuple[ExchangeConfig, TrisaProvider]] = {}
_servers: dict[int, tuple[ExchangeConfig, TrisaServer, DepositStore]] = {}


def customer_addresses(deposits: DepositStore, chains: Sequence[str]) -> Callable[[str], bool]:
    """Whether an address is a deposit address handed to one of our customers on one of ``chains``."""

    def is_customer(address: str) -> bool:
        return any(address == watched for chain in chains for watched, _memo in deposits.watched(chain))

    return is_customer


def server_for(config: Any) -> TrisaServer | None:
    """Our node's running TRISA server for ``config`` (started by ``startup`` when ``listen`` is set)."""
    found = _servers.get(id(config))
    return found[1] if found is not None and found[0] is config else None


def provider_for(config: Any) -> TrisaProvider | None:
    """The provider for ``config`` (one per config object), or ``None`` when the plugin is not configured."""
    if not isinstance(config, ExchangeConfig) or NAME not in config.plugins.settings:
        return None
    found = _providers.get(id(config))
    if found is not None and found[0] is config:
        return found[1]
    try:
        settings = msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    except msgspec.ValidationError as exc:
        raise TrisaSettingsError(f"[plugins.settings.trisa]: {exc}") from None
    provider = make_provider(
        settings,
        root=config.root,
        data_dir=config.journal_path().parent,
        decimals={symbol: asset.decimals for symbol, asset in config.assets.items()},
    )
    _providers[id(config)] = (config, provider)
    return provider


def serve(config: ExchangeConfig) -> TrisaServer | None:
    """Start answering incoming transfers on ``listen`` (once per config); ``None`` when not configured to."""
    provider = provider_for(config)
    if provider is None:
        return None
    running = server_for(config)
    if running is not None:
        return running
    settings = msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    if not settings.listen:
        return None
    if not settings.receive_chains:
        raise TrisaSettingsError("[plugins.settings.trisa] listen needs receive_chains = [<chain names>]")
    deposits = DepositStore(config.journal_path().parent / "deposits.db")
    receiver = Receiver(
        sealing_key=provider.sealing_key,
        is_customer=customer_addresses(deposits, settings.receive_chains),
        store=provider.store,
        replies=provider.handle_reply,
    )
    server = TrisaServer(
        provider.client.identity,
        transfer=receiver.transfer,
        key_exchange=receiver.key_exchange,
        address=settings.listen,
    )
    server.start()
    _servers[id(config)] = (config, server, deposits)
    return server


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings, certificates and keys as the exchange starts (a mistake stops it with a clear message);
    with ``listen``, start answering incoming transfers."""
    serve(config)


@hookimpl
def shutdown(config: ExchangeConfig) -> None:
    """Stop answering incoming transfers and close the provider's connections."""
    found = _servers.pop(id(config), None)
    if found is not None and found[0] is config:
        found[1].stop()
        found[2].close()
    provider = _providers.pop(id(config), None)
    if provider is not None and provider[0] is config:
        provider[1].client.close()


@hookimpl
def register_travel_rule_providers(config: ExchangeConfig) -> list[TravelRuleProvider] | None:
    """Register the ``trisa`` provider when ``[plugins.settings.trisa]`` is present; the exchange that sends
    travel rule messages also answers them (``listen``), so the server starts here too."""
    provider = provider_for(config)
    if provider is None:
        return None
    serve(config)
    return [provider]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``exchange trisa`` (lookup, search, status)."""
    from exchange_trisa.cli import trisa

    cli.add_command(trisa)
