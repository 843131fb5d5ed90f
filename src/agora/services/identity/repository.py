"""How identity's handlers read and change their rows: users, sessions with their refresh tokens,
and login attempts, each a repository over one connection. A unit of work exposes them for
writes, `reading` for reads. Tests hold the handlers to them with in-memory twins."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import Plan
from agora.messaging import Database, UnitOfWork
from agora.services.identity.domain import Profile, User
from agora.services.identity.store import login_attempts, profiles, refresh_tokens, sessions, users

__all__ = [
    "Account",
    "IdentityRepositories",
    "IdentityUnitOfWork",
    "LoginAttemptsRepository",
    "SessionsRepository",
    "StoredRefreshToken",
    "UsersRepository",
    "reading",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """A user with the hash of their password (which never leaves the handlers)."""

    user: User
    password_hash: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRefreshToken:
    session_id: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None
    session_revoked_at: datetime | None


class UsersRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def user(self, user_id: str) -> User | None:
        row = (await self._conn.execute(USER_BY_ID, {"user": user_id})).first()
        return None if row is None else _user_of(row)

    async def account(self, email: str) -> Account | None:
        """The account of `email` (normalised), or None."""
        row = (await self._conn.execute(USER_BY_EMAIL, {"email": email})).first()
        return None if row is None else Account(_user_of(row), row.password_hash)

    async def scanners(
        self, seller_id: str, *, limit: int, offset: int
    ) -> tuple[list[tuple[User, str | None]], int]:
        """The scanners working for `seller_id` with the name of each, oldest first, and how
        many there are in all."""
        mine = (users.c.works_for == seller_id, users.c.deleted_at.is_(None))
        total = await self._conn.scalar(select(func.count()).select_from(users).where(*mine))
        rows = await self._conn.execute(
            select(users, profiles.c.name)
            .outerjoin(profiles, profiles.c.user_id == users.c.id)
            .where(*mine)
            .order_by(users.c.created_at, users.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [(_user_of(row), row.name) for row in rows], int(total or 0)

    async def delete(self, user_id: str, at: datetime) -> None:
        """Delete the account: it is no longer found, by id or by address."""
        await self._conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.deleted_at.is_(None))
            .values(deleted_at=at, updated_at=at)
        )

    async def add(self, user: User, password_hash: str) -> None:
        """Add `user`; an address taken meanwhile (by another transaction) raises
        `IntegrityError`."""
        await self._conn.execute(
            insert(users).values(
                id=user.id,
                email=user.email,
                password_hash=password_hash,
                role=user.role,
                plan=user.plan,
                works_for=user.works_for,
                created_at=user.created_at,
                updated_at=user.created_at,
            )
        )

    async def profile(self, user_id: str) -> Profile:
        """The user's profile (empty if they never gave one)."""
        row = (await self._conn.execute(PROFILE_OF, {"user": user_id})).first()
        return Profile() if row is None else Profile(row.name, row.phone, row.address)

    async def save_profile(self, user_id: str, profile: Profile, at: datetime) -> None:
        await self._conn.execute(delete(profiles).where(profiles.c.user_id == user_id))
        await self._conn.execute(
            insert(profiles).values(
                user_id=user_id,
                name=profile.name,
                phone=profile.phone,
                address=profile.address,
                updated_at=at,
            )
        )

    async def change_plan(self, user_id: str, plan: Plan, at: datetime) -> None:
        await self._conn.execute(
            update(users).where(users.c.id == user_id).values(plan=plan, updated_at=at)
        )

    async def change_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._conn.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )


class SessionsRepository:
    """Sessions (logins) and the refresh tokens of each, stored by their digest only."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def open(self, session_id: str, user_id: str, at: datetime) -> None:
        await self._conn.execute(
            insert(sessions).values(id=session_id, user_id=user_id, created_at=at, revoked_at=None)
        )

    async def revoke(self, session_id: str, at: datetime) -> None:
        """Revoke the session at `at`; a session revoked already keeps its first time."""
        await self._conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_all_of(self, user_id: str, at: datetime) -> list[str]:
        """Revoke every session of the user not revoked yet, at `at`; their ids."""
        revoked = await self._conn.execute(
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(sessions.c.id)
        )
        return list(revoked.scalars())

    async def revoked_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """The sessions revoked after `since`, with when."""
        rows = await self._conn.execute(
            select(sessions.c.id, sessions.c.revoked_at).where(sessions.c.revoked_at > since)
        )
        return [(row.id, row.revoked_at) for row in rows]

    async def add_refresh_token(
        self, digest: str, session_id: str, at: datetime, expires_at: datetime
    ) -> None:
        await self._conn.execute(
            insert(refresh_tokens).values(
                token_hash=digest,
                session_id=session_id,
                created_at=at,
                expires_at=expires_at,
                used_at=None,
            )
        )

    async def refresh_token(self, digest: str) -> StoredRefreshToken | None:
        """The refresh token of `digest`, with its session's user and revocation."""
        row = (await self._conn.execute(REFRESH_TOKEN, {"digest": digest})).first()
        if row is None:
            return None
        return StoredRefreshToken(
            session_id=row.session_id,
            user_id=row.user_id,
            expires_at=row.expires_at,
            used_at=row.used_at,
            session_revoked_at=row.revoked_at,
        )

    async def use_refresh_token(self, digest: str, at: datetime) -> bool:
        """Mark the token used at `at`; False if it was used before (by another request
        meanwhile, say): then nothing changed."""
        result = await self._conn.execute(USE_REFRESH_TOKEN, {"digest": digest, "at": at})
        return result.rowcount == 1


