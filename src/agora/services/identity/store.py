"""Identity's tables: users and their password hashes, signing keys, sessions with their refresh
tokens, and recent login attempts (the throttle's memory, shared by every replica)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UtcDateTime
from agora.services.identity.domain import User

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String, nullable=False),
    Column("role", String(16), nullable=False),
    Column("plan", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("retired_at", UtcDateTime, nullable=True),
)

# A session is a login: its id is the access tokens' `sid` and its refresh tokens' family.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True, index=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", String(36), ForeignKey("sessions.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)

# One row per login attempt and subject ("account:<email>", "ip:<address>"), written before the
# password is checked and kept only if it fails.
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("subject", String(300), nullable=False),
    Column("attempted_at", UtcDateTime, nullable=False),
)
Index("ix_login_attempts_subject", login_attempts.c.subject, login_attempts.c.attempted_at)
Index("ix_login_attempts_attempted_at", login_attempts.c.attempted_at)


def user_of(row: Row[Any]) -> User:
    return User(id=row.id, email=row.email, role=row.role, plan=row.plan, created_at=row.created_at)


async def load_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else user_of(row)


async def find_by_email(conn: AsyncConnection, email: str) -> Row[Any] | None:
    return (await conn.execute(select(users).where(users.c.email == email))).first()


async def record_attempts(
    conn: AsyncConnection, subjects: Sequence[str], at: datetime
) -> list[int]:
    """Record an attempt against each of `subjects`; the rows' ids, in order."""
    ids = []
    for subject in subjects:
        result = await conn.execute(
            insert(login_attempts)
            .values(subject=subject, attempted_at=at)
            .returning(login_attempts.c.id)
        )
        ids.append(int(result.scalar_one()))
    return ids


async def attempts_since(
    conn: AsyncConnection, subject: str, since: datetime, *, excluding: int
) -> list[datetime]:
    rows = await conn.execute(
        select(login_attempts.c.attempted_at).where(
            login_attempts.c.subject == subject,
            login_attempts.c.attempted_at > since,
            login_attempts.c.id != excluding,
        )
    )
    return [row.attempted_at for row in rows]


async def forget_attempts(
    conn: AsyncConnection, *, ids: Sequence[int] = (), subject: str | None = None
) -> None:
    if ids:
        await conn.execute(delete(login_attempts).where(login_attempts.c.id.in_(ids)))
    if subject is not None:
        await conn.execute(delete(login_attempts).where(login_attempts.c.subject == subject))


async def forget_attempts_before(conn: AsyncConnection, before: datetime) -> None:
    await conn.execute(delete(login_attempts).where(login_attempts.c.attempted_at <= before))
