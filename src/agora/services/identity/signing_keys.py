"""Identity's signing keys, kept in its database so that every replica signs with the same key
and `agora keys rotate` (another process) reaches them all within seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import SigningKey, key_set
from agora.messaging import Database, utcnow
from agora.services.identity.domain import Lifetimes
from agora.services.identity.store import signing_keys

__all__ = ["KeyRotation", "SigningKeys"]


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRotation:
    new: str
    retired: list[str]
    active_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class _Loaded:
    at: float
    current: SigningKey | None
    published: list[SigningKey]


class SigningKeys:
    """A rotation publishes the new key at once but signs with it only once the old key retires,
    `activate_after` later: by then every verifier can have fetched the new key (they refetch
    at most every few seconds), so no fresh token names a key a verifier cannot find yet.
    Retired keys stay published as long as an access token lives (plus a margin), so no token
    signed before a rotation is refused after it. Reads are cached for `cache_seconds`."""

    def __init__(
        self,
        db: Database,
        lifetimes: Lifetimes,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._lifetimes = lifetimes
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._loaded: _Loaded | None = None
        self._loading = asyncio.Lock()

    async def current(self) -> SigningKey:
        loaded = await self._load()
        if loaded.current is None:
            await self.ensure()
            loaded = await self._load(fresh=True)
        assert loaded.current is not None
        return loaded.current

    async def key_set(self) -> Mapping[str, Any]:
        """The JSON Web Key Set of the published keys (the runtime's in-process key source)."""
        return key_set((await self._load()).published)

    async def ensure(self) -> None:
        """Create a key if none is in use (the first start)."""
        async with self._db.write() as conn:
            active = await conn.scalar(
                select(signing_keys.c.kid).where(signing_keys.c.retired_at.is_(None)).limit(1)
            )
            if active is None:
                await self._add(conn, SigningKey.generate())
        self._loaded = None

    async def rotate(self, activate_after: timedelta | None = None) -> KeyRotation:
        """Add a new key, published now and signing once the keys in use retire, after
        `activate_after` (default: the lifetimes' `key_activation`); delete keys retired long
        enough that no token they signed is still valid."""
        if activate_after is None:
            activate_after = self._lifetimes.key_activation
        key = SigningKey.generate()
        now = utcnow()
        active_at = now + activate_after
        async with self._db.write() as conn:
            # Keys retiring later than the new key activates (in use, or pending retirement
            # from an earlier rotation) retire then.
            retiring = or_(
                signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > active_at
            )
            retired = list((await conn.scalars(select(signing_keys.c.kid).where(retiring))).all())
            await conn.execute(update(signing_keys).where(retiring).values(retired_at=active_at))
            await conn.execute(
                delete(signing_keys).where(
                    signing_keys.c.retired_at < now - self._lifetimes.key_publication
                )
            )
            await self._add(conn, key)
        self._loaded = None
        return KeyRotation(new=key.kid, retired=sorted(retired), active_at=active_at)

    @staticmethod
    async def _add(conn: AsyncConnection, key: SigningKey) -> None:
        await conn.execute(
            insert(signing_keys).values(
                kid=key.kid, private_pem=key.private_pem, created_at=utcnow(), retired_at=None
            )
        )

    async def _load(self, *, fresh: bool = False) -> _Loaded:
        loaded = self._loaded
        if not fresh and loaded is not None and self._clock() - loaded.at < self._cache_seconds:
            return loaded
        async with self._loading:
            loaded = self._loaded
            if fresh or loaded is None or self._clock() - loaded.at >= self._cache_seconds:
                loaded = await self._read()
                self._loaded = loaded
        return loaded

    async def _read(self) -> _Loaded:
        at = self._clock()
        since = utcnow() - self._lifetimes.key_publication
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(signing_keys)
                    .where(
                        or_(signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > since)
                    )
                    .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
                )
            ).all()
        now = utcnow()
        published = [SigningKey(kid=row.kid, private_pem=row.private_pem) for row in rows]
        # The oldest key not retired yet signs: it is the first to retire.
        signing = [row for row in rows if row.retired_at is None or row.retired_at > now]
        current = (
            None
            if not signing
            else SigningKey(kid=signing[-1].kid, private_pem=signing[-1].private_pem)
        )
        return _Loaded(at=at, current=current, published=published)
