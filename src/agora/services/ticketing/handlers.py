"""Ticketing's use cases: organizers describe venues, schedule events with sessions and open
or close their sales; everyone reads them. Plus the read model of catalog's stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping

from agora.auth import Principal, may_manage
from agora.contracts import catalog, identity, orders
from agora.contracts.seating import SeatingPlan
from agora.contracts.ticketing import (
    EventScheduled,
    PriceCategory,
    SalesClosed,
    SalesOpened,
    ScheduledSession,
)
from agora.messaging import Database, Event, Handler, new_id, utcnow
from agora.services.ticketing import store
from agora.services.ticketing.domain import (
    EventNotFound,
    EventPlan,
    InvalidEvent,
    NotYourStore,
    SessionNotFound,
    StoreNotFound,
    VenueNotFound,
    check_event,
)
from agora.services.ticketing.repository import TicketingUnitOfWork
from agora.services.ticketing.store import Event as TicketedEvent
from agora.services.ticketing.store import Session, Venue
from agora.services.ticketing.tickets import cancelled, on_order_confirmed, on_profile_changed

__all__ = [
    "HANDLERS",
    "cancel_session",
    "close_sales",
    "create_event",
    "create_venue",
    "list_events",
    "open_sales",
    "read_event",
    "read_venue",
]

Clock = Callable[[], dt.datetime]


# -- other services' events -------------------------------------------------------------------


async def on_store_opened(event: catalog.StoreOpened, uow: TicketingUnitOfWork) -> None:
    await uow.ticketing.add_store(event.store_id, event.seller_id, event.name)


HANDLERS: Mapping[type[Event], Handler[TicketingUnitOfWork]] = {
    catalog.StoreOpened: on_store_opened,
    orders.OrderConfirmed: on_order_confirmed,
    identity.UserProfileChanged: on_profile_changed,
}


# -- venues -----------------------------------------------------------------------------------


async def _managed_store(uow: TicketingUnitOfWork, caller: Principal, store_id: str) -> str | None:
    """The store's seller, if `caller` may manage the store."""
    known, seller_id = await uow.ticketing.store_owner(store_id)
    if not known:
        raise StoreNotFound(store_id)
    if not may_manage(caller, seller_id):
        raise NotYourStore(f"store {store_id} belongs to another seller")
    return seller_id


async def create_venue(
    uow: TicketingUnitOfWork,
    caller: Principal,
    store_id: str,
    name: str,
    plan: SeatingPlan,
    clock: Clock = utcnow,
) -> str:
    seller_id = await _managed_store(uow, caller, store_id)
    venue_id = new_id()
    await uow.ticketing.add_venue(
        Venue(
            id=venue_id,
            store_id=store_id,
            seller_id=seller_id,
            name=name,
            plan_json=plan.model_dump_json(),
            seats=plan.seat_count,
            capacity=plan.capacity,
            created_at=clock(),
        )
    )
    return venue_id


async def read_venue(db: Database, venue_id: str) -> Venue:
    async with db.read() as conn:
        venue = await store.venue_by_id(conn, venue_id)
    if venue is None:
        raise VenueNotFound(venue_id)
    return venue


# -- events and their sessions ----------------------------------------------------------------


async def create_event(
    uow: TicketingUnitOfWork,
    caller: Principal,
    store_id: str,
    asked: EventPlan,
    clock: Clock = utcnow,
) -> str:
    """Schedule the event in one of the store's venues; its sessions' sales stay closed."""
    seller_id = await _managed_store(uow, caller, store_id)
    venue = await uow.ticketing.venue(asked.venue_id)
    if venue is None or venue.store_id != store_id:
        raise InvalidEvent(f"store {store_id} has no venue {asked.venue_id}")
    plan = SeatingPlan.model_validate_json(venue.plan_json)
    now = clock()
    check_event(asked, plan, now)
    event_id = new_id()
    event = TicketedEvent(
        id=event_id,
        store_id=store_id,
        seller_id=seller_id,
        venue_id=venue.id,
        title=asked.title,
        description=asked.description,
        currency=asked.currency,
        hold_seconds=asked.hold_seconds,
        max_per_order=asked.max_per_order,
        max_per_buyer=asked.max_per_buyer,
        cancel_until_hours=asked.cancel_until_hours,
        waitlist_offer_seconds=asked.waitlist_offer_seconds,
        created_at=now,
        categories=tuple(asked.prices.items()),
        sessions=tuple(
            Session(id=new_id(), event_id=event_id, starts_at=start, opens_at=None, closes_at=None)
            for start in sorted(asked.starts)
        ),
    )
    await uow.ticketing.add_event(event)
    uow.emit(
        EventScheduled(
            event_id=event.id,
            store_id=store_id,
            seller_id=seller_id,
            title=event.title,
            currency=event.currency,
            categories=tuple(
                PriceCategory(name=name, price=price) for name, price in event.categories
            ),
            sessions=tuple(
                ScheduledSession(session_id=s.id, starts_at=s.starts_at) for s in event.sessions
            ),
            venue_id=venue.id,
            plan=plan,
            hold_seconds=event.hold_seconds,
            max_per_order=event.max_per_order,
            max_per_buyer=event.max_per_buyer,
            cancel_until_hours=event.cancel_until_hours,
            waitlist_offer_seconds=event.waitlist_offer_seconds,
        )
    )
    return event.id


