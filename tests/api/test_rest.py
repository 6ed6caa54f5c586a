"""REST API behaviour beyond what ccxt exercises: authorisation, signatures, errors, idempotency, limits, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange_framework.api.auth import sign, strip_signature
from exchange_framework.api.params import Params
from tests.api.client import Rest
from tests.api.conftest import Exchange


@pytest.fixture
def alice(exchange: Exchange) -> Iterator[Rest]:
    rest = Rest(exchange.url, exchange.alice.key)
    yield rest
    rest.close()


@pytest.fixture
def bob(exchange: Exchange) -> Iterator[Rest]:
    rest = Rest(exchange.url, exchange.bob.key)
    yield rest
    rest.close()


def limit_buy(rest: Rest, qty: str = "0.1", price: str = "60000", **extra: str) -> dict[str, object]:
    response = rest.signed(
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity=qty,
        price=price,
        **extra,
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_binance_documented_signature_example() -> None:
    """The HMAC example in Binance's spot API documentation ("SIGNED Endpoint Examples for POST /api/v3/order")."""
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    assert sign(secret, query) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    # Query and body are signed together, in that order, without a separator (the documentation's example 3).
    mixed = Params(
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
    )
    total = strip_signature(mixed.query) + strip_signature(mixed.body)
    assert sign(secret, total) == "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


def test_a_user_never_sees_or_cancels_another_users_orders(exchange: Exchange, alice: Rest, bob: Rest) -> None:
    order = limit_buy(alice, newClientOrderId="alice-1")
    order_id = order["orderId"]
    for params in ({"orderId": order_id}, {"origClientOrderId": "alice-1"}):
        got = bob.signed("GET", "/api/v3/order", symbol="BTCUSDT", **params)
        assert got.status_code == 400 and got.json()["code"] == -2013
        cancel = bob.signed("DELETE", "/api/v3/order", symbol="BTCUSDT", **params)
        assert cancel.status_code == 400 and cancel.json()["code"] == -2011
    assert bob.signed("GET", "/api/v3/openOrders").json() == []
    assert bob.signed("GET", "/api/v3/allOrders", symbol="BTCUSDT").json() == []
    assert bob.signed("DELETE", "/api/v3/openOrders", symbol="BTCUSDT").json() == []
    mine = alice.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=order_id).json()
    assert mine["status"] == "NEW"


def test_scopes_and_keys_are_enforced(exchange: Exchange) -> None:
    viewer = Rest(exchange.url, exchange.alice.read_only)
    try:
        assert viewer.signed("GET", "/api/v3/account").status_code == 200
        refused = viewer.signed(
            "POST",
            "/api/v3/order",
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.1",
            price="60000",
        )
        assert refused.status_code == 401
        assert refused.json()["code"] == -2015
        assert "trade" in refused.json()["msg"]
    finally:
        viewer.close()
    anonymous = Rest(exchange.url)
    try:
        missing = anonymous.http.get("/api/v3/account", params={"timestamp": 1})
        assert missing.status_code == 401 and missing.json()["code"] == -2014
        unknown = anonymous.http.get("/api/v3/account", params={"timestamp": 1}, headers={"X-MBX-APIKEY": "a" * 64})
        assert unknown.status_code == 401 and unknown.json()["code"] == -2015
    finally:
        anonymous.close()


def test_revoked_key_and_ip_allow_list(exchange: Exchange) -> None:
    identity = exchange.server.ctx.identity
    elsewhere = identity.create_api_key(exchange.alice.account, scopes=["read"], allowed_ips=["203.0.113.0/24"])
    local = identity.create_api_key(exchange.alice.account, scopes=["read"], allowed_ips=["127.0.0.1"])
    for key, status in ((elsewhere, 401), (local, 200)):
        rest = Rest(exchange.url, key)
        try:
            assert rest.signed("GET", "/api/v3/account").status_code == status
        finally:
            rest.close()
    identity.revoke_api_key(exchange.alice.account, local.key)
    rest = Rest(exchange.url, local)
    try:
        assert rest.signed("GET", "/api/v3/account").json()["code"] == -2015
    finally:
        rest.close()


def test_signature_and_timestamp_checks(alice: Rest) -> None:
    bad = alice.signed("GET", "/api/v3/account", secret="f" * 64)
    assert bad.status_code == 400 and bad.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    old = alice.signed("GET", "/api/v3/account", timestamp=1_000_000)
    assert old.json()["code"] == -1021
    ahead = alice.signed("GET", "/api/v3/account", timestamp=2**45)
    assert ahead.json()["code"] == -1021
    missing = alice.http.get("/api/v3/account", headers={"X-MBX-APIKEY": alice.key.key})  # type: ignore[union-attr]
    assert missing.json()["code"] == -1102


