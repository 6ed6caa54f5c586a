"""The trading page: every order type from the plain (no-JavaScript) form, cancels, fills, and users kept apart."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest

from exchange_framework.types import OrderType, TimeInForce
from tests.api.client import Rest
from tests.api.conftest import Exchange
from tests.portal.conftest import PortalClient

BLANK = {"type": "LIMIT", "side": "BUY", "time_in_force": "GTC", "price": "", "stop_price": "", "quantity": "",
         "quote_amount": "", "iceberg_qty": ""}  # fmt: skip  # what a browser without JavaScript posts


@pytest.fixture
def trader(fresh_exchange: Exchange) -> Iterator[PortalClient]:
    client = PortalClient(fresh_exchange.url)
    client.login(fresh_exchange.alice.email)
    yield client
    client.close()


@pytest.fixture
def bob_rest(fresh_exchange: Exchange) -> Iterator[Rest]:
    rest = Rest(fresh_exchange.url, fresh_exchange.bob.key)
    yield rest
    rest.close()


def order(client: PortalClient, **fields: str) -> str:
    """Post the order form; return the flash message shown after the redirect."""
    response = client.post("/trade/BTCUSDT/orders", {**BLANK, **fields}, page="/trade/BTCUSDT")
    page = client.follow(response)
    match = re.search(r'<div class="flash flash-(\w+)"[^>]*>([^<]*)</div>', page.text)
    assert match, page.text[:3000]
    return f"{match.group(1)}: {html.unescape(match.group(2))}"


def rest_order(rest: Rest, **params: str) -> dict[str, object]:
    response = rest.signed("POST", "/api/v3/order", symbol="BTCUSDT", **params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_every_order_type_from_the_form(fresh_exchange: Exchange, trader: PortalClient, bob_rest: Rest) -> None:
    rest_order(bob_rest, side="SELL", type="LIMIT", timeInForce="GTC", quantity="1", price="50000")
    rest_order(bob_rest, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="40000")
    orders = fresh_exchange.server.ctx.node.orders
    account = fresh_exchange.alice.account
    cases = [
        ({"type": "LIMIT", "price": "45000", "quantity": "0.01"}, "new", (OrderType.LIMIT, TimeInForce.GTC)),
        ({"type": "LIMIT", "time_in_force": "IOC", "price": "50000", "quantity": "0.01"}, "filled",
         (OrderType.LIMIT, TimeInForce.IOC)),
        ({"type": "LIMIT", "time_in_force": "FOK", "price": "50000", "quantity": "0.01"}, "filled",
         (OrderType.LIMIT, TimeInForce.FOK)),
        ({"type": "LIMIT_MAKER", "price": "45000", "quantity": "0.01"}, "new", (OrderType.LIMIT, TimeInForce.GTC)),
        ({"type": "MARKET", "quantity": "0.01"}, "filled", (OrderType.MARKET, None)),
        ({"type": "MARKET", "quote_amount": "100"}, "filled", (OrderType.MARKET, None)),
        ({"type": "STOP_LOSS_LIMIT", "side": "SELL", "stop_price": "45000", "price": "44000", "quantity": "0.01"},
         "new", (OrderType.STOP_LIMIT, TimeInForce.GTC)),
        ({"type": "STOP_LOSS", "side": "SELL", "stop_price": "45000", "quantity": "0.01"}, "new",
         (OrderType.STOP_MARKET, None)),
        ({"type": "LIMIT", "price": "45000", "quantity": "0.1", "iceberg_qty": "0.01"}, "new",
         (OrderType.LIMIT, TimeInForce.GTC)),
    ]  # fmt: skip
    for fields, status, (kind, tif) in cases:
        flash = order(trader, **fields)
        assert flash.startswith("success: ") and flash.endswith(f"placed: {status}."), (fields, flash)
        order_id = int(flash.split("order ", 1)[1].split(" ", 1)[0])
        record = orders.order(account, order_id=order_id)
        assert record is not None and record.type is kind, fields
        if tif is not None:
            assert record.tif is tif
        assert record.post_only == (fields["type"] == "LIMIT_MAKER")
        assert (record.display_qty > 0) == ("iceberg_qty" in fields)
        assert (record.quote_cap > 0) == ("quote_amount" in fields)
    page = trader.get("/trade/BTCUSDT").text
    assert page.count('class="order-row"') == 5  # limit, maker, two stops, iceberg
    assert page.count('class="fill-row"') == 4  # IOC, FOK, two market orders


ERRORS = [
    ({"type": "LIMIT", "quantity": "0.01"}, "Mandatory parameter 'price' was not sent"),
    ({"type": "MARKET", "quantity": "0.01", "price": "50000"}, "Parameter 'price' sent when not required"),
    ({"type": "MARKET", "side": "SELL", "quote_amount": "100"}, "total to spend is supported for MARKET BUY"),
    ({"type": "LIMIT", "price": "50000.05", "quantity": "0.01"}, "Filter failure: PRICE_FILTER"),
    ({"type": "LIMIT", "price": "50000", "quantity": "abc"}, "Illegal characters found in parameter 'quantity'"),
    ({"type": "LIMIT", "price": "50000", "quantity": "100"}, "Account has insufficient balance"),
    ({"type": "LIMIT_MAKER", "price": "60000", "quantity": "0.01"}, "Order would immediately match and take"),
    ({"type": "TAKE_PROFIT", "quantity": "0.01"}, "Choose the order type from"),
    ({"type": "LIMIT", "price": "50000", "quantity": "0.01", "side": ""}, "Choose the side (buy or sell)"),
]


def test_order_form_errors_say_what_is_wrong_and_place_nothing(
    fresh_exchange: Exchange, trader: PortalClient, bob_rest: Rest
) -> None:
    rest_order(bob_rest, side="SELL", type="LIMIT", timeInForce="GTC", quantity="1", price="50000")
    for fields, message in ERRORS:
        before = fresh_exchange.server.ctx.node.orders.all_orders(fresh_exchange.alice.account, "BTC-USDT")
        flash = order(trader, **fields)
        assert flash.startswith("error: Order not placed: ") and message in flash, flash
        assert fresh_exchange.server.ctx.node.orders.all_orders(fresh_exchange.alice.account, "BTC-USDT") == before


def test_cancel_from_the_form_and_users_kept_apart(fresh_exchange: Exchange, trader: PortalClient) -> None:
    flash = order(trader, type="MARKET", quantity="0.01")  # the book is empty
    assert flash.startswith("error: Buy order ") and flash.endswith(
        "expired unfilled: nothing to trade against at its price."
    )
    flash = order(trader, price="45000", quantity="0.01")
    order_id = int(flash.split("order ", 1)[1].split(" ", 1)[0])
    bob = PortalClient(fresh_exchange.url)
    try:
        bob.login(fresh_exchange.bob.email)
        bob_page = bob.get("/trade/BTCUSDT").text
        assert 'class="order-row"' not in bob_page
        assert 'class="order-row"' not in bob.get("/trade/BTCUSDT/mine").text
        assert f'data-order-id="{order_id}"' in trader.get("/trade/BTCUSDT/mine").text
        refused = bob.post(f"/trade/BTCUSDT/orders/{order_id}/cancel", {}, page="/trade/BTCUSDT")
        assert refused.status_code == 404 and "No such order on your account" in refused.text
        assert fresh_exchange.server.ctx.node.orders.order(fresh_exchange.alice.account, order_id=order_id).is_open  # type: ignore[union-attr]
    finally:
        bob.close()
    response = trader.post(f"/trade/BTCUSDT/orders/{order_id}/cancel", {}, page="/trade/BTCUSDT")
    assert f"Order {order_id} cancelled." in trader.follow(response).text
    assert not fresh_exchange.server.ctx.node.orders.order(fresh_exchange.alice.account, order_id=order_id).is_open  # type: ignore[union-attr]
    again = trader.post(f"/trade/BTCUSDT/orders/{order_id}/cancel", {}, page="/trade/BTCUSDT")
    assert "is no longer open: nothing to cancel" in trader.follow(again).text


def test_orders_need_login_and_csrf(fresh_exchange: Exchange) -> None:
    anonymous = PortalClient(fresh_exchange.url)
    try:
        response = anonymous.post("/trade/BTCUSDT/orders", {**BLANK, "price": "1", "quantity": "1"}, page="/login")
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
        page = anonymous.get("/trade/BTCUSDT").text
        assert "to trade." in page and 'id="order-form"' not in page
        anonymous.login(fresh_exchange.alice.email)
        refused = anonymous.http.post("/trade/BTCUSDT/orders", data={**BLANK, "price": "45000", "quantity": "0.01"})
        assert refused.status_code == 403
        assert fresh_exchange.server.ctx.node.orders.open_orders(fresh_exchange.alice.account) == []
    finally:
        anonymous.close()


def test_a_fill_shows_on_the_page_in_fills_and_the_book(
    fresh_exchange: Exchange, trader: PortalClient, bob_rest: Rest
) -> None:
    order(trader, price="45000", quantity="0.02")
    page = trader.get("/trade/BTCUSDT").text
    assert re.search(r'class="num buy">45000</td><td class="num">0\.02<', page)  # server-rendered book
    rest_order(bob_rest, side="SELL", type="MARKET", quantity="0.02")
    page = trader.get("/trade/BTCUSDT").text
    assert page.count('class="fill-row"') == 1 and "maker" in page
    assert 'class="order-row"' not in page
    assert "BTC: " in page and "USDT: " in page  # balances beside the form
