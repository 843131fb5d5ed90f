"""Ticketing's invariants over its own tables, read-only (`agora check`): no seat has two valid
tickets."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.audit import Verdict, verdict
from agora.services.ticketing.store import VALID, tickets

__all__ = ["invariants"]

SCOPE = "ticketing"


async def invariants(conn: AsyncConnection) -> list[Verdict]:
    per_seat = await conn.execute(
        select(tickets.c.session_id, tickets.c.seat_id, func.count())
        .where(tickets.c.state == VALID, tickets.c.seat_id.is_not(None))
        .group_by(tickets.c.session_id, tickets.c.seat_id)
    )
    counts = {f"{session}/{seat}": int(count) for session, seat, count in per_seat}
    return [
        verdict(
            "one ticket per seat",
            SCOPE,
            checked=len(counts),
            noun="seats ticketed",
            offenders=[seat for seat, count in counts.items() if count > 1],
            why="more than once (valid tickets)",
        )
    ]
