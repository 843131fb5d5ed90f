"""Ticketing's handlers for tickets: issued for every paid place when an order is confirmed,
read by their buyers, checked in once at the door (the venues', events' and sales' handlers are
in `handlers`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from agora.auth import Principal, may_read, may_scan
from agora.auth.keys import SigningKey, key_set
from agora.contracts.identity import UserProfileChanged
from agora.contracts.orders import OrderConfirmed
from agora.contracts.ticketing import TicketCancelled, TicketCheckedIn, TicketIssued
from agora.messaging import Database, new_id, utcnow
from agora.problems import NotFound, ProblemError
from agora.services.ticketing import store
from agora.services.ticketing.codes import InvalidCode, TicketClaims, issue_code, verify_code
from agora.services.ticketing.domain import NotYourStore, SessionNotFound
from agora.services.ticketing.repository import TicketingUnitOfWork
from agora.services.ticketing.store import CANCELLED, VALID, Ticket

__all__ = [
    "AlreadyCheckedIn",
    "InvalidTicketCode",
    "NotCancellable",
    "TicketNotFound",
    "cancel_ticket",
    "cancelled",
    "check_in",
    "checkins_of",
    "ensure_signing_key",
    "on_order_confirmed",
    "on_profile_changed",
    "read_ticket",
    "signing_key_set",
    "tickets_of",
]

Clock = Callable[[], dt.datetime]


class TicketNotFound(NotFound):
    def __init__(self, ticket_id: str) -> None:
        super().__init__("ticket-not-found", "Ticket not found", f"no ticket {ticket_id}")


class InvalidTicketCode(ProblemError):
    """A code we did not sign, altered, or of another session than the one at the door."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-ticket-code", "Not a valid ticket", detail)


class AlreadyCheckedIn(ProblemError):
    def __init__(self, ticket: Ticket) -> None:
        assert ticket.checked_in_at is not None
        # as the API writes instants everywhere else (pydantic's JSON: UTC as "Z")
        at = ticket.checked_in_at.isoformat().replace("+00:00", "Z")
        super().__init__(
            409,
            "already-checked-in",
            "Ticket already used",
            f"ticket {ticket.id} was checked in at {at}"
            + (f" at gate {ticket.checked_in_gate}" if ticket.checked_in_gate else ""),
            ticket_id=ticket.id,
            checked_in_at=at,
            gate=ticket.checked_in_gate,
        )


