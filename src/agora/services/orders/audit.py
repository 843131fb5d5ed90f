"""Orders' invariants over its own tables, read-only (`agora check`): every order final, or
inside its hold window; and the facts the checks across services need (final orders, their
totals)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.audit import Verdict, verdict
from agora.services.orders.domain import FINAL, OrderStatus
from agora.services.orders.store import orders

__all__ = ["FinalOrder", "final_orders", "invariants"]

SCOPE = "orders"


async def invariants(conn: AsyncConnection, now: dt.datetime, grace: dt.timedelta) -> list[Verdict]:
    """An order not final yet is overdue `grace` after its hold expired, or (not reserved yet,
    so no hold) after it was placed."""
    finals = [status.value for status in FINAL]
    total = int(await conn.scalar(select(func.count()).select_from(orders)) or 0)
    cutoff = now - grace
    past_hold = or_(
        orders.c.hold_expires_at < cutoff,
        orders.c.hold_expires_at.is_(None) & (orders.c.created_at < cutoff),
    )
    overdue = await conn.scalars(select(orders.c.id).where(~orders.c.status.in_(finals), past_hold))
    return [
        verdict(
            "orders final or on hold",
            SCOPE,
            checked=total,
            noun="orders",
            offenders=list(overdue),
            why=f"not final {grace.total_seconds():g} s past their hold",
        )
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class FinalOrder:
    id: str
    status: OrderStatus
    total: Decimal
    currency: str


async def final_orders(conn: AsyncConnection, ended_before: dt.datetime) -> list[FinalOrder]:
    """The orders that became final before `ended_before` (the other services have had the
    time since to follow)."""
    finals = [status.value for status in FINAL]
    rows = await conn.execute(
        select(orders.c.id, orders.c.status, orders.c.total, orders.c.currency).where(
            orders.c.status.in_(finals), orders.c.updated_at < ended_before
        )
    )
    return [FinalOrder(row.id, OrderStatus(row.status), row.total, row.currency) for row in rows]
