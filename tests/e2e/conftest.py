"""End to end on local chains: the exchange as an operator configures it, with its hot wallet in a SoftHSM2 token.

Each chain's module starts its node once and runs the whole money path through the real kernel pieces: the
exchange node (journal, engine, settlement into the SQLite ledger), the wallet with the chain's adapter (from the
chain plugin's ``exchange.toml`` settings), the compliance pipeline with the built-in OFAC screening, the custody
policy engine (``[custody]``) and the PKCS#11 signer plugin (``[backends] keystore = "hsm_pkcs11"``) whose keys are
generated inside the token with ``exchange custody key create``. ``exchange ledger check`` runs at the end.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised (``C_Initialize``), once per process, and a token
made by ``softhsm2-util`` after that is not seen. So the token fixture finalises the module before and after the
module's tests (python-pkcs11 initialises it again on next use, reading the configuration then): another test
module in the same worker (``tests/custody/signers``) keeps its own token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pkcs11
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exchange_framework import hookimpl
from exchange_framework.api.app import create_app
from exchange_framework.api.units import Units
from exchange_framework.audit import AuditLog
from exchange_framework.cli import main
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.engine.commands import Command, CreditFunds, PlaceOrder, custody_account
from exchange_framework.engine.events import Event, FundsRejected, OrderRejected, Trade
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import DepositRequest, LedgerStore
from exchange_framework.node import ExchangeNode
from exchange_framework.plugins import collect_registered, make_plugin_manager
from exchange_framework.types import OrderType, Side
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.wallet.service import Wallet

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6") if sys.platform == "linux" else None
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
SO_PIN = "5432109876"
USER_PIN = "6789012345"
PIN_ENV = "EXCHANGE_E2E_HSM_PIN"
HOT_KEY_ID = "hot-1"
OPERATOR = "ops@example.com"
APPROVERS = ("alice", "bob", "carol")  # whitelist approvers (Ed25519 keys), quorum 2
TREASURY = ("dave", "erin", "frank")  # the custody group that approves large withdrawals


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the HSM token ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HsmToken:
    """A SoftHSM2 token made for one test module: the module path, label and the PIN's variable."""

    module: Path
    label: str
    pin_env: str
    conf: Path


def _restart_pkcs11_module() -> None:
    """Finalise the loaded SoftHSM2 module so that its next use initialises it again, reading ``SOFTHSM2_CONF``."""
    lib = pkcs11.lib(str(SOFTHSM_MODULE))  # python-pkcs11 keeps one lib object per module path, initialised
    if lib.initialized:
        with contextlib.suppress(pkcs11.PKCS11Error):
            lib.finalize()


@pytest.fixture(scope="module")
def hsm_token(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[HsmToken]:
    """A fresh SoftHSM2 token for this module (its own token directory and ``SOFTHSM2_CONF``)."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.is_file():
        message = "SoftHSM2 is not installed (scripts/setup installs the Debian softhsm2 package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("e2e-softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n", encoding="utf-8"
    )
    label = f"e2e-{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"[:32]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        patch.setenv(PIN_ENV, USER_PIN)
        _restart_pkcs11_module()
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN],
            check=True,
            capture_output=True,
        )
        try:
            yield HsmToken(SOFTHSM_MODULE, label, PIN_ENV, conf)
        finally:
            _restart_pkcs11_module()
    _restart_pkcs11_module()


def token_public_key(token: HsmToken, key_id: str) -> tuple[bytes, dict[str, object]]:
    """Read ``key_id``'s public point and its private key's attributes from the token in a session of our own."""
    slot_token = pkcs11.lib(str(token.module)).get_token(token_label=token.label)
    try:
        session = slot_token.open(user_pin=USER_PIN)
    except pkcs11.UserAlreadyLoggedIn:  # PKCS#11 logs in the process: a signer here has logged in already
        session = slot_token.open()
    with session:
        public = session.get_key(object_class=pkcs11.ObjectClass.PUBLIC_KEY, label=key_id)
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=key_id)
        attributes = {
            a.name: private[a]
            for a in (
                pkcs11.Attribute.LOCAL,
                pkcs11.Attribute.SENSITIVE,
                pkcs11.Attribute.EXTRACTABLE,
                pkcs11.Attribute.NEVER_EXTRACTABLE,
            )
        }
        return bytes(public[pkcs11.Attribute.EC_POINT]), attributes


# -- exchange.toml ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Approvers:
    """Whitelist approvers' Ed25519 keys (the private halves stay with the test, as on each approver's device)."""

    keys: dict[str, Ed25519PrivateKey] = field(
        default_factory=lambda: {name: Ed25519PrivateKey.generate() for name in APPROVERS}
    )

    def toml(self) -> str:
        """The ``[custody.whitelist_approvers]`` table."""
        lines = ["[custody.whitelist_approvers]"]
        for name, key in self.keys.items():
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
            lines.append(f'{name} = "{public}"')
        return "\n".join(lines) + "\n"


def base_config(root: Path, token: HsmToken, *, plugins: Sequence[str], assets: str, markets: str) -> str:
    """The parts of ``exchange.toml`` every chain's exchange shares: the HSM hot wallet, data paths, screening."""
    data = root / "data"
    enabled = ", ".join(f'"{p}"' for p in [*plugins, "hsm_pkcs11"])
    return (
        textwrap.dedent(
            f"""\
            [brand]
            name = "End to End Exchange"

            [backends]
            journal = "file"
            ledger = "sqlite"
            keystore = "hsm_pkcs11"              # the hot wallet signs in the HSM

            [journal]
            path = "{data / "commands.journal"}"
            fsync = false

            [ledger]
            url = "sqlite:///{data / "ledger.db"}"

            [audit]
            path = "{data / "audit.log"}"
            fsync = false

            [plugins]
            enabled = [{enabled}]

            [plugins.settings.hsm_pkcs11]
            module = "{token.module}"
            token_label = "{token.label}"
            pin_env = "{token.pin_env}"

            [wallet]
            hot_key_id = "{HOT_KEY_ID}"
            whitelist_cooling_off_hours = 0
            poll_seconds = "0.05"

            [compliance.ofac]
            source = "builtin"
            """
        )
        + "\n"
        + textwrap.dedent(assets)
        + "\n"
        + textwrap.dedent(markets)
    )


