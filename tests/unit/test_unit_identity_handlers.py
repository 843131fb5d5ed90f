"""Identity's handlers against in-memory twins of their repositories, and against the real ones
on SQLite (so that the twins cannot drift from what the handlers get in production)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from agora.auth import Plan, SigningKey
from agora.contracts.identity import PlanChanged, UserRegistered
from agora.messaging import Event
from agora.messaging.sql import Database, sqlite_url
from agora.services.identity import store
from agora.services.identity.domain import Lifetimes, ThrottleLimits, User
from agora.services.identity.handlers import (
    EmailTaken,
    IdentityHandlers,
    InvalidCredentials,
    InvalidRefreshToken,
    LoginThrottled,
    UserNotFound,
)
from agora.services.identity.passwords import Passwords
from agora.services.identity.repository import Account, IdentityRepositories, StoredRefreshToken
from agora.shared.revocations.in_process import InProcessRevocations

PASSWORD = "correct horse battery"
# Hashes that cost next to nothing: these tests are about the handlers' rules, not Argon2's.
PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
KEY = SigningKey.generate()


class InMemoryUsers:
    """`UsersRepository`'s twin."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    async def user(self, user_id: str) -> User | None:
        account = self.accounts.get(user_id)
        return None if account is None else account.user

    async def account(self, email: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.user.email == email), None)

    async def add(self, user: User, password_hash: str) -> None:
        assert await self.account(user.email) is None, "the address is unique"
        self.accounts[user.id] = Account(user, password_hash)

    async def change_plan(self, user_id: str, plan: Plan, at: dt.datetime) -> None:
        account = self.accounts[user_id]
        self.accounts[user_id] = Account(
            dataclasses.replace(account.user, plan=plan), account.password_hash
        )

    async def change_password_hash(self, user_id: str, password_hash: str) -> None:
        self.accounts[user_id] = Account(self.accounts[user_id].user, password_hash)


class InMemorySessions:
    """`SessionsRepository`'s twin."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[str, dt.datetime | None]] = {}  # id: user, revoked at
        self.tokens: dict[str, dict[str, Any]] = {}

    async def open(self, session_id: str, user_id: str, at: dt.datetime) -> None:
        self.sessions[session_id] = (user_id, None)

    async def revoke(self, session_id: str, at: dt.datetime) -> None:
        if session_id in self.sessions and self.sessions[session_id][1] is None:
            self.sessions[session_id] = (self.sessions[session_id][0], at)

    async def revoked_since(self, since: dt.datetime) -> list[tuple[str, dt.datetime]]:
        return [(s, at) for s, (_, at) in self.sessions.items() if at is not None and at > since]

    async def add_refresh_token(
        self, digest: str, session_id: str, at: dt.datetime, expires_at: dt.datetime
    ) -> None:
        self.tokens[digest] = {"session": session_id, "expires_at": expires_at, "used_at": None}

    async def refresh_token(self, digest: str) -> StoredRefreshToken | None:
        token = self.tokens.get(digest)
        if token is None:
            return None
        user_id, revoked_at = self.sessions[token["session"]]
        return StoredRefreshToken(
            session_id=token["session"],
            user_id=user_id,
            expires_at=token["expires_at"],
            used_at=token["used_at"],
            session_revoked_at=revoked_at,
        )

    async def use_refresh_token(self, digest: str, at: dt.datetime) -> bool:
        token = self.tokens.get(digest)
        if token is None or token["used_at"] is not None:
            return False
        token["used_at"] = at
        return True


class InMemoryAttempts:
    """`LoginAttemptsRepository`'s twin."""

    def __init__(self) -> None:
        self.attempts: dict[int, tuple[str, dt.datetime]] = {}
        self._last_id = 0

    async def record(self, subjects: Sequence[str], at: dt.datetime) -> list[int]:
        ids = []
        for subject in subjects:
            self._last_id += 1
            self.attempts[self._last_id] = (subject, at)
            ids.append(self._last_id)
        return ids

    async def since(self, subject: str, since: dt.datetime, *, excluding: int) -> list[dt.datetime]:
        return [
            at
            for attempt_id, (s, at) in self.attempts.items()
            if s == subject and at > since and attempt_id != excluding
        ]

    async def forget(self, *, ids: Sequence[int] = (), subject: str | None = None) -> None:
        self.attempts = {
            i: (s, at) for i, (s, at) in self.attempts.items() if i not in ids and s != subject
        }

    async def forget_before(self, before: dt.datetime) -> None:
        self.attempts = {i: (s, at) for i, (s, at) in self.attempts.items() if at > before}