class LoginAttemptsRepository:
    """Login attempts by subject ("account:<email>", "ip:<address>"), the throttle's memory."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(self, subjects: Sequence[str], at: datetime) -> list[int]:
        """Record an attempt against each of `subjects`; the attempts' ids, in order."""
        ids = []
        for subject in subjects:
            result = await self._conn.execute(RECORD_ATTEMPT, {"subject": subject, "at": at})
            ids.append(int(result.scalar_one()))
        return ids

    async def since(self, subject: str, since: datetime, *, excluding: int) -> list[datetime]:
        """When the attempts against `subject` after `since` were made, but attempt
        `excluding`."""
        rows = await self._conn.execute(
            ATTEMPTS_SINCE, {"subject": subject, "since": since, "excluding": excluding}
        )
        return [row.attempted_at for row in rows]

    async def forget(self, *, ids: Sequence[int] = (), subject: str | None = None) -> None:
        """Forget the attempts `ids`, and every attempt against `subject`."""
        if ids:
            await self._conn.execute(delete(login_attempts).where(login_attempts.c.id.in_(ids)))
        if subject is not None:
            await self._conn.execute(
                delete(login_attempts).where(login_attempts.c.subject == subject)
            )

    async def forget_before(self, before: datetime) -> None:
        """Forget the attempts made at or before `before` (out of every throttle window)."""
        await self._conn.execute(
            delete(login_attempts).where(login_attempts.c.attempted_at <= before)
        )


class IdentityRepositories:
    """Identity's repositories over one connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.users = UsersRepository(conn)
        self.sessions = SessionsRepository(conn)
        self.attempts = LoginAttemptsRepository(conn)


class IdentityUnitOfWork(UnitOfWork):
    @property
    def users(self) -> UsersRepository:
        return UsersRepository(self.conn)

    @property
    def sessions(self) -> SessionsRepository:
        return SessionsRepository(self.conn)

    @property
    def attempts(self) -> LoginAttemptsRepository:
        return LoginAttemptsRepository(self.conn)


@contextlib.asynccontextmanager
async def reading(db: Database) -> AsyncIterator[IdentityRepositories]:
    """The repositories over a reading connection of `db` (see `Database.read`)."""
    async with db.read() as conn:
        yield IdentityRepositories(conn)


def _user_of(row: Row[Any]) -> User:
    return User(
        id=row.id,
        email=row.email,
        role=row.role,
        plan=row.plan,
        created_at=row.created_at,
        works_for=row.works_for,
    )


# A deleted account is not found: it cannot log in, and its address stays taken.
USER_BY_ID = select(users).where(users.c.id == bindparam("user"), users.c.deleted_at.is_(None))
USER_BY_EMAIL = select(users).where(
    users.c.email == bindparam("email"), users.c.deleted_at.is_(None)
)
REFRESH_TOKEN = (
    select(refresh_tokens, sessions.c.user_id, sessions.c.revoked_at)
    .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
    .where(refresh_tokens.c.token_hash == bindparam("digest"))
)
USE_REFRESH_TOKEN = (
    update(refresh_tokens)
    .where(refresh_tokens.c.token_hash == bindparam("digest"), refresh_tokens.c.used_at.is_(None))
    .values(used_at=bindparam("at"))
)
RECORD_ATTEMPT = (
    insert(login_attempts)
    .values(subject=bindparam("subject"), attempted_at=bindparam("at"))
    .returning(login_attempts.c.id)
)
ATTEMPTS_SINCE = select(login_attempts.c.attempted_at).where(
    login_attempts.c.subject == bindparam("subject"),
    login_attempts.c.attempted_at > bindparam("since"),
    login_attempts.c.id != bindparam("excluding"),
)

PROFILE_OF = select(profiles.c.name, profiles.c.phone, profiles.c.address).where(
    profiles.c.user_id == bindparam("user")
)
