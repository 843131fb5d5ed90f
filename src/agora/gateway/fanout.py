"""The live-update fan-out port: any replica publishes, every replica's subscribers hear it.

A seat-map change handled by one gateway replica must reach the WebSocket clients of all of them:
each replica subscribes to the channels its clients watch and forwards what arrives.
`RedisFanout` uses Redis pub/sub; `InProcessFanout` is its twin for a single process.
`tests/integration/test_gateway_adapters.py` holds both to `Fanout`'s text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

__all__ = ["Fanout", "InProcessFanout", "RedisFanout"]


class Fanout(Protocol):
    """Fire-and-forget broadcast on named channels.

    * A subscription is live when its `async with` block begins: a message published to one of
      its channels after that, by any process sharing the backend, is delivered to it until the
      block ends. Nothing is stored: a message nobody subscribes to is gone.
    * At most once: a subscriber that falls behind or loses its connection misses messages
      (see each adapter for when). A message says "this changed"; after a gap, or when it first
      subscribes, a consumer reads the current state from the source of truth.
    * Messages one publisher sends to one channel arrive in the order it sent them.
    """

    async def publish(self, channel: str, message: bytes) -> None:
        """Send `message` to the current subscribers of `channel`."""
        ...

    def subscribe(
        self, *channels: str
    ) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, bytes]]]:
        """Subscribe to `channels` (at least one) for the duration of an `async with` block,
        which yields an iterator of `(channel, message)`. Leaving the block unsubscribes, and the
        iterator then ends. Iterate in the task that holds the block."""
        ...


def _check_channels(channels: tuple[str, ...]) -> list[str]:
    if not channels:
        raise ValueError("subscribe needs at least one channel")
    return list(dict.fromkeys(channels))


# -- Redis -----------------------------------------------------------------------------------


class _RedisSubscription:
    def __init__(self, pubsub: PubSub, prefix: str) -> None:
        self._pubsub = pubsub
        self._prefix = prefix
        self._early: deque[tuple[str, bytes]] = deque()
        self.closed = False

    async def confirm(self, channels: int, timeout: float) -> None:
        """Wait for Redis to confirm `channels` subscriptions (keeping any message that comes
        first): SUBSCRIBE is sent without waiting for its replies, and until they arrive a
        message published elsewhere could still miss this subscriber."""
        confirmed = 0
        async with asyncio.timeout(timeout):
            while confirmed < channels:
                message = await self._pubsub.get_message(timeout=None)
                if message is not None and message["type"] == "subscribe":
                    confirmed += 1
                    continue
                delivered = self._delivered(message)
                if delivered is not None:
                    self._early.append(delivered)

    def __aiter__(self) -> _RedisSubscription:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        if self._early and not self.closed:
            return self._early.popleft()
        while not self.closed:
            message = await self._pubsub.get_message(timeout=None)
            delivered = self._delivered(message)
            if delivered is not None:
                return delivered
        raise StopAsyncIteration

    def _delivered(self, message: dict[str, Any] | None) -> tuple[str, bytes] | None:
        if message is None or message["type"] != "message":
            return None
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        return name.removeprefix(self._prefix), bytes(message["data"])


class RedisFanout:
    """Redis pub/sub on channels `<prefix><channel>`.

    Each subscription holds a connection of its own, taken from `client`'s pool and closed when
    the block ends (which ends the subscription on the server). Entering the block waits for
    Redis to confirm every channel (up to `subscribe_timeout` seconds, else `TimeoutError`), so
    the subscription is live when the body starts.

    Redis pushes messages to subscribers as they are published and keeps none: a subscriber
    whose unread output exceeds the server's `client-output-buffer-limit pubsub` is
    disconnected, and messages published while a connection is down are lost.
    `client` must not decode responses; its owner closes it.
    """

    def __init__(
        self, client: Redis, *, prefix: str = "agora:live:", subscribe_timeout: float = 10.0
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._subscribe_timeout = subscribe_timeout

    async def publish(self, channel: str, message: bytes) -> None:
        await self._client.publish(self._prefix + channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[tuple[str, bytes]]]:
        names = [self._prefix + channel for channel in _check_channels(channels)]
        pubsub = self._client.pubsub()
        subscription = _RedisSubscription(pubsub, self._prefix)
        try:
            await pubsub.subscribe(*names)
            await subscription.confirm(len(names), self._subscribe_timeout)
            yield subscription
        finally:
            subscription.closed = True
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py


# -- in process ------------------------------------------------------------------------------


class _Inbox:
    def __init__(self, max_pending: int) -> None:
        self._messages: deque[tuple[str, bytes]] = deque(maxlen=max_pending)
        self._arrived = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, channel: str, message: bytes) -> None:
        if len(self._messages) == self._messages.maxlen:
            self.dropped += 1
        self._messages.append((channel, message))
        self._arrived.set()

    def close(self) -> None:
        self.closed = True
        self._arrived.set()

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        while not self._messages:
            if self.closed:
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        if self.closed:
            raise StopAsyncIteration
        return self._messages.popleft()


class InProcessFanout:
    """Channels within one process: each subscription has an inbox of at most `max_pending`
    messages, filled by `publish` without waiting.

    A subscriber that does not keep up loses its oldest pending messages, never blocking the
    publisher or the other subscribers; its iterator's `dropped` counts them. `close` ends
    every subscription's iteration, and any made after it at once.
    """

    def __init__(self, *, max_pending: int = 1000) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._max_pending = max_pending
        self._inboxes: defaultdict[str, set[_Inbox]] = defaultdict(set)
        self._live: set[_Inbox] = set()
        self._closed = False

    def subscriber_count(self, channel: str) -> int:
        """Live subscriptions to `channel`."""
        return len(self._inboxes.get(channel, ()))

    def subscription_count(self) -> int:
        """Live subscriptions, whatever their channels."""
        return len(self._live)

    def close(self) -> None:
        """End every subscription's iteration, now and from now on (the process is stopping)."""
        self._closed = True
        for inbox in self._live:
            inbox.close()

    async def publish(self, channel: str, message: bytes) -> None:
        for inbox in self._inboxes.get(channel, ()):
            inbox.put(channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[tuple[str, bytes]]]:
        names = _check_channels(channels)
        inbox = _Inbox(self._max_pending)
        if self._closed:
            inbox.close()
        self._live.add(inbox)
        for name in names:
            self._inboxes[name].add(inbox)
        try:
            yield inbox
        finally:
            inbox.close()
            self._live.discard(inbox)
            for name in names:
                subscribers = self._inboxes[name]
                subscribers.discard(inbox)
                if not subscribers:
                    del self._inboxes[name]
