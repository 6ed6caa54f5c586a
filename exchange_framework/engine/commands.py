"""Commands: the only inputs the engine accepts.

A command is validated at the edge (API, FIX, CLI) into integers: prices in ticks, quantities in lots, amounts in
the asset's atomic unit. The sequencer gives each command a sequence number and a timestamp and journals it; the
engine then applies it with :meth:`MatchingEngine.apply`. Commands are msgspec structs: compact in the journal
(``array_like``), cheap to build, and not tracked by the cyclic garbage collector (``gc=False``).
"""

from __future__ import annotations

import re

import msgspec

from exchange_framework.types import MarketStatus, OrderType, Side, StpMode, TimeInForce


class Command(msgspec.Struct, tag=True, tag_field="kind", array_like=True, gc=False):
    """Base of every engine command."""


class PlaceOrder(Command, tag="place"):
    """Place an order. ``price``/``stop_price`` are in ticks, ``qty``/``display_qty`` in lots.

    - LIMIT needs ``price`` and ``qty``; ``tif`` GTC/IOC/FOK; ``post_only`` rejects an order that would cross.
    - MARKET needs ``qty``; a market BUY also accepts ``quote_cap`` (quote atomic units): it buys until ``qty``
      is filled or the cap is spent. A market BUY with ``qty == 0`` spends up to ``quote_cap``.
      Without a cap the buyer's whole available quote balance bounds it.
    - STOP_LIMIT / STOP_MARKET add ``stop_price``: a BUY stop triggers when the last trade price rises to it,
      a SELL stop when it falls to it.
    - ``display_qty`` > 0 makes a LIMIT GTC order an iceberg showing that many lots at a time.
    """

    account: int
    market: str
    side: Side
    type: OrderType
    qty: int
    price: int = 0
    stop_price: int = 0
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    display_qty: int = 0
    quote_cap: int = 0
    stp: StpMode = StpMode.CANCEL_NEWEST
    client_order_id: str = ""


class CancelOrder(Command, tag="cancel"):
    """Cancel one order by ``order_id`` or, when it is 0, by ``client_order_id``."""

    account: int
    market: str
    order_id: int = 0
    client_order_id: str = ""


class CancelAll(Command, tag="cancel_all"):
    """Cancel every open order (stops included) of ``account``, in ``market`` or in all markets when empty."""

    account: int
    market: str = ""


class ReplaceOrder(Command, tag="replace"):
    """Change a resting limit order's price and open quantity (lots).

    Priority is kept only when the price is unchanged and the quantity shrinks; otherwise the order goes to the
    back of the queue at its new price and may trade at once.
    """

    account: int
    market: str
    order_id: int
    price: int
    qty: int


class CreditFunds(Command, tag="credit"):
    """Move ``amount`` atomic units of ``asset`` into the account's available balance (deposits, transfers).

    ``custody`` names the custody account the money arrived in (``omnibus:<tier>:<chain>``, see
    :func:`custody_account`), so the ledger credits the customer against it; empty (internal transfers, journals
    from before custody accounts) balances against ``external``.
    """

    account: int
    asset: str
    amount: int
    reference: str = ""
    custody: str = ""


class DebitFunds(Command, tag="debit"):
    """Move ``amount`` atomic units out of the account's available balance (withdrawals, transfers)."""

    account: int
    asset: str
    amount: int
    reference: str = ""


class HoldFunds(Command, tag="hold"):
    """Reserve ``amount`` of the account's available ``asset`` under ``reference`` (a withdrawal being processed).

    The hold ends with :class:`ReleaseFunds` (back to available: the withdrawal was refused or failed) or
    :class:`DebitHeldFunds` (gone: the withdrawal is final on chain). ``reference`` must be new.
    """

    account: int
    asset: str
    amount: int
    reference: str


class ReleaseFunds(Command, tag="release"):
    """Return the funds held under ``reference`` to the account's available balance."""

    reference: str


class DebitHeldFunds(Command, tag="debit_held"):
    """Take the funds held under ``reference`` out of the exchange (the withdrawal is final).

    ``custody`` names the custody account that paid (``omnibus:hot:<chain>``); empty balances against ``external``.
    """

    reference: str
    custody: str = ""


