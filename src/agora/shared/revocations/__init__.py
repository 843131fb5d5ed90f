"""Revoked sessions: access tokens live until they expire, so logging out (or a refresh token
used twice) adds the session to a list every verifier consults until its tokens would expire.

Redis holds the list when several processes verify tokens; the in-process list serves the
embedded default, where one process does.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Revocations", "RevocationsUnavailable"]


class RevocationsUnavailable(Exception):
    """The list of revoked sessions could not be read: whether a token is still good is
    unknown (answered 503, never as valid)."""


class Revocations(Protocol):
    async def revoke(self, session_id: str, ttl: float) -> None:
        """Refuse tokens of `session_id` for `ttl` seconds (their longest remaining life)."""
        ...

    async def is_revoked(self, session_id: str) -> bool: ...