def test_bad_orders_get_binance_errors_and_change_nothing(exchange: Exchange, alice: Rest) -> None:
    before = alice.signed("GET", "/api/v3/account").json()["balances"]
    cases = [
        (dict(type="LIMIT", timeInForce="GTC", quantity="0.1", price="60000.05"), -1013, "PRICE_FILTER"),
        (dict(type="LIMIT", timeInForce="GTC", quantity="0.000001", price="60000"), -1013, "LOT_SIZE"),
        (dict(type="LIMIT", timeInForce="GTC", quantity="0.1"), -1102, "price"),
        (dict(type="LIMIT", quantity="0.1", price="60000"), -1102, "timeInForce"),
        (dict(type="MARKET", quantity="0.1", price="60000"), -1106, "price"),
        (
            dict(type="TAKE_PROFIT_LIMIT", quantity="0.1", price="1", stopPrice="1", timeInForce="GTC"),
            -1116,
            "STOP_LOSS",
        ),
        (dict(type="LIMIT", timeInForce="GTC", quantity="1e3", price="60000"), -1100, "quantity"),
        (dict(type="LIMIT", timeInForce="GTC", quantity="-1", price="60000"), -1100, "quantity"),
        (
            dict(type="LIMIT", timeInForce="GTC", quantity="0.1", price="60000", selfTradePreventionMode="NONE"),
            -1130,
            "self-trade",
        ),
        (dict(type="LIMIT", timeInForce="GTX", quantity="0.1", price="60000"), -1130, "timeInForce"),
        (dict(type="LIMIT", timeInForce="GTC", quantity="1000", price="60000"), -2010, "insufficient balance"),
        (
            dict(type="LIMIT", timeInForce="GTC", quantity="0.1", price="60000", newClientOrderId="x" * 37),
            -1100,
            "newClientOrderId",
        ),
        (dict(type="MARKET", quoteOrderQty="100", side="SELL"), -1130, "quoteOrderQty"),
    ]
    for params, code, words in cases:
        params = {"symbol": "BTCUSDT", "side": "BUY", **params}
        response = alice.signed("POST", "/api/v3/order", **params)
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert body["code"] == code, (params, body)
        assert words.lower() in body["msg"].lower(), (params, body)
    unknown = alice.signed("POST", "/api/v3/order", symbol="DOGEUSDT", side="BUY", type="MARKET", quantity="1")
    assert unknown.json()["code"] == -1121
    assert alice.signed("GET", "/api/v3/account").json()["balances"] == before
    assert alice.signed("GET", "/api/v3/allOrders", symbol="BTCUSDT").json() == []


