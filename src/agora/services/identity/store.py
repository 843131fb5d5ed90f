"""Identity's tables: users (a scanner with the seller it works for) and their password hashes,
signing keys, sessions with their refresh tokens, and recent login attempts (the throttle's
memory, shared by every replica)."""

from __future__ import annotations

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
)

from agora.messaging import UtcDateTime

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
    # A scanner's seller; None for every other role.
    Column(
        "works_for",
        String(36),
        ForeignKey("users.id", name="fk_users_works_for_users"),
        nullable=True,
        index=True,
    ),
    # A deleted account keeps its row, so that its sessions stay on record as revoked.
    Column("deleted_at", UtcDateTime, nullable=True),
)

# What a user tells about themselves, for tickets and deliveries; every field optional.
profiles = Table(
    "profiles",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id"), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("phone", String(40), nullable=True),
    Column("address", String(500), nullable=True),
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