class _Unit:
    """A unit of work over some repositories: what the handlers use of one."""

    def __init__(self, repositories: Any, emitted: list[Event]) -> None:
        self.users = repositories.users
        self.sessions = repositories.sessions
        self.attempts = repositories.attempts
        self._emitted = emitted
        self._pending: list[Event] = []

    def emit(self, event: Event) -> None:
        self._pending.append(event)

    def commit(self) -> None:
        self._emitted.extend(self._pending)


class Work(Protocol):
    """Either adapter: units of work and reads over its repositories, and what they hold."""

    emitted: list[Event]

    def unit_of_work(self) -> Any: ...

    def read(self) -> Any: ...

    async def count(self, table: str) -> int: ...


class MemoryWork:
    def __init__(self) -> None:
        self.repositories = IdentityRepositoriesTwin()
        self.emitted: list[Event] = []

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_Unit]:
        unit = _Unit(self.repositories, self.emitted)
        yield unit
        unit.commit()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        yield self.repositories

    async def count(self, table: str) -> int:
        held = {
            "users": self.repositories.users.accounts,
            "sessions": self.repositories.sessions.sessions,
            "login_attempts": self.repositories.attempts.attempts,
        }
        return len(held[table])


class IdentityRepositoriesTwin:
    def __init__(self) -> None:
        self.users = InMemoryUsers()
        self.sessions = InMemorySessions()
        self.attempts = InMemoryAttempts()


class SqliteWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.emitted: list[Event] = []

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_Unit]:
        async with self.db.write() as conn:
            unit = _Unit(IdentityRepositories(conn), self.emitted)
            yield unit
        unit.commit()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[IdentityRepositories]:
        async with self.db.read() as conn:
            yield IdentityRepositories(conn)

    async def count(self, table: str) -> int:
        async with self.db.read() as conn:
            counted = await conn.scalar(
                select(func.count()).select_from(store.metadata.tables[table])
            )
        return int(counted or 0)


@pytest.fixture(params=["in-memory", "sqlite"])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = Database(sqlite_url(tmp_path / "identity.db"), store.metadata)
    await db.create_tables()
    try:
        yield SqliteWork(db)
    finally:
        await db.dispose()


async def _current_key() -> SigningKey:
    return KEY


def handlers_of(
    work: Work,
    revocations: InProcessRevocations | None = None,
    *,
    lifetimes: Lifetimes | None = None,
    per_account: int = 5,
) -> IdentityHandlers:
    return IdentityHandlers(
        work.unit_of_work,
        work.read,
        PASSWORDS,
        _current_key,
        revocations or InProcessRevocations(),
        lifetimes=lifetimes or Lifetimes(),
        limits=ThrottleLimits(per_account=per_account, per_ip=100),
    )


def session_of(access_token: str) -> str:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["sid"])


def registrations(work: Work) -> list[tuple[str, str]]:
    return [(e.email, e.role) for e in work.emitted if isinstance(e, UserRegistered)]


# -- accounts ------------------------------------------------------------------------------


async def test_an_address_registers_once_whatever_its_case(work: Work) -> None:
    handlers = handlers_of(work)

    await handlers.register(" Ann@Example.test", PASSWORD, "buyer")
    await handlers.register("ann@example.test", "another password", "seller")

    assert await work.count("users") == 1
    assert registrations(work) == [("ann@example.test", "buyer")]


async def test_an_admin_cannot_take_an_address_that_has_an_account(work: Work) -> None:
    handlers = handlers_of(work)
    admin = await handlers.create_admin("root@example.test", PASSWORD)

    with pytest.raises(EmailTaken):
        await handlers.create_admin("ROOT@example.test", PASSWORD)

    assert (admin.role, admin.plan) == ("admin", "free")
    assert await handlers.user(admin.id) == admin
    assert registrations(work) == [("root@example.test", "admin")]


async def test_a_plan_change_is_announced_once_and_refused_for_an_unknown_user(
    work: Work,
) -> None:
    handlers = handlers_of(work)
    user = await handlers.create_admin("pat@example.test", PASSWORD)
    work.emitted.clear()

    changed = await handlers.change_plan(user.id, "premium")
    again = await handlers.change_plan(user.id, "premium")
    with pytest.raises(UserNotFound):
        await handlers.change_plan("no-such-user", "premium")

    assert changed.plan == again.plan == (await handlers.user(user.id)).plan == "premium"
    assert work.emitted == [PlanChanged(user_id=user.id, plan="premium", previous_plan="free")]


# -- sessions ------------------------------------------------------------------------------