def test_client_order_ids_are_idempotent(exchange: Exchange, alice: Rest) -> None:
    first = limit_buy(alice, newClientOrderId="retry-me")
    again = limit_buy(alice, newClientOrderId="retry-me")
    assert again["orderId"] == first["orderId"]
    assert len(alice.signed("GET", "/api/v3/openOrders", symbol="BTCUSDT").json()) == 1
    different = alice.signed(
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.2",
        price="60000",
        newClientOrderId="retry-me",
    )
    assert different.json() == {"code": -2010, "msg": "Duplicate order sent."}
    # Once cancelled, the id still names that order: a retry must not resurrect it as a new one.
    alice.signed("DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="retry-me")
    after = limit_buy(alice, newClientOrderId="retry-me")
    assert after["orderId"] == first["orderId"] and after["status"] == "CANCELED"


def test_every_order_type_maps(exchange: Exchange, alice: Rest, bob: Rest) -> None:
    def place(rest: Rest, **params: str) -> dict[str, object]:
        response = rest.signed("POST", "/api/v3/order", symbol="BTCUSDT", **params)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    maker = place(bob, side="SELL", type="LIMIT_MAKER", quantity="0.5", price="61000")
    assert maker["type"] == "LIMIT_MAKER" and maker["status"] == "NEW"
    crossing = alice.signed(
        "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.1", price="61000"
    )
    assert crossing.json()["code"] == -2010 and "immediately match" in crossing.json()["msg"]
    iceberg = place(bob, side="SELL", type="LIMIT", timeInForce="GTC", quantity="1", price="62000", icebergQty="0.1")
    assert iceberg["icebergQty"] == "0.10000000"
    ioc = place(alice, side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.2", price="61000")
    assert ioc["status"] == "FILLED"
    assert ioc["executedQty"] == "0.20000000" and len(ioc["fills"]) == 1  # type: ignore[arg-type]
    fok = alice.signed(
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="FOK",
        quantity="50",
        price="61000",
    )
    assert fok.json()["code"] == -2010
    by_quote = place(alice, side="BUY", type="MARKET", quoteOrderQty="6100")
    assert by_quote["executedQty"] == "0.10000000" and by_quote["cummulativeQuoteQty"] == "6100.00000000"
    stop = place(
        bob, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.1", price="58000", stopPrice="59000"
    )
    assert stop["type"] == "STOP_LOSS_LIMIT" and stop["stopPrice"] == "59000.00000000"
    stop_market = place(bob, side="SELL", type="STOP_LOSS", quantity="0.1", stopPrice="58500")
    assert stop_market["type"] == "STOP_LOSS" and stop_market["status"] == "NEW"
    stp = place(
        bob,
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.1",
        price="61000",
        selfTradePreventionMode="EXPIRE_MAKER",
    )
    assert stp["selfTradePreventionMode"] == "EXPIRE_MAKER"
    # bob's own resting sell at 61,000 was expired by self-trade prevention instead of trading with him
    maker_now = bob.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=maker["orderId"]).json()
    assert maker_now["status"] == "EXPIRED_IN_MATCH"
    ack = place(
        alice, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="50000", newOrderRespType="ACK"
    )
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    test_only = alice.signed(
        "POST",
        "/api/v3/order/test",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.1",
        price="50000",
    )
    assert test_only.json() == {}


def test_rate_limit_headers_and_429(exchange: Exchange, alice: Rest) -> None:
    response = alice.public("GET", "/api/v3/ping")
    assert int(response.headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    order = alice.signed(
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.1",
        price="50000",
    )
    assert order.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert order.headers["X-MBX-ORDER-COUNT-1D"] == "1"
    limiter = exchange.server.ctx.limiter
    limiter.limits = type(limiter.limits)(weight_per_minute=limiter.limits.weight_per_minute, orders_per_10s=1)
    refused = alice.signed(
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.1",
        price="50000",
    )
    assert refused.status_code == 429 and refused.json()["code"] == -1003
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(alice.signed("GET", "/api/v3/openOrders").json()) == 1  # the refused order was not placed


def test_security_headers(exchange: Exchange, alice: Rest) -> None:
    response = alice.public("GET", "/api/v3/time")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_openapi_document_matches_the_routes(exchange: Exchange, alice: Rest) -> None:
    document = alice.public("GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    app = exchange.server.app.app
    served = {
        (method, route.path)
        for route in app.routes
        if route.path.startswith(("/api/", "/sapi/"))
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert documented == served
    order = document["paths"]["/api/v3/order"]["post"]
    body = order["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"symbol", "side", "type", "timestamp", "signature"} <= set(body["required"])
    assert order["security"] == [{"apiKey": []}]


def test_amend_keeps_priority_and_replace_moves_the_order(exchange: Exchange, alice: Rest, bob: Rest) -> None:
    first = limit_buy(alice, qty="0.5", price="60000", newClientOrderId="first")
    limit_buy(bob, qty="0.5", price="60000")  # queued behind alice's at the same price
    amended = alice.signed(
        "PUT", "/api/v3/order/amend/keepPriority", symbol="BTCUSDT", orderId=first["orderId"], newQty="0.3"
    )
    assert amended.status_code == 200, amended.text
    assert amended.json()["amendedOrder"]["origQty"] == "0.30000000"
    too_big = alice.signed("PUT", "/api/v3/order/amend/keepPriority", symbol="BTCUSDT", orderId=first["orderId"],
                           newQty="0.9")  # fmt: skip
    assert too_big.json()["code"] == -1130
    # a seller takes 0.3: alice, still first in the queue, is filled before bob
    sell = bob.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.3")
    assert sell.status_code == 200, sell.text
    assert alice.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=first["orderId"]).json()["status"] == "FILLED"

    second = limit_buy(alice, qty="0.2", price="59000")
    moved = alice.signed("PUT", "/api/v3/order", symbol="BTCUSDT", origClientOrderId=second["clientOrderId"],
                         price="59500", quantity="0.4")  # fmt: skip
    assert moved.status_code == 200, moved.text
    order = alice.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=second["orderId"]).json()
    assert (order["price"], order["origQty"], order["status"]) == ("59500.00000000", "0.40000000", "NEW")
    other = bob.signed("PUT", "/api/v3/order", symbol="BTCUSDT", orderId=second["orderId"], price="1", quantity="1")
    assert other.json()["code"] == -2013  # not bob's order
