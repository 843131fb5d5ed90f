"""Identity's use cases: register, log in (throttled), refresh (rotating, with reuse
detection), log out, change a plan, create an admin, and re-announce revoked sessions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import Plan, Role, issue_access_token
from agora.contracts.identity import PlanChanged, UserRegistered
from agora.messaging import Database, UnitOfWork, new_id, utcnow
from agora.services.identity import store
from agora.services.identity.domain import (
    Lifetimes,
    ThrottleLimits,
    User,
    hash_refresh_token,
    new_refresh_token,
    normalise_email,
    throttled_for,
)
from agora.services.identity.passwords import Passwords
from agora.services.identity.signing_keys import SigningKeys
from agora.services.identity.store import refresh_tokens, sessions, users
from agora.shared.revocations import Revocations

__all__ = [
    "EmailTaken",
    "IdentityHandlers",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "LoginThrottled",
    "Tokens",
    "UserNotFound",
]


class EmailTaken(Exception):
    """The address belongs to an account already."""


class InvalidCredentials(Exception):
    """Unknown address or wrong password: deliberately one error."""


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after


class InvalidRefreshToken(Exception):
    """Unknown, expired, of a revoked session, or used before (which revokes its session)."""


class UserNotFound(Exception):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


class IdentityHandlers:
    def __init__(
        self,
        db: Database,
        unit_of_work: Callable[[], UnitOfWork],
        passwords: Passwords,
        keys: SigningKeys,
        revocations: Revocations,
        *,
        lifetimes: Lifetimes,
        limits: ThrottleLimits,
    ) -> None:
        self._db = db
        self._unit_of_work = unit_of_work
        self._passwords = passwords
        self._keys = keys
        self._revocations = revocations
        self._lifetimes = lifetimes
        self._limits = limits

    # -- accounts ------------------------------------------------------------------------

    async def register(self, email: str, password: str, role: Role) -> None:
        """Create the account, or do nothing if the address has one: the caller cannot tell
        which (the password is hashed either way, so both take as long)."""
        password_hash = await self._passwords.hash(password)
        await self._create(normalise_email(email), password_hash, role)

    async def create_admin(self, email: str, password: str) -> User:
        user = await self._create(
            normalise_email(email), await self._passwords.hash(password), "admin"
        )
        if user is None:
            raise EmailTaken(f"{normalise_email(email)} has an account already")
        return user

    async def _create(self, email: str, password_hash: str, role: Role) -> User | None:
        now = utcnow()
        user = User(id=new_id(), email=email, role=role, plan="free", created_at=now)
        try:
            async with self._unit_of_work() as uow:
                if await store.find_by_email(uow.conn, email) is not None:
                    return None
                await uow.conn.execute(
                    insert(users).values(
                        id=user.id,
                        email=email,
                        password_hash=password_hash,
                        role=role,
                        plan=user.plan,
                        created_at=now,
                        updated_at=now,
                    )
                )
                uow.emit(UserRegistered(user_id=user.id, email=email, role=role, plan=user.plan))
        except IntegrityError:  # registered concurrently
            return None
        return user

    async def user(self, user_id: str) -> User:
        async with self._db.read() as conn:
            user = await store.load_user(conn, user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    async def change_plan(self, user_id: str, plan: Plan) -> User:
        """Put the user on `plan` (PlanChanged; nothing when it is the plan already). Access
        tokens carry the plan from the next one issued (login or refresh)."""
        async with self._unit_of_work() as uow:
            user = await store.load_user(uow.conn, user_id)
            if user is None:
                raise UserNotFound(f"no user {user_id}")
            if user.plan == plan:
                return user
            await uow.conn.execute(
                update(users).where(users.c.id == user_id).values(plan=plan, updated_at=utcnow())
            )
            uow.emit(PlanChanged(user_id=user_id, plan=plan, previous_plan=user.plan))
        return dataclasses.replace(user, plan=plan)

    # -- sessions ------------------------------------------------------------------------

    async def login(self, email: str, password: str, client_ip: str) -> Tokens:
        """Tokens of a new session. Every attempt is recorded against the address and the
        client's IP before the password is checked, and kept if it fails; an attempt with
        too many others in the throttle's window is refused unchecked (`LoginThrottled`)."""
        email = normalise_email(email)
        account, ip = f"account:{email}", f"ip:{client_ip}"
        now = utcnow()
        # Recorded and committed before counting: of concurrent attempts, the later ones count
        # the earlier, so no burst gets more than the limit checked.
        async with self._db.write() as conn:
            attempt_ids = await store.record_attempts(conn, [account, ip], now)
        wait = await self._throttled(
            [
                (account, attempt_ids[0], self._limits.per_account),
                (ip, attempt_ids[1], self._limits.per_ip),
            ],
            now,
        )
        if wait is not None:
            async with self._db.write() as conn:
                await store.forget_attempts(conn, ids=attempt_ids)
            raise LoginThrottled(wait)
        async with self._db.read() as conn:
            row = await store.find_by_email(conn, email)
        if not await self._passwords.check(None if row is None else row.password_hash, password):
            async with self._db.write() as conn:
                await store.forget_attempts_before(conn, now - self._limits.window)
            raise InvalidCredentials("wrong e-mail address or password")
        assert row is not None
        user = store.user_of(row)
        session_id = new_id()
        rehashed = None
        if self._passwords.needs_rehash(row.password_hash):
            rehashed = await self._passwords.hash(password)
        async with self._db.write() as conn:
            await store.forget_attempts(conn, ids=attempt_ids[1:], subject=account)
            if rehashed is not None:
                await conn.execute(
                    update(users).where(users.c.id == user.id).values(password_hash=rehashed)
                )
            await conn.execute(
                insert(sessions).values(
                    id=session_id, user_id=user.id, created_at=utcnow(), revoked_at=None
                )
            )
            refresh_token = await self._add_refresh_token(conn, session_id)
        return await self._tokens(user, session_id, refresh_token)

    async def _throttled(self, subjects: list[tuple[str, int, int]], now: datetime) -> int | None:
        since = now - self._limits.window
        waits = []
        async with self._db.read() as conn:
            for subject, attempt_id, limit in subjects:
                earlier = await store.attempts_since(conn, subject, since, excluding=attempt_id)
                wait = throttled_for(earlier, limit, self._limits.window, now)
                if wait is not None:
                    waits.append(wait)
        return max(waits) if waits else None

    async def refresh(self, token: str) -> Tokens:
        """New tokens for the session of `token`, which is used up. A token used a second time
        means it was copied: its whole session is revoked."""
        digest = hash_refresh_token(token)
        now = utcnow()
        refused = ""
        reused_session: str | None = None
        issued: tuple[User, str, str] | None = None
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(refresh_tokens, sessions.c.user_id, sessions.c.revoked_at)
                    .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                    .where(refresh_tokens.c.token_hash == digest)
                )
            ).first()
            if row is None:
                refused = "unknown refresh token"
            elif row.revoked_at is not None:
                refused = "the refresh token's session was revoked (logged out, or reused)"
            elif row.used_at is not None or not await self._use(conn, digest, now):
                await self._revoke(conn, row.session_id, now)
                reused_session = row.session_id
                refused = "the refresh token was used before: its session is now revoked"
            elif row.expires_at <= now:
                refused = "the refresh token has expired"
            else:
                user = await store.load_user(conn, row.user_id)
                assert user is not None
                new_token = await self._add_refresh_token(conn, row.session_id)
                issued = (user, row.session_id, new_token)
        if reused_session is not None:
            await self._announce(reused_session, now)
        if issued is None:
            raise InvalidRefreshToken(refused)
        return await self._tokens(*issued)

    async def logout(self, session_id: str) -> None:
        """Revoke the session: its refresh tokens and its access tokens are refused."""
        now = utcnow()
        async with self._db.write() as conn:
            await self._revoke(conn, session_id, now)
        await self._announce(session_id, now)

    async def announce_revocations(self) -> int:
        """Tell the revocation list every session revoked recently enough that its access
        tokens could still be valid (an in-process list starts empty)."""
        now = utcnow()
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(sessions.c.id, sessions.c.revoked_at).where(
                        sessions.c.revoked_at > now - self._lifetimes.revocation
                    )
                )
            ).all()
        for row in rows:
            await self._announce(row.id, row.revoked_at)
        return len(rows)

    async def _announce(self, session_id: str, revoked_at: datetime) -> None:
        remaining = revoked_at + self._lifetimes.revocation - utcnow()
        if remaining.total_seconds() > 0:
            await self._revocations.revoke(session_id, ttl=remaining.total_seconds())

    @staticmethod
    async def _use(conn: AsyncConnection, digest: str, now: datetime) -> bool:
        """Mark the token used; False if another request used it first."""
        result = await conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == digest, refresh_tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1

    @staticmethod
    async def _revoke(conn: AsyncConnection, session_id: str, now: datetime) -> None:
        await conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def _add_refresh_token(self, conn: AsyncConnection, session_id: str) -> str:
        token = new_refresh_token()
        now = utcnow()
        await conn.execute(
            insert(refresh_tokens).values(
                token_hash=hash_refresh_token(token),
                session_id=session_id,
                created_at=now,
                expires_at=now + self._lifetimes.refresh,
                used_at=None,
            )
        )
        return token

    async def _tokens(self, user: User, session_id: str, refresh_token: str) -> Tokens:
        access_token = issue_access_token(
            await self._keys.current(),
            user_id=user.id,
            role=user.role,
            plan=user.plan,
            email=user.email,
            session_id=session_id,
            now=utcnow(),
            ttl=self._lifetimes.access,
        )
        return Tokens(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=int(self._lifetimes.access.total_seconds()),
        )