def custody_config(root: Path, approvers: Approvers, *, body: str) -> str:
    """``[custody]`` with the approvers, the treasury group and ``body`` (networks, wallets, rules)."""
    return (
        textwrap.dedent(
            f"""\
            [custody]
            state_path = "{root / "data" / "custody" / "policy.db"}"
            whitelist_quorum = 2

            [custody.groups]
            treasury = [{", ".join(f'"{n}"' for n in TREASURY)}]
            """
        )
        + "\n"
        + approvers.toml()
        + "\n"
        + textwrap.dedent(body)
    )


def cli(config_path: Path, *args: str) -> Result:
    """Run ``exchange --config <config_path> <args>`` in this process."""
    return CliRunner().invoke(main, ["--config", str(config_path), *args], catch_exceptions=False)


async def ledger_check(config_path: Path) -> Result:
    """``exchange ledger check`` against the exchange's data (in a thread: the command runs its own event loop)."""

    def check() -> Result:
        # A worker thread that ran LiteSVM (Solana) may have its x87 state left dirty: start from the default.
        if _LIBM is not None:
            _LIBM.fesetenv(ctypes.c_void_p(-1))
        return cli(config_path, "ledger", "check")

    return await asyncio.to_thread(check)


def create_hot_key(config_path: Path, key_id: str, scheme: str) -> bytes:
    """``exchange custody key create``: the operator generates the hot key inside the HSM; return its public key."""
    result = cli(config_path, "custody", "key", "create", key_id, "--scheme", scheme, "--actor", OPERATOR)
    assert result.exit_code == 0, result.output
    printed_id, printed_scheme, public_hex = result.output.split()
    assert (printed_id, printed_scheme) == (key_id, scheme)
    return bytes.fromhex(public_hex)


# -- the running exchange -----------------------------------------------------------------------------------------


class ScreeningSpy:
    """A plugin that records every deposit screening request and has no opinion (the OFAC screening decides)."""

    def __init__(self) -> None:
        self.deposits: list[DepositRequest] = []

    @hookimpl
    def screen_deposit(self, config: ExchangeConfig, request: DepositRequest) -> None:
        """Record ``request``."""
        self.deposits.append(request)


@dataclass
class Exchange:
    """The kernel pieces of one running exchange, as ``exchange run`` wires them (without the web app)."""

    config_path: Path
    config: ExchangeConfig
    node: ExchangeNode
    wallet: Wallet
    identity: IdentityStore
    audit: AuditLog
    spy: ScreeningSpy


def create_users(data_dir: Path, *emails: str) -> list[int]:
    """Create verified (KYC tier 1) customers in the exchange's identity store; return their account numbers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    identity = IdentityStore(f"sqlite:///{data_dir / 'identity.db'}")
    try:
        identity.create_schema()
        accounts = []
        for email in emails:
            account = identity.create_user(email, "correct horse battery staple").id
            identity.set_kyc(account, tier=1, status="approved")
            accounts.append(account)
        return accounts
    finally:
        identity.close()


@contextlib.asynccontextmanager
async def running_exchange(config_path: Path) -> AsyncIterator[Exchange]:
    """Start the exchange ``config_path`` describes as ``exchange run`` does (the app's lifespan: node settling
    every 0.1 s, wallet, audit log, identity store), without serving HTTP; stop it after."""
    config = load_config(config_path)
    pm = make_plugin_manager(config)
    spy = ScreeningSpy()
    pm.register(spy, name="e2e-screening-spy")
    app = create_app(config, pm=pm, settle_every=0.1)
    ctx = app.ctx
    wallet = ctx.extras.get("wallet")
    assert isinstance(wallet, Wallet), "no chain adapter registered: check [plugins.settings.<chain>]"
    try:
        async with app.app.router.lifespan_context(app.app):
            audit = ctx.extras.get("audit")
            assert isinstance(audit, AuditLog), ctx.extras.get("audit_error")
            assert not wallet.signer_error and not wallet.policy_error, (wallet.signer_error, wallet.policy_error)
            # The trackers start following each chain at its tip when they first poll: wait for that before paying.
            await until(lambda: all(t.status().height is not None for t in wallet.trackers.values()), "the first poll")
            yield Exchange(config_path, config, ctx.node, wallet, ctx.identity, audit, spy)
    finally:  # once the wallet has stopped: the wallet leaves its signer and adapters to their owner
        for resource in [wallet.signer, *wallet.adapters.values()]:
            close = getattr(resource, "close", None)
            if close is not None:
                close()


async def until(
    condition: Callable[[], object], what: str, *, timeout: float = 30.0, show: Callable[[], object] | None = None
) -> None:
    """Wait until ``condition()`` is true; fail naming ``what`` (and what ``show()`` says) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {show()!r}" if show is not None else ""))
        await asyncio.sleep(0.02)


