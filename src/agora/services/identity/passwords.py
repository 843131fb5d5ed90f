"""Password hashing with Argon2id, off the event loop (a hash takes tens of milliseconds of CPU
by design)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["Passwords"]


class Passwords:
    """Hashes and checks passwords. `check` of an unknown account verifies against a dummy hash
    made with the same parameters, so it takes as long as checking a real one."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy: str | None = None

    async def prepare(self) -> None:
        """Make the dummy hash now, so that the first unknown address costs no extra hash."""
        if self._dummy is None:
            self._dummy = await self.hash("an unguessable dummy password, never stored")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def check(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            await self.prepare()
            assert self._dummy is not None
            await asyncio.to_thread(self._verify, self._dummy, password)
            return False
        return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """The hash was made with weaker parameters than today's."""
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
