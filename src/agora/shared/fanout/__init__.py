"""The live-update fan-out port: any replica publishes, every replica's subscribers hear it.

A seat-map change handled by one gateway replica must reach the WebSocket clients of all of them:
each replica subscribes to the channels its clients watch and forwards what arrives.
`RedisFanout` uses Redis pub/sub; `InProcessFanout` is its twin for a single process.
`tests/integration/test_shared_state.py` holds both to `Fanout`'s text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

__all__ = ["Fanout"]


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
