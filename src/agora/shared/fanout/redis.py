"""The Redis adapter of the fanout port (see `agora.shared.fanout`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from agora.shared.fanout import _check_channels

__all__ = ["RedisFanout"]


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
