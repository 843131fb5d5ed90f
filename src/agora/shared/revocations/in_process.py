"""The in-process adapter of the revocations port (see `agora.shared.revocations`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from agora.shared.revocations import RevokedSessions

__all__ = ["InProcessRevocations"]


class InProcessRevocations:
    """The list of the one process that verifies tokens, which is identity's own: it is filled
    by identity's start (`publish`) before the process serves a request, and lost only with the
    process. It is therefore always complete."""

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

    async def is_complete(self) -> bool:
        return True

    async def publish(self, read_record: RevokedSessions) -> bool:
        for session_id, ttl in await read_record():
            await self.revoke(session_id, ttl)
        return True