class NotCancellable(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(409, "ticket-not-cancellable", "The ticket cannot be cancelled", detail)


def cancelled(ticket: Ticket, reason: str) -> TicketCancelled:
    return TicketCancelled(
        ticket_id=ticket.id,
        order_id=ticket.order_id,
        customer_id=ticket.customer_id,
        session_id=ticket.session_id,
        category=ticket.category,
        seat_id=ticket.seat_id,
        area_id=ticket.area_id,
        price=ticket.price,
        currency=ticket.currency,
        reason=reason,
    )


async def ensure_signing_key(uow: TicketingUnitOfWork, clock: Clock = utcnow) -> None:
    """A key to sign ticket codes with, made at the first start (replicas racing both insert;
    the second's is ignored: the key ids differ, and either key verifies its own codes)."""
    if not await uow.ticketing.signing_keys():
        await uow.ticketing.add_signing_key(SigningKey.generate(), clock())


async def on_profile_changed(event: UserProfileChanged, uow: TicketingUnitOfWork) -> None:
    """The name tickets issued from now on carry (tickets issued before keep theirs)."""
    await uow.ticketing.set_attendee(event.user_id, event.name)


async def on_order_confirmed(event: OrderConfirmed, uow: TicketingUnitOfWork) -> None:
    """One ticket per paid place, each with a signed code."""
    if not event.places:
        return
    keys = await uow.ticketing.signing_keys()
    if not keys:  # the first start's key is made before consuming; a replica may race it
        await ensure_signing_key(uow)
        keys = await uow.ticketing.signing_keys()
    key = keys[-1]
    attendee = await uow.ticketing.attendee(event.customer_id)
    sessions = {p.session_id: await uow.ticketing.session(p.session_id) for p in event.places}
    now = utcnow()
    for place_no, place in enumerate(event.places):
        session = sessions[place.session_id]
        if session is None:
            raise SessionNotFound(place.session_id)  # ticketing made it: never happens
        ticket_id = new_id()
        code = issue_code(
            key, TicketClaims(ticket_id, place.session_id, place.seat_id, place.area_id), now
        )
        ticket = Ticket(
            id=ticket_id,
            order_id=event.order_id,
            customer_id=event.customer_id,
            event_id=session.event_id,
            session_id=place.session_id,
            category=place.category,
            seat_id=place.seat_id,
            area_id=place.area_id,
            price=place.price,
            currency=event.currency,
            attendee=attendee,
            code=code,
            # paid after its session was cancelled: issued void, and so refunded
            state=VALID if session.cancelled_at is None else CANCELLED,
            issued_at=now,
            checked_in_at=None,
            checked_in_gate=None,
        )
        if await uow.ticketing.add_ticket(ticket, place_no):
            uow.emit(
                TicketIssued(
                    ticket_id=ticket_id,
                    order_id=event.order_id,
                    customer_id=event.customer_id,
                    event_id=session.event_id,
                    session_id=place.session_id,
                    category=place.category,
                    seat_id=place.seat_id,
                    area_id=place.area_id,
                    attendee=attendee,
                    code=code,
                )
            )
            if ticket.state == CANCELLED:
                uow.emit(cancelled(ticket, "the session was cancelled"))


async def read_ticket(db: Database, caller: Principal, ticket_id: str) -> Ticket:
    """The ticket, for its buyer, the event's seller and admins."""
    async with db.read() as conn:
        ticket = await store.ticket_by_id(conn, ticket_id)
        event = None if ticket is None else await store.event_by_id(conn, ticket.event_id)
    seller = None if event is None else event.seller_id
    if ticket is None or not may_read(caller, ticket.customer_id, seller):
        raise TicketNotFound(ticket_id)
    return ticket


async def tickets_of(
    db: Database, caller: Principal, page: int, page_size: int
) -> tuple[list[Ticket], int]:
    async with db.read() as conn:
        return await store.tickets_of(conn, caller.user_id, page, page_size)


async def signing_key_set(db: Database) -> dict[str, object]:
    """The public keys of ticket codes, as a JSON Web Key Set."""
    async with db.read() as conn:
        keys = await store.signing_keys(conn)
    return key_set(keys)


async def check_in(
    uow: TicketingUnitOfWork,
    caller: Principal,
    code: str,
    session_id: str,
    gate: str | None,
    clock: Clock = utcnow,
) -> Ticket:
    """Admit the code's ticket at the door of `session_id`, once: by the event's seller, an
    admin, or a scanner working for the seller. A code we did not sign, or of another session,
    is refused; a second scan answers when (and at which gate) the ticket was used."""
    session = await uow.ticketing.session(session_id)
    event = None if session is None else await uow.ticketing.event(session.event_id)
    if session is None or event is None:
        raise SessionNotFound(session_id)
    if not may_scan(caller, event.seller_id):
        raise NotYourStore(f"session {session_id} is another seller's")
    keys = {key.kid: key for key in await uow.ticketing.signing_keys()}
    try:
        claims = verify_code(code, keys)
    except InvalidCode as error:
        raise InvalidTicketCode(str(error)) from None
    if claims.session_id != session_id:
        raise InvalidTicketCode(f"the ticket is for another session ({claims.session_id})")
    ticket = await uow.ticketing.ticket(claims.ticket_id)
    if ticket is None or ticket.state != VALID:
        raise InvalidTicketCode(f"ticket {claims.ticket_id} is not valid")
    now = clock()
    if not await uow.ticketing.check_in(ticket.id, now, gate):
        used = await uow.ticketing.ticket(ticket.id)
        assert used is not None
        raise AlreadyCheckedIn(used)
    uow.emit(
        TicketCheckedIn(ticket_id=ticket.id, session_id=session_id, checked_in_at=now, gate=gate)
    )
    return dataclasses.replace(ticket, checked_in_at=now, checked_in_gate=gate)


async def checkins_of(
    db: Database, caller: Principal, session_id: str
) -> tuple[int, int, list[Ticket]]:
    """(valid tickets, checked in, the tickets checked in) of the session, for those who may
    check its tickets in."""
    async with db.read() as conn:
        session = await store.session_by_id(conn, session_id)
        event = None if session is None else await store.event_by_id(conn, session.event_id)
        if session is None or event is None or not may_scan(caller, event.seller_id):
            raise SessionNotFound(session_id)
        issued, admitted = await store.checkin_counts(conn, session_id)
        return issued, admitted, await store.checked_in(conn, session_id)


async def cancel_ticket(
    uow: TicketingUnitOfWork, caller: Principal, ticket_id: str, clock: Clock = utcnow
) -> Ticket:
    """The buyer (or an admin) gives a ticket back before the organizer's deadline (the
    event's `cancel_until_hours` before its session starts): refunded, its place on sale again."""
    ticket = await uow.ticketing.ticket(ticket_id)
    if ticket is None or not may_read(caller, ticket.customer_id):
        raise TicketNotFound(ticket_id)
    session = await uow.ticketing.session(ticket.session_id)
    event = await uow.ticketing.event(ticket.event_id)
    assert session is not None
    assert event is not None
    if ticket.state != VALID:
        raise NotCancellable(f"ticket {ticket_id} is cancelled already")
    if ticket.checked_in_at is not None:
        raise NotCancellable(f"ticket {ticket_id} was used")
    deadline = session.starts_at - dt.timedelta(hours=event.cancel_until_hours)
    if clock() >= deadline:
        raise NotCancellable(
            f"tickets of this session can be cancelled until {deadline.isoformat()}"
        )
    if not await uow.ticketing.cancel_ticket(ticket_id):
        raise NotCancellable(f"ticket {ticket_id} was used or cancelled meanwhile")
    uow.emit(cancelled(ticket, "cancelled by the buyer"))
    return dataclasses.replace(ticket, state=CANCELLED)
