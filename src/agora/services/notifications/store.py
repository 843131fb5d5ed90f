"""Notifications' tables: every message, queued until it is handed to the mail server, and the
addresses of registered users."""

from __future__ import annotations

from sqlalchemy import Column, Index, MetaData, String, Table, Text

from agora.messaging import UtcDateTime

metadata = MetaData()

QUEUED, SENT, DELIVERED_LOCALLY = "QUEUED", "SENT", "LOCAL"

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("customer_id", String, nullable=False, index=True),
    Column("order_id", String(36), nullable=True, index=True),
    Column("kind", String(32), nullable=False),
    Column("recipient", String, nullable=False),
    Column("subject", String, nullable=False),
    Column("body", Text, nullable=False),
    # A ticket's email carries its QR code, drawn from these when it is sent (null: no QR).
    Column("ticket_id", String(36), nullable=True),
    Column("ticket_code", Text, nullable=True),
    Column("status", String(8), nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
)
Index("ix_messages_queued", messages.c.status, messages.c.created_at)

# A customer id that is a user's id is mailed at the user's address (from UserRegistered).
user_addresses = Table(
    "user_addresses",
    metadata,
    Column("user_id", String(36), primary_key=True),
    Column("email", String, nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
)
