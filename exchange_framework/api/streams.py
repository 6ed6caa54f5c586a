"""WebSocket streams with Binance's names, paths and control messages.

- ``/ws/<stream>`` (several joined by ``/``) sends each stream's raw payloads; ``/ws/<listenKey>`` the account's
  private events (see :mod:`exchange_framework.api.userstream`).
- ``/stream?streams=<a>/<b>`` wraps every payload as ``{"stream": name, "data": payload}``.
- On any connection, ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": n}``
  changes or lists the subscriptions and is answered ``{"result": ..., "id": n}``.

A slow client never slows anyone else: every connection has a bounded queue (see :class:`~exchange_framework.
marketdata.Hub`). On a diff depth stream a full queue skips messages, which the client sees as a gap in ``U``/``u``
and resynchronises from a REST snapshot; on any other stream the connection is closed with code 1008 and the reason
``slow consumer: resync with a new snapshot``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from exchange_framework.api.auth import authenticate
from exchange_framework.api.context import ApiContext
from exchange_framework.api.errors import ApiError
from exchange_framework.api.params import Params
from exchange_framework.api.userstream import ListenKeys, user_stream
from exchange_framework.identity import Scope
from exchange_framework.marketdata import Hub, SlowConsumerError, StreamPublisher, Subscriber, SubscriberClosedError
from exchange_framework.marketdata.binance import StreamNameError

__all__ = ["MAX_STREAMS", "routes"]

MAX_STREAMS = 1024  # per connection, as Binance
POLICY_VIOLATION = 1008


class _Refused(Exception):
    """A subscription request that cannot be served; the message says why."""


def _resolve(ctx: ApiContext, name: str, now_ms: int) -> tuple[str, bool]:
    """The hub stream for a requested name, and whether it is a diff depth stream."""
    keys: ListenKeys = ctx.extras["listen_keys"]
    account = keys.account(name, now_ms)
    if account is not None:
        return user_stream(account), False
    publisher: StreamPublisher = ctx.extras["publisher"]
    try:
        parsed = publisher.parse(name)
    except StreamNameError as exc:
        raise _Refused(str(exc)) from None
    return parsed.name, parsed.kind == "depth"


def _subscribe(ctx: ApiContext, subscriber: Subscriber, names: list[str]) -> None:
    hub: Hub = ctx.extras["hub"]
    now = ctx.now_ms()
    resolved = [_resolve(ctx, n, now) for n in names]
    if len(subscriber.streams | {r[0] for r in resolved}) > MAX_STREAMS:
        raise _Refused(f"at most {MAX_STREAMS} streams per connection")
    hub.subscribe(subscriber, [r[0] for r in resolved], depth=[r[0] for r in resolved if r[1]])


async def _serve(ctx: ApiContext, websocket: WebSocket, names: list[str], combined: bool) -> None:
    hub: Hub = ctx.extras["hub"]
    subscriber = hub.subscriber(combined=combined)
    try:
        # A bare number names a connection, not a stream (clients such as ccxt open /ws/<n>, then SUBSCRIBE).
        _subscribe(ctx, subscriber, [n for n in names if n and not n.isdigit()])
    except _Refused as exc:
        await websocket.close(code=POLICY_VIOLATION, reason=str(exc)[:120])
        return
    await websocket.accept()
    reader = asyncio.create_task(_read_controls(ctx, websocket, subscriber))
    # The sending loop is a task of its own: waking it per message resumes a coroutine three frames deep, not
    # this handler under every layer of ASGI middleware and routing (the resume cost grows with the depth).
    sender = asyncio.create_task(_send_queued(websocket, subscriber))
    try:
        await sender
    except SlowConsumerError as exc:
        await websocket.close(code=POLICY_VIOLATION, reason=exc.reason)
    except (SubscriberClosedError, WebSocketDisconnect, RuntimeError):
        return  # closed, or the client went away while we were sending
    finally:
        for task in (sender, reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        hub.remove(subscriber)


async def _send_queued(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send the subscriber's messages as they come; ends with the subscriber's drop or close error."""
    while True:
        message = await subscriber.get()
        await websocket.send_text(message.decode())
        # Send what else is queued before waiting again: one wake-up per burst, not per message. A drop is still
        # reported before anything queued after it (get() raises it first).
        while not subscriber.dropped and (queued := subscriber.get_nowait()) is not None:
            await websocket.send_text(queued.decode())


