"""Revoked sessions: access tokens live until they expire, so logging out (or a refresh token
used twice) adds the session to a list every verifier consults until its tokens would expire.

Identity's database is the record of revoked sessions (`sessions.revoked_at`); the list is a copy
of it that every verifier can read fast. Redis holds the list when several processes verify
tokens; the in-process list serves the embedded default, where one process does. Redis keeps
nothing across a restart and may be flushed, so the list knows whether it is complete: identity
publishes its whole record into it (at start, and whenever it finds the list incomplete), and
until then a verifier cannot tell a revoked token from a good one and must refuse it as unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

__all__ = ["Revocations", "RevocationsUnavailable", "RevokedSessions"]


class RevocationsUnavailable(Exception):
    """The list of revoked sessions could not be read or written, or is not complete: whether a
    token is still good is unknown (answered 503, never as valid)."""


RevokedSessions = Callable[[], Awaitable[Sequence[tuple[str, float]]]]
"""Reads the record: every session revoked recently enough that its tokens could still be valid,
with the seconds they could (the ttl of its entry)."""


class Revocations(Protocol):
    async def revoke(self, session_id: str, ttl: float) -> None:
        """Refuse tokens of `session_id` for `ttl` seconds (their longest remaining life).
        `RevocationsUnavailable` if the list cannot be written now (the record has it: the next
        `publish` adds it)."""
        ...

    async def is_revoked(self, session_id: str) -> bool:
        """Whether `session_id` is revoked. `RevocationsUnavailable` when the list cannot be
        read, or is not complete (it lost its entries since the last `publish`): "unknown" is
        never "not revoked"."""
        ...

    async def is_complete(self) -> bool:
        """Whether the list holds every revocation published (False from a restart or flush of
        its store until the next `publish`). `RevocationsUnavailable` if it cannot be read."""
        ...

    async def publish(self, read_record: RevokedSessions) -> bool:
        """Revoke every session `read_record()` returns and mark the list complete, as one
        step: a list that loses its entries during the publish is not marked complete (False:
        publish again), so the mark always covers what the record held when it was read.
        `RevocationsUnavailable` if the list cannot be written."""
        ...