class MoveCustody(Command, tag="move_custody"):
    """Record money moving between custody accounts on chain: a sweep, a tier transfer, or a network fee.

    ``from_account`` loses ``amount + fee`` atomic units of ``asset``, ``to_account`` receives ``amount``, and the
    exchange's ``network_fees`` account pays ``fee`` (the miners' or validators' share). ``to_account`` is empty
    exactly when ``amount`` is 0 (a fee alone, such as a withdrawal's network fee). Accounts are custody accounts
    (:func:`custody_account`); ``reference`` (required) is accepted once, like credit and debit references. The
    engine keeps no custody balances: it checks the form and the reference, nothing else.
    """

    asset: str
    from_account: str
    to_account: str
    amount: int
    fee: int
    reference: str


CUSTODY_TIERS = ("hot", "warm", "cold", "deposit")
"""Custody tiers: the hot wallet, warm (threshold) and cold (offline) storage, and deposit addresses not yet swept."""

_CUSTODY_RE = re.compile(r"omnibus:(hot|warm|cold|deposit):([a-z0-9][a-z0-9._-]{0,63})\Z")


def custody_account(tier: str, chain: str) -> str:
    """The ledger's custody (omnibus) account of ``tier`` on ``chain``: ``omnibus:<tier>:<chain>``.

    Raise ``ValueError`` for a tier outside :data:`CUSTODY_TIERS` or a chain name that is not lowercase letters,
    digits, ``.``, ``_`` and ``-`` (at most 64, starting with a letter or digit).
    """
    code = f"omnibus:{tier}:{chain}"
    if not is_custody_account(code):
        raise ValueError(
            f"no custody account for tier {tier!r} on chain {chain!r}: the tier is one of {', '.join(CUSTODY_TIERS)} "
            "and the chain name is lowercase letters, digits, '.', '_' or '-'"
        )
    return code


def is_custody_account(code: object) -> bool:
    """Whether ``code`` is a well-formed custody account code (``omnibus:<tier>:<chain>``)."""
    return type(code) is str and _CUSTODY_RE.match(code) is not None


class SetAccountFees(Command, tag="account_fees"):
    """Give ``account`` its own maker/taker fee rates in ppm (all markets), or clear them with ``None``.

    Per-account overrides and 30-day volume tiers are decided outside the engine and sequenced with this command,
    so that fees stay part of the deterministic state. A negative maker rate is a rebate.
    """

    account: int
    maker_ppm: int | None = None
    taker_ppm: int | None = None


class SetMarketStatus(Command, tag="market_status"):
    """Open, halt or close a market (an operator action)."""

    market: str
    status: MarketStatus


AnyCommand = (
    PlaceOrder
    | CancelOrder
    | CancelAll
    | ReplaceOrder
    | CreditFunds
    | DebitFunds
    | HoldFunds
    | ReleaseFunds
    | DebitHeldFunds
    | SetAccountFees
    | SetMarketStatus
    | MoveCustody
)

COMMAND_TYPES: tuple[type[Command], ...] = (
    PlaceOrder,
    CancelOrder,
    CancelAll,
    ReplaceOrder,
    CreditFunds,
    DebitFunds,
    HoldFunds,
    ReleaseFunds,
    DebitHeldFunds,
    SetAccountFees,
    SetMarketStatus,
    MoveCustody,
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyCommand] = msgspec.msgpack.Decoder(AnyCommand)
_json_encoder = msgspec.json.Encoder()
_json_decoder: msgspec.json.Decoder[AnyCommand] = msgspec.json.Decoder(AnyCommand)


def encode_command(command: Command) -> bytes:
    """Serialise a command for the journal: msgpack, or JSON when an amount exceeds msgpack's 64-bit integers.

    18-decimal assets pass 2**64 atomic units at about 18.4 whole coins, so large amounts are common; JSON keeps
    them exact at any size. Both forms decode with :func:`decode_command`.
    """
    try:
        return _encoder.encode(command)
    except OverflowError:
        return _json_encoder.encode(command)


def decode_command(data: bytes) -> AnyCommand:
    """Parse a journalled command; raises ``msgspec.DecodeError`` on garbage."""
    if data[:1] == b"[":  # msgpack commands start with an array header (0x90-0x9f, 0xdc), never with "["
        return _json_decoder.decode(data)
    return _decoder.decode(data)