async def _read_controls(ctx: ApiContext, websocket: WebSocket, subscriber: Subscriber) -> None:
    """Answer SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS requests until the client disconnects."""
    hub: Hub = ctx.extras["hub"]
    try:
        while True:
            text = await websocket.receive_text()
            reply: dict[str, Any]
            try:
                request = msgspec.json.decode(text)
                if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                    raise _Refused("send a JSON object with a 'method'")
                ident = request.get("id")
                method = request["method"]
                params = request.get("params", [])
                if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                    raise _Refused("'params' must be a list of stream names")
                if method == "SUBSCRIBE":
                    _subscribe(ctx, subscriber, params)
                    reply = {"result": None, "id": ident}
                elif method == "UNSUBSCRIBE":
                    now = ctx.now_ms()
                    hub.unsubscribe(subscriber, [_resolve(ctx, p, now)[0] for p in params])
                    reply = {"result": None, "id": ident}
                elif method == "LIST_SUBSCRIPTIONS":
                    reply = {"result": sorted(s for s in subscriber.streams if not s.startswith("user:")), "id": ident}
                else:
                    raise _Refused(f"unknown method {method!r}: use SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS")
            except (msgspec.DecodeError, _Refused) as exc:
                reply = {"error": {"code": 2, "msg": f"Invalid request: {exc}"}, "id": None}
            await websocket.send_text(msgspec.json.encode(reply).decode())
    except WebSocketDisconnect:
        subscriber.close()


async def _raw(websocket: WebSocket) -> None:
    ctx: ApiContext = websocket.app.state.api
    path = websocket.path_params.get("streams", "")
    await _serve(ctx, websocket, path.split("/") if path else [], combined=False)


async def _combined(websocket: WebSocket) -> None:
    ctx: ApiContext = websocket.app.state.api
    streams = websocket.query_params.get("streams", "")
    await _serve(ctx, websocket, streams.split("/") if streams else [], combined=True)


# -- the WebSocket API (Binance's /ws-api/v3): requests answered on the socket, user data pushed on it ---------------


async def _ws_api(websocket: WebSocket) -> None:
    """Binance's WebSocket API, the part clients use for private streams: ``ping``, ``time``,
    ``userDataStream.subscribe.signature`` and ``userDataStream.unsubscribe``; events arrive as
    ``{"subscriptionId": n, "event": {...}}``."""
    ctx: ApiContext = websocket.app.state.api
    hub: Hub = ctx.extras["hub"]
    subscriber = hub.subscriber()
    await websocket.accept()
    subscription = 0
    sender = asyncio.Lock()

    async def send(payload: dict[str, Any]) -> None:
        async with sender:
            await websocket.send_text(msgspec.json.encode(payload).decode())

    async def pump() -> None:
        while True:
            try:
                message = await subscriber.get()
            except (SlowConsumerError, SubscriberClosedError):
                return
            async with sender:
                await websocket.send_text(f'{{"subscriptionId":{subscription},"event":{message.decode()}}}')

    pumping = asyncio.create_task(pump())
    try:
        while True:
            text = await websocket.receive_text()
            ident: Any = None
            try:
                request = msgspec.json.decode(text)
                if not isinstance(request, dict):
                    raise ApiError(-1100, "Send a JSON object with 'id', 'method' and 'params'.")
                ident = request.get("id")
                method = request.get("method")
                params = request.get("params") or {}
                if not isinstance(params, dict):
                    raise ApiError(-1100, "'params' must be an object.")
                now = ctx.now_ms()
                if method == "ping":
                    result: Any = {}
                elif method == "time":
                    result = {"serverTime": now}
                elif method == "userDataStream.subscribe.signature":
                    values = {str(k): str(v) for k, v in params.items()}
                    query = "&".join(f"{k}={values[k]}" for k in sorted(values) if k != "signature")
                    signed = Params(query)
                    signed.values["signature"] = values.get("signature", "")
                    ip = websocket.client.host if websocket.client else ""
                    key = authenticate(
                        ctx.identity, api_key=values.get("apiKey"), params=signed, client_ip=ip, now_ms=now,
                        scope=Scope.READ,
                    )  # fmt: skip
                    hub.subscribe(subscriber, [user_stream(key.account)])
                    result = {"subscriptionId": subscription}
                elif method == "userDataStream.unsubscribe":
                    hub.unsubscribe(subscriber, [s for s in subscriber.streams if s.startswith("user:")])
                    result = {}
                else:
                    raise ApiError(-1100, f"Unknown method {method!r}: ping, time, userDataStream.subscribe.signature.")
                await send({"id": ident, "status": 200, "result": result})
            except ApiError as exc:
                await send({"id": ident, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}})
            except msgspec.DecodeError:
                await send({"id": None, "status": 400, "error": {"code": -1100, "msg": "Malformed JSON request."}})
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(subscriber)
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumping


def routes() -> list[WebSocketRoute]:
    """The WebSocket routes."""
    return [
        WebSocketRoute("/ws", _raw, name="ws"),
        WebSocketRoute("/ws/{streams:path}", _raw, name="ws-streams"),
        WebSocketRoute("/stream", _combined, name="stream"),
        WebSocketRoute("/ws-api/v3", _ws_api, name="ws-api"),
    ]
