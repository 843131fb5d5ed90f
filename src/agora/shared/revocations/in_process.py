"""The in-process adapter of the revocations port (see `agora.shared.revocations`)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["InProcessRevocations"]


class InProcessRevocations:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    async def revoke(self, session_id: str, ttl: float) -> None:
        now = self._clock()
        self._until = {sid: until for sid, until in self._until.items() if until > now}
        self._until[session_id] = max(self._until.get(session_id, 0.0), now + ttl)

    async def is_revoked(self, session_id: str) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > self._clock()