async def submit(node: ExchangeNode, command: Command) -> list[Event]:
    """Sequence ``command``; fail if the engine rejected it."""
    events = (await node.submit(command)).events
    rejected = [e for e in events if isinstance(e, FundsRejected | OrderRejected)]
    assert not rejected, rejected
    return events


async def trade(exchange: Exchange, *, seller: int, buyer: int, market: str, qty: str, price: str) -> Trade:
    """The buyer bids ``qty`` at ``price`` (decimal strings); the seller sells into the bid: exactly one trade."""
    units = Units(exchange.config).by_market[market]
    lots, ticks = units.to_lots(Decimal(qty)), units.to_ticks(Decimal(price))
    quote = units.spec.quote
    # The buyer's quote funds are a plain credit balanced against the ledger's external account (they did not come
    # through a chain in this test): twice the trade's value, enough for it and its fees.
    amount = 2 * units.to_quote_atomic(Decimal(qty) * Decimal(price))
    await submit(exchange.node, CreditFunds(account=buyer, asset=quote, amount=amount, reference="e2e:quote"))
    await submit(
        exchange.node,
        PlaceOrder(account=buyer, market=market, side=Side.BUY, type=OrderType.LIMIT, qty=lots, price=ticks),
    )
    events = await submit(
        exchange.node,
        PlaceOrder(account=seller, market=market, side=Side.SELL, type=OrderType.LIMIT, qty=lots, price=ticks),
    )
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(trades) == 1, events
    return trades[0]


TREASURY_EMAIL = "treasury@example.com"  # the exchange's own account: the money it puts into its hot wallets


async def fund_hot_wallet(exchange: Exchange, *, chain: str, asset: str, amount: int, reference: str) -> None:
    """Record that the exchange paid ``amount`` of its own money into the hot wallet on ``chain`` (the test's
    faucet payment): a credit of the treasury account balanced against the hot wallet's custody account, so the
    ledger's custody accounts say what the chain holds.

    Sweeping deposit addresses into the hot wallet is the other way in (the EVM module does that); it needs the
    chain's deposit root and the adapter's sweep methods, which the Bitcoin and Solana adapters do not have.
    """
    treasury = exchange.identity.user_by_email(TREASURY_EMAIL)
    assert treasury is not None, f"create_users(..., {TREASURY_EMAIL!r}) first"
    await submit(
        exchange.node,
        CreditFunds(
            account=treasury.id,
            asset=asset,
            amount=amount,
            reference=f"hot-funding:{chain}:{reference}",
            custody=custody_account("hot", chain),
        ),
    )


async def whitelist(exchange: Exchange, approvers: Approvers, *, chain: str, asset: str, address: str) -> None:
    """Add ``address`` to the custody whitelist (two approvers' signatures) and to the customer's address book."""
    policy = exchange.wallet.policy
    assert policy is not None
    change = policy.propose_whitelist_change(
        op="add", chain=chain, asset=asset, address=address, proposer=OPERATOR, label="customer's own wallet"
    )
    for name in APPROVERS[:2]:
        policy.approve_whitelist_change(
            change.change_id, approver=name, signature=approvers.keys[name].sign(change.message())
        )


async def ledger_balances(config: ExchangeConfig) -> dict[tuple[str, str], int]:
    """Every ledger balance, read through the configured ledger backend."""
    pm = make_plugin_manager(config)
    store: LedgerStore = collect_registered(pm, "register_ledger_stores", config=config)[config.backends.ledger].open(
        config
    )
    try:
        await store.create_schema()
        return await store.balances()
    finally:
        await store.close()


def final_stage(exchange: Exchange, withdrawal_id: int) -> Callable[[], bool]:
    """A condition: the withdrawal is completed (or failed for good, which the caller's assertion then shows)."""

    def done() -> bool:
        view = next(v for v in exchange.wallet.withdrawals() if v.id == withdrawal_id)
        return view.stage in (WithdrawalStage.COMPLETED, WithdrawalStage.REJECTED, WithdrawalStage.CANCELLED)

    return done
