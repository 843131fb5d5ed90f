"""The in-process adapter of the fanout port (see `agora.shared.fanout`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator

from agora.shared.fanout import _check_channels

__all__ = ["InProcessFanout"]


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

    def channels(self) -> list[str]:
        """The channels with a live subscription."""
        return list(self._inboxes)

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
