"""Identity's use cases: register, log in (throttled), refresh (rotating, with reuse
detection), log out, change a plan, create an admin, a seller's scanner accounts, and
keep the revocation list a complete copy of the revoked sessions."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from agora.auth import Plan, Role, SigningKey, issue_access_token
from agora.contracts.identity import PlanChanged, UserProfileChanged, UserRegistered
from agora.messaging import new_id, utcnow
from agora.services.identity.domain import (
    Lifetimes,
    Profile,
    RegisteredRole,
    ThrottleLimits,
    User,
    hash_refresh_token,
    new_refresh_token,
    normalise_email,
    throttled_for,
)
from agora.services.identity.passwords import Passwords
from agora.services.identity.repository import (
    IdentityRepositories,
    IdentityUnitOfWork,
    SessionsRepository,
)
from agora.shared.revocations import Revocations, RevocationsUnavailable

__all__ = [
    "EmailTaken",
    "IdentityHandlers",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "LoginThrottled",
    "Scanner",
    "ScannerNotFound",
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


class ScannerNotFound(Exception):
    """No such scanner among the seller's (another seller's is not found either)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Scanner:
    """A scanner account with the name its seller gave it."""

    user: User
    name: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


class IdentityHandlers:
    """Identity's commands and queries. Writes go through a unit of work's repositories,
    reads through `read`'s; the access tokens are signed with `current_key()`."""

    def __init__(
        self,
        unit_of_work: Callable[[], IdentityUnitOfWork],
        read: Callable[[], AbstractAsyncContextManager[IdentityRepositories]],
        passwords: Passwords,
        current_key: Callable[[], Awaitable[SigningKey]],
        revocations: Revocations,
        *,
        lifetimes: Lifetimes,
        limits: ThrottleLimits,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._read = read
        self._passwords = passwords
        self._current_key = current_key
        self._revocations = revocations
        self._unpublished = True  # nothing published by this process yet
        self._lifetimes = lifetimes
        self._limits = limits

    # -- accounts ------------------------------------------------------------------------

    async def register(self, email: str, password: str, role: RegisteredRole) -> None:
        """Create the account, or do nothing if the address has one: the caller cannot tell
        which (the password is hashed either way, so both take as long)."""
        password_hash = await self._passwords.hash(password)
        await self._create(normalise_email(email), password_hash, role)

    async def create_admin(self, email: str, password: str) -> User:
        """An admin account (`agora users create-admin`); `EmailTaken` if the address has an
        account already."""
        user = await self._create(
            normalise_email(email), await self._passwords.hash(password), "admin"
        )
        if user is None:
            raise EmailTaken(f"{normalise_email(email)} has an account already")
        return user

    async def create_scanner(
        self, seller_id: str, email: str, password: str, name: str | None
    ) -> Scanner:
        """A scanner account working for `seller_id`; `EmailTaken` if the address has an
        account already."""
        email = normalise_email(email)
        user = await self._create(
            email, await self._passwords.hash(password), "scanner", works_for=seller_id, name=name
        )
        if user is None:
            raise EmailTaken(f"{email} has an account already")
        return Scanner(user, name)

    async def scanners(
        self, seller_id: str, *, limit: int, offset: int
    ) -> tuple[list[Scanner], int]:
        """The seller's scanners, oldest first, and how many there are."""
        async with self._read() as read:
            found, total = await read.users.scanners(seller_id, limit=limit, offset=offset)
        return [Scanner(user, name) for user, name in found], total

    async def delete_scanner(self, seller_id: str, scanner_id: str) -> None:
        """Delete one of the seller's scanners: it can no longer log in, and every session of
        it is revoked (its refresh and access tokens refused)."""
        now = utcnow()
        async with self._unit_of_work() as uow:
            user = await uow.users.user(scanner_id)
            if user is None or user.role != "scanner" or user.works_for != seller_id:
                raise ScannerNotFound(f"no scanner {scanner_id}")
            await uow.users.delete(scanner_id, now)
            revoked = await uow.sessions.revoke_all_of(scanner_id, now)
        for session_id in revoked:
            await self._announce(session_id, now)

    async def _create(
        self,
        email: str,
        password_hash: str,
        role: Role,
        *,
        works_for: str | None = None,
        name: str | None = None,
    ) -> User | None:
        user = User(
            id=new_id(),
            email=email,
            role=role,
            plan="free",
            created_at=utcnow(),
            works_for=works_for,
        )
        try:
            async with self._unit_of_work() as uow:
                if await uow.users.account(email) is not None:
                    return None
                await uow.users.add(user, password_hash)
                if name is not None:
                    await uow.users.save_profile(user.id, Profile(name=name), user.created_at)
                # Door staff are no customers: nobody downstream (the welcome mail) wants them,
                # and the event's roles are those that may register.
                if role != "scanner":
                    uow.emit(
                        UserRegistered(user_id=user.id, email=email, role=role, plan=user.plan)
                    )
        except IntegrityError:  # registered concurrently
            return None
        return user

    async def user(self, user_id: str) -> User:
        async with self._read() as read:
            user = await read.users.user(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    async def profile(self, user_id: str) -> Profile:
        async with self._read() as read:
            if await read.users.user(user_id) is None:
                raise UserNotFound(f"no user {user_id}")
            return await read.users.profile(user_id)

    async def change_profile(self, user_id: str, profile: Profile) -> Profile:
        """Replace the user's profile (UserProfileChanged; nothing when it is unchanged)."""
        async with self._unit_of_work() as uow:
            if await uow.users.user(user_id) is None:
                raise UserNotFound(f"no user {user_id}")
            if await uow.users.profile(user_id) == profile:
                return profile
            await uow.users.save_profile(user_id, profile, utcnow())
            uow.emit(
                UserProfileChanged(
                    user_id=user_id,
                    name=profile.name,
                    phone=profile.phone,
                    address=profile.address,
                )
            )
        return profile

    async def change_plan(self, user_id: str, plan: Plan) -> User:
        """Put the user on `plan` (PlanChanged; nothing when it is the plan already). Access
        tokens carry the plan from the next one issued (login or refresh)."""
        async with self._unit_of_work() as uow:
            user = await uow.users.user(user_id)
            if user is None:
                raise UserNotFound(f"no user {user_id}")
            if user.plan == plan:
                return user
            await uow.users.change_plan(user_id, plan, utcnow())
            uow.emit(PlanChanged(user_id=user_id, plan=plan, previous_plan=user.plan))
        return dataclasses.replace(user, plan=plan)

    # -- sessions ------------------------------------------------------------------------

    async def login(self, email: str, password: str, client_ip: str) -> Tokens:
        """Tokens of a new session. Every attempt is recorded against the address and the
        client's IP before the password is checked, and kept if it fails; an attempt with
        too many others in the throttle's window is refused unchecked (`LoginThrottled`)."""
        email = normalise_email(email)
        account_subject, ip = f"account:{email}", f"ip:{client_ip}"
        now = utcnow()
        # Recorded and committed before counting: of concurrent attempts, the later ones count
        # the earlier, so no burst gets more than the limit checked.
        async with self._unit_of_work() as uow:
            attempt_ids = await uow.attempts.record([account_subject, ip], now)
        wait = await self._throttled(
            [
                (account_subject, attempt_ids[0], self._limits.per_account),
                (ip, attempt_ids[1], self._limits.per_ip),
            ],
            now,
        )
        if wait is not None:
            async with self._unit_of_work() as uow:
                await uow.attempts.forget(ids=attempt_ids)
            raise LoginThrottled(wait)
        async with self._read() as read:
            account = await read.users.account(email)
        known_hash = None if account is None else account.password_hash
        if not await self._passwords.check(known_hash, password):
            async with self._unit_of_work() as uow:
                await uow.attempts.forget_before(now - self._limits.window)
            raise InvalidCredentials("wrong e-mail address or password")
        assert account is not None
        user = account.user
        session_id = new_id()
        rehashed = None
        if self._passwords.needs_rehash(account.password_hash):
            rehashed = await self._passwords.hash(password)
        async with self._unit_of_work() as uow:
            await uow.attempts.forget(ids=attempt_ids[1:], subject=account_subject)
            if rehashed is not None:
                await uow.users.change_password_hash(user.id, rehashed)
            await uow.sessions.open(session_id, user.id, utcnow())
            refresh_token = await self._add_refresh_token(uow.sessions, session_id)
        return await self._tokens(user, session_id, refresh_token)

    async def _throttled(self, subjects: list[tuple[str, int, int]], now: datetime) -> int | None:
        since = now - self._limits.window
        waits = []
        async with self._read() as read:
            for subject, attempt_id, limit in subjects:
                earlier = await read.attempts.since(subject, since, excluding=attempt_id)
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
        async with self._unit_of_work() as uow:
            stored = await uow.sessions.refresh_token(digest)
            if stored is None:
                refused = "unknown refresh token"
            elif stored.session_revoked_at is not None:
                refused = "the refresh token's session was revoked (logged out, or reused)"
            elif stored.used_at is not None or not await uow.sessions.use_refresh_token(
                digest, now
            ):
                await uow.sessions.revoke(stored.session_id, now)
                reused_session = stored.session_id
                refused = "the refresh token was used before: its session is now revoked"
            elif stored.expires_at <= now:
                refused = "the refresh token has expired"
            elif (user := await uow.users.user(stored.user_id)) is None:
                refused = "the refresh token's account was deleted"
            else:
                new_token = await self._add_refresh_token(uow.sessions, stored.session_id)
                issued = (user, stored.session_id, new_token)
        if reused_session is not None:
            await self._announce(reused_session, now)
        if issued is None:
            raise InvalidRefreshToken(refused)
        return await self._tokens(*issued)

    async def logout(self, session_id: str) -> None:
        """Revoke the session: its refresh tokens and its access tokens are refused."""
        now = utcnow()
        async with self._unit_of_work() as uow:
            await uow.sessions.revoke(session_id, now)
        await self._announce(session_id, now)

    async def publish_revocations(self) -> bool:
        """Publish every session revoked recently enough that its access tokens could still be
        valid into the revocation list, and mark it complete (an in-process list starts
        empty, Redis loses it on a restart or a flush). False if the list lost entries while
        it was published: publish again."""

        async def read_record() -> list[tuple[str, float]]:
            now = utcnow()
            async with self._read() as read:
                revoked = await read.sessions.revoked_since(now - self._lifetimes.revocation)
            remaining = [
                (session_id, (revoked_at + self._lifetimes.revocation - now).total_seconds())
                for session_id, revoked_at in revoked
            ]
            return [(session_id, ttl) for session_id, ttl in remaining if ttl > 0]

        published = await self._revocations.publish(read_record)
        if published:
            self._unpublished = False
        return published

    async def keep_revocations_published(self) -> None:
        """Publish the revocations again when the list is not complete (its store restarted or
        was flushed) or a revocation could not be written to it; a step of identity's
        background loop. While the list cannot be reached there is nothing to do (its adapter
        says so, once)."""
        try:
            if self._unpublished or not await self._revocations.is_complete():
                await self.publish_revocations()
        except RevocationsUnavailable:
            pass

    async def _announce(self, session_id: str, revoked_at: datetime) -> None:
        remaining = revoked_at + self._lifetimes.revocation - utcnow()
        if remaining.total_seconds() <= 0:
            return
        try:
            await self._revocations.revoke(session_id, ttl=remaining.total_seconds())
        except RevocationsUnavailable:
            # The revocation is committed in the database, the record: the list gets it with
            # the next publish, once it can be written.
            self._unpublished = True

    async def _add_refresh_token(self, sessions: SessionsRepository, session_id: str) -> str:
        token = new_refresh_token()
        now = utcnow()
        await sessions.add_refresh_token(
            hash_refresh_token(token), session_id, now, now + self._lifetimes.refresh
        )
        return token

    async def _tokens(self, user: User, session_id: str, refresh_token: str) -> Tokens:
        access_token = issue_access_token(
            await self._current_key(),
            user_id=user.id,
            role=user.role,
            plan=user.plan,
            email=user.email,
            session_id=session_id,
            now=utcnow(),
            ttl=self._lifetimes.access,
            works_for=user.works_for,
        )
        return Tokens(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=int(self._lifetimes.access.total_seconds()),
        )