async def test_a_wrong_password_and_an_unknown_address_are_one_error(work: Work) -> None:
    handlers = handlers_of(work)
    await handlers.register("ann@example.test", PASSWORD, "buyer")

    with pytest.raises(InvalidCredentials):
        await handlers.login("ann@example.test", "wrong password", "10.0.0.1")
    with pytest.raises(InvalidCredentials):
        await handlers.login("nobody@example.test", PASSWORD, "10.0.0.1")

    assert await work.count("sessions") == 0
    assert await work.count("login_attempts") == 4  # both failures, by address and by IP


async def test_failed_logins_throttle_the_address_even_for_the_right_password(
    work: Work,
) -> None:
    handlers = handlers_of(work, per_account=2)
    await handlers.register("ann@example.test", PASSWORD, "buyer")
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await handlers.login("ann@example.test", "wrong password", "10.0.0.1")

    with pytest.raises(LoginThrottled) as throttled:
        await handlers.login("ann@example.test", PASSWORD, "10.0.0.2")

    assert 0 < throttled.value.retry_after <= 15 * 60
    assert await work.count("sessions") == 0
    assert await work.count("login_attempts") == 4  # the refused attempt is not kept


async def test_a_successful_login_forgets_the_address_failures(work: Work) -> None:
    handlers = handlers_of(work, per_account=2)
    await handlers.register("ann@example.test", PASSWORD, "buyer")
    with pytest.raises(InvalidCredentials):
        await handlers.login("ann@example.test", "wrong password", "10.0.0.1")
    await handlers.login("ann@example.test", PASSWORD, "10.0.0.1")
    with pytest.raises(InvalidCredentials):
        await handlers.login("ann@example.test", "wrong password", "10.0.0.1")

    tokens = await handlers.login("ann@example.test", PASSWORD, "10.0.0.1")

    assert tokens.expires_in == 15 * 60
    assert await work.count("sessions") == 2


async def test_a_refresh_token_is_replaced_and_its_reuse_revokes_the_session(
    work: Work,
) -> None:
    revocations = InProcessRevocations()
    handlers = handlers_of(work, revocations)
    await handlers.register("ann@example.test", PASSWORD, "buyer")
    first = await handlers.login("ann@example.test", PASSWORD, "10.0.0.1")
    session = session_of(first.access_token)

    second = await handlers.refresh(first.refresh_token)
    assert session_of(second.access_token) == session
    assert not await revocations.is_revoked(session)

    with pytest.raises(InvalidRefreshToken, match="used before"):
        await handlers.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken, match="revoked"):
        await handlers.refresh(second.refresh_token)
    with pytest.raises(InvalidRefreshToken, match="unknown"):
        await handlers.refresh("not a token we issued")

    assert await revocations.is_revoked(session)


async def test_an_expired_refresh_token_is_refused(work: Work) -> None:
    handlers = handlers_of(work, lifetimes=Lifetimes(refresh=timedelta(0)))
    await handlers.register("ann@example.test", PASSWORD, "buyer")
    tokens = await handlers.login("ann@example.test", PASSWORD, "10.0.0.1")

    with pytest.raises(InvalidRefreshToken, match="expired"):
        await handlers.refresh(tokens.refresh_token)


async def test_a_logout_revokes_the_session_and_a_restart_announces_it_again(
    work: Work,
) -> None:
    handlers = handlers_of(work)
    await handlers.register("ann@example.test", PASSWORD, "buyer")
    tokens = await handlers.login("ann@example.test", PASSWORD, "10.0.0.1")
    session = session_of(tokens.access_token)

    await handlers.logout(session)

    with pytest.raises(InvalidRefreshToken, match="revoked"):
        await handlers.refresh(tokens.refresh_token)
    restarted = InProcessRevocations()  # an in-process list starts empty
    assert await handlers_of(work, restarted).publish_revocations()
    assert await restarted.is_revoked(session)


async def test_the_plan_shows_in_the_next_access_token(work: Work) -> None:
    handlers = handlers_of(work)
    await handlers.register("ann@example.test", PASSWORD, "buyer")
    tokens = await handlers.login("ann@example.test", PASSWORD, "10.0.0.1")
    (user_id,) = [e.user_id for e in work.emitted if isinstance(e, UserRegistered)]

    await handlers.change_plan(user_id, "premium")
    refreshed = await handlers.refresh(tokens.refresh_token)

    def plan_of(token: str) -> str:
        return str(jwt.decode(token, options={"verify_signature": False})["plan"])

    assert (plan_of(tokens.access_token), plan_of(refreshed.access_token)) == ("free", "premium")