async def read_event(db: Database, event_id: str) -> TicketedEvent:
    async with db.read() as conn:
        event = await store.event_by_id(conn, event_id)
    if event is None:
        raise EventNotFound(event_id)
    return event


async def list_events(
    db: Database,
    *,
    query: str | None,
    store_id: str | None,
    upcoming: bool,
    page: int,
    page_size: int,
    clock: Clock = utcnow,
) -> tuple[list[TicketedEvent], int]:
    async with db.read() as conn:
        return await store.events_page(
            conn,
            query=query,
            store_id=store_id,
            upcoming_after=clock() if upcoming else None,
            page=page,
            page_size=page_size,
        )


async def _managed_session(
    uow: TicketingUnitOfWork, caller: Principal, session_id: str
) -> tuple[TicketedEvent, Session]:
    session = await uow.ticketing.session(session_id)
    event = None if session is None else await uow.ticketing.event(session.event_id)
    if session is None or event is None:
        raise SessionNotFound(session_id)
    if not may_manage(caller, event.seller_id):
        raise NotYourStore(f"session {session_id} is another seller's")
    return event, session


async def open_sales(
    uow: TicketingUnitOfWork,
    caller: Principal,
    session_id: str,
    at: dt.datetime | None,
    clock: Clock = utcnow,
) -> Session:
    """Sales of the session open `at` (now if None) and last until it starts."""
    event, session = await _managed_session(uow, caller, session_id)
    if session.cancelled_at is not None:
        raise InvalidEvent(f"session {session_id} was cancelled")
    opens_at = at or clock()
    if opens_at >= session.starts_at:
        raise InvalidEvent(
            f"sales cannot open at or after the session's start ({session.starts_at.isoformat()})"
        )
    await uow.ticketing.set_sales(session_id, opens_at, None)
    uow.emit(SalesOpened(event_id=event.id, session_id=session_id, opens_at=opens_at))
    return Session(session.id, event.id, session.starts_at, opens_at, None)


async def close_sales(
    uow: TicketingUnitOfWork,
    caller: Principal,
    session_id: str,
    at: dt.datetime | None,
    clock: Clock = utcnow,
) -> Session:
    """Sales of the session close `at` (now if None); holds already taken stay."""
    event, session = await _managed_session(uow, caller, session_id)
    closes_at = at or clock()
    await uow.ticketing.set_sales(session_id, session.opens_at, closes_at)
    uow.emit(SalesClosed(event_id=event.id, session_id=session_id, closes_at=closes_at))
    return Session(session.id, event.id, session.starts_at, session.opens_at, closes_at)


async def cancel_session(
    uow: TicketingUnitOfWork, caller: Principal, session_id: str, clock: Clock = utcnow
) -> tuple[Session, int]:
    """The organizer calls the session off: sales close, every valid ticket is cancelled (and
    so refunded and mailed), and tickets of orders paid later are issued void. Returns the
    session and how many tickets were cancelled."""
    event, session = await _managed_session(uow, caller, session_id)
    now = clock()
    if session.cancelled_at is None:
        await uow.ticketing.cancel_session(session_id, now)
        uow.emit(SalesClosed(event_id=event.id, session_id=session_id, closes_at=now))
    voided = 0
    for ticket in await uow.ticketing.valid_tickets(session_id):
        if await uow.ticketing.cancel_ticket(ticket.id):
            uow.emit(cancelled(ticket, "the session was cancelled"))
            voided += 1
    at = session.cancelled_at or now
    return dataclasses.replace(session, closes_at=at, cancelled_at=at), voided
