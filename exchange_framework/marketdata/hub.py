"""Fan-out of encoded stream messages to WebSocket subscribers (asyncio, one event loop).

Each message is encoded once by the publisher and the same ``bytes`` object is queued for every subscriber (the
combined-stream wrapper is built at most once per message too). Every subscriber has a bounded queue and
publishing never waits: when a subscriber's queue is full,

- on a diff depth stream (a name ending in ``@depth`` or ``@depth@100ms``) the message is skipped for that
  subscriber and the stream is flagged in :attr:`Subscriber.resync`; the next message it does get has a ``U``
  above its previous ``u + 1``, which is exactly the gap Binance's local order book procedure detects, so the
  client fetches a new snapshot;
- on any other stream the subscriber is dropped from that stream, and its next :meth:`Subscriber.get` raises
  :class:`SlowConsumerError` with the reason :data:`SLOW_CONSUMER`.

Not thread-safe: publish and subscribe from the loop's thread (hand events over with
``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterable

import msgspec

SLOW_CONSUMER = "slow consumer: resync with a new snapshot"
_json = msgspec.json.Encoder()
_DIFF_DEPTH = re.compile(r"@depth(@[0-9]+ms)?$")
DEFAULT_QUEUE = 1_024


class SlowConsumerError(Exception):
    """A subscriber fell too far behind on ``stream`` and was dropped from it."""

    def __init__(self, stream: str, reason: str = SLOW_CONSUMER) -> None:
        super().__init__(f"{stream}: {reason}")
        self.stream = stream
        self.reason = reason


class SubscriberClosedError(Exception):
    """The subscriber was closed (removed from the hub)."""


class Subscriber:
    """One WebSocket connection's queue of messages, across all its streams.

    ``combined`` subscribers get ``{"stream":..., "data":...}`` wrappers (``/stream?streams=``), others the raw
    payloads (``/ws/<stream>``).
    """

    def __init__(self, hub: Hub, maxsize: int, combined: bool) -> None:
        self.hub = hub
        self.maxsize = maxsize
        self.combined = combined
        self.streams: set[str] = set()
        self.resync: set[str] = set()  # depth streams on which messages were skipped
        self.skipped = 0  # depth messages skipped because the queue was full
        self.dropped: dict[str, str] = {}  # stream -> reason, not yet reported by get()
        self.closed = False
        self._queue: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None  # set while get() waits; publish() resolves it

    def __len__(self) -> int:
        return len(self._queue)

    async def get(self) -> bytes:
        """Return the next message, waiting for one.

        Raise :class:`SlowConsumerError` once for each stream the subscriber was dropped from (before the
        messages still queued), and :class:`SubscriberClosedError` once closed and drained.
        """
        while True:
            if self.dropped:
                stream = next(iter(self.dropped))
                raise SlowConsumerError(stream, self.dropped.pop(stream))
            if self._queue:
                return self._queue.popleft()
            if self.closed:
                raise SubscriberClosedError("subscriber closed")
            # A bare future rather than asyncio.Event: one subscriber has one waiter, and a publish wakes
            # thousands of subscribers, so the event's waiter list and loop checks add up.
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def get_nowait(self) -> bytes | None:
        """Return the next queued message, or None (drops are reported by :meth:`get` only)."""
        return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        """Leave every stream; :meth:`get` ends with :class:`SubscriberClosedError` once the queue is drained."""
        self.hub.remove(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Hub:
    """Subscribers by stream name, and :meth:`publish` to deliver one encoded message to all of a stream's."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.queue_size = queue_size
        self._streams: dict[str, set[Subscriber]] = {}
        self._depth: set[str] = set()  # stream names whose overflow means "skip and resync", not "drop"
        self._prefixes: dict[str, bytes] = {}  # stream -> the start of its combined-stream wrapper
        self.published = 0  # messages published (each counted once, whatever the number of subscribers)
        self.delivered = 0  # messages queued to subscribers

    def subscriber(self, *, combined: bool = False, queue_size: int | None = None) -> Subscriber:
        """Return a new subscriber (not yet on any stream)."""
        return Subscriber(self, queue_size or self.queue_size, combined)

    def subscribe(self, subscriber: Subscriber, streams: Iterable[str], *, depth: Iterable[str] | None = None) -> None:
        """Add ``subscriber`` to ``streams``.

        ``depth`` names the diff depth streams among them (see the module doc); by default those are the names
        ending in ``@depth`` or ``@depth@<n>ms``.
        """
        if subscriber.closed:
            raise SubscriberClosedError("cannot subscribe a closed subscriber")
        streams = list(streams)
        diff = set(depth) if depth is not None else {s for s in streams if _DIFF_DEPTH.search(s)}
        for stream in streams:
            self._streams.setdefault(stream, set()).add(subscriber)
            subscriber.streams.add(stream)
            if stream in diff:
                self._depth.add(stream)

    def unsubscribe(self, subscriber: Subscriber, streams: Iterable[str]) -> None:
        """Remove ``subscriber`` from ``streams`` (names it is not on are ignored)."""
        for stream in list(streams):
            members = self._streams.get(stream)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del self._streams[stream]
                    self._depth.discard(stream)
                    self._prefixes.pop(stream, None)
            subscriber.streams.discard(stream)
            subscriber.resync.discard(stream)

    def remove(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from every stream and close it."""
        self.unsubscribe(subscriber, list(subscriber.streams))
        subscriber.closed = True
        subscriber._wake()

    def has_subscribers(self, stream: str) -> bool:
        """Return whether anyone listens to ``stream`` (publishers skip encoding otherwise)."""
        return stream in self._streams

    def streams(self) -> list[str]:
        """Return the names of the streams that have subscribers."""
        return list(self._streams)

    def subscribers(self, stream: str) -> int:
        """Return the number of subscribers of ``stream``."""
        return len(self._streams.get(stream, ()))

    def publish(self, stream: str, payload: bytes) -> int:
        """Queue ``payload`` (an encoded stream message) for every subscriber of ``stream``; never waits.

        Return the number of subscribers it was queued for.
        """
        members = self._streams.get(stream)
        if not members:
            return 0
        self.published += 1
        wrapped: bytes | None = None
        delivered = 0
        overflow: list[Subscriber] | None = None
        for subscriber in members:
            queue = subscriber._queue
            if len(queue) >= subscriber.maxsize:
                if overflow is None:
                    overflow = []
                overflow.append(subscriber)
                continue
            if subscriber.combined:
                if wrapped is None:
                    prefix = self._prefixes.get(stream)
                    if prefix is None:
                        prefix = self._prefixes[stream] = b'{"stream":' + _json.encode(stream) + b',"data":'
                    wrapped = prefix + payload + b"}"
                queue.append(wrapped)
            else:
                queue.append(payload)
            waiter = subscriber._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            delivered += 1
        if overflow is not None:
            depth = stream in self._depth
            for subscriber in overflow:
                if depth:
                    subscriber.resync.add(stream)
                    subscriber.skipped += 1
                else:
                    self.unsubscribe(subscriber, (stream,))
                    subscriber.dropped[stream] = SLOW_CONSUMER
                    subscriber._wake()
        self.delivered += delivered
        return delivered
