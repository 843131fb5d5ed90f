"""Inventory's reactions: stock for listed products, holds for placed orders, and their end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from agora.auth import Principal, may_read
from agora.contracts import catalog, orders, ticketing
from agora.contracts.inventory import (
    AvailabilityChanged,
    HeldPlace,
    PlacesAvailable,
    ReservedLine,
    StockRejected,
    StockReleased,
    StockReserved,
)
from agora.messaging import Database, Event, Handler, utcnow
from agora.services.inventory.domain import (
    PlacesUnavailable,
    ProductNotFound,
    SeatMap,
    SessionNotFound,
    StockLevel,
)
from agora.services.inventory.locking import LOCK_TIMEOUT, Shortage
from agora.services.inventory.offers import WaitingLists
from agora.services.inventory.repository import InventoryUnitOfWork
from agora.services.inventory.store import RELEASED, SOLD, seat_map, stock_level


class InventoryHandlers:
    """The handler table, bound to the hold time the service was configured with. Handlers
    work through `uow.stock` (the repository) and emit; they never write SQL themselves."""

    def __init__(
        self,
        hold_time: dt.timedelta,
        *,
        lock_timeout: float = LOCK_TIMEOUT,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.hold_time = hold_time
        self.lock_timeout = lock_timeout
        self._clock = clock
        self.waitlists = WaitingLists(clock, lock_timeout)

    @property
    def table(self) -> Mapping[type[Event], Handler[InventoryUnitOfWork]]:
        return {
            catalog.ProductListed: self.on_product_listed,
            ticketing.EventScheduled: self.on_event_scheduled,
            ticketing.SalesOpened: self.on_sales_opened,
            ticketing.SalesClosed: self.on_sales_closed,
            ticketing.TicketCancelled: self.on_ticket_cancelled,
            orders.OrderPlaced: self.on_order_placed,
            orders.OrderConfirmed: self.on_order_confirmed,
            orders.OrderCancelled: self.on_order_ended,
            orders.OrderExpired: self.on_order_ended,
        }

    async def lock_batch(self, events: Sequence[Event], uow: InventoryUnitOfWork) -> None:
        """Take the stock rows the batch will touch, all at once and in order (see locking)."""
        products = {
            line.product_id
            for event in events
            if isinstance(event, orders.OrderPlaced)
            for line in event.lines
        }
        ending = [
            event.order_id
            for event in events
            if isinstance(
                event, orders.OrderConfirmed | orders.OrderCancelled | orders.OrderExpired
            )
        ]
        await uow.stock.lock(products, ending, timeout=self.lock_timeout)
        sessions = {
            line.session_id
            for event in events
            if isinstance(event, orders.OrderPlaced)
            for line in event.tickets
        }
        sessions.update(
            event.session_id
            for event in events
            if isinstance(event, ticketing.TicketCancelled | ticketing.SalesOpened)
        )
        await uow.places.lock(sessions, ending, timeout=self.lock_timeout)

    async def on_product_listed(
        self, event: catalog.ProductListed, uow: InventoryUnitOfWork
    ) -> None:
        if await uow.stock.add(event.product_id, event.seller_id, event.initial_stock):
            uow.emit(
                AvailabilityChanged(product_id=event.product_id, available=event.initial_stock)
            )

    async def on_event_scheduled(
        self, event: ticketing.EventScheduled, uow: InventoryUnitOfWork
    ) -> None:
        await uow.places.add_event(event)

    async def on_sales_opened(self, event: ticketing.SalesOpened, uow: InventoryUnitOfWork) -> None:
        opened = await uow.places.open_sales(event.session_id, event.opens_at)
        # Sales closed and opened again: whoever still waits is first in line.
        if opened and await self.waitlists.serve(uow, event.session_id):
            await self._announce(uow, event.session_id)

    async def on_sales_closed(self, event: ticketing.SalesClosed, uow: InventoryUnitOfWork) -> None:
        await uow.places.close_sales(event.session_id, event.closes_at)

    async def on_ticket_cancelled(
        self, event: ticketing.TicketCancelled, uow: InventoryUnitOfWork
    ) -> None:
        """The ticket's place goes back on sale."""
        if await uow.places.give_back(
            event.order_id, event.session_id, event.seat_id, event.area_id
        ):
            await self._places_came_back(uow, event.session_id)

    async def pass_on_lapsed_offers(self, uow: InventoryUnitOfWork) -> bool:
        """Waiting-list offers that ran out pass on (the hold sweeper's second duty); True if
        any did."""
        sessions = await self.waitlists.pass_on_lapsed(uow)
        for session_id in sessions:
            await self._announce(uow, session_id)
        return bool(sessions)

    async def _places_came_back(self, uow: InventoryUnitOfWork, session_id: str) -> None:
        """The waiting list has the first pick of places back on sale; what is left is
        announced."""
        await self.waitlists.serve(uow, session_id)
        await self._announce(uow, session_id)

    async def _announce(
        self,
        uow: InventoryUnitOfWork,
        session_id: str,
        *,
        only_sold_out: set[str] | None = None,
    ) -> None:
        """PlacesAvailable for the session's categories: all of them (places came back), or
        those of `only_sold_out` that have none left (a hold took the last)."""
        for category, free in sorted((await uow.places.free(session_id)).items()):
            if only_sold_out is None or (category in only_sold_out and free == 0):
                uow.emit(PlacesAvailable(session_id=session_id, category=category, available=free))

    async def on_order_placed(self, event: orders.OrderPlaced, uow: InventoryUnitOfWork) -> None:
        if event.tickets:
            await self._hold_order_with_tickets(event, uow)
            return
        lines = [(line.product_id, line.quantity) for line in event.lines]
        try:
            available = await uow.stock.reserve(lines)
        except Shortage as shortage:
            uow.emit(
                StockRejected(
                    order_id=event.order_id,
                    reason=str(shortage),
                    product_id=shortage.product_id,
                )
            )
            return
        expires_at = self._clock() + self.hold_time
        await uow.stock.hold(event.order_id, lines, expires_at)
        uow.emit(
            StockReserved(
                order_id=event.order_id,
                lines=tuple(ReservedLine(product_id=p, quantity=q) for p, q in lines),
                expires_at=expires_at,
            )
        )
        for product_id, count in available.items():
            uow.emit(AvailabilityChanged(product_id=product_id, available=count))

    async def _hold_order_with_tickets(
        self, event: orders.OrderPlaced, uow: InventoryUnitOfWork
    ) -> None:
        """Stock and places of one order, all or nothing, held until the shortest hold of the
        sessions it names (and never past the service's hold time)."""
        lines = [(line.product_id, line.quantity) for line in event.lines]
        now = self._clock()
        hold_time = self.hold_time
        try:
            async with uow.all_or_nothing():
                for session_id in sorted({line.session_id for line in event.tickets}):
                    window = await uow.places.window(session_id)
                    if window is None:
                        raise PlacesUnavailable(session_id, "no such session")
                    refusal = window.refusal(now)
                    if refusal is not None:
                        raise PlacesUnavailable(session_id, refusal)
                    seconds = await uow.places.hold_seconds(session_id)
                    hold_time = min(hold_time, dt.timedelta(seconds=seconds))
                expires_at = now + hold_time
                available = await uow.stock.reserve(lines) if lines else {}
                places: list[HeldPlace] = []
                for ticket in sorted(event.tickets, key=lambda t: (t.session_id, t.category)):
                    if ticket.waitlist_id is not None:
                        offered = await self.waitlists.take(
                            uow, event.order_id, event.customer_id, ticket, expires_at
                        )
                        places.extend(offered)
                        continue
                    places.extend(await uow.places.hold(event.order_id, ticket, expires_at))
                if lines:
                    await uow.stock.hold(event.order_id, lines, expires_at)
        except Shortage as shortage:
            uow.emit(
                StockRejected(
                    order_id=event.order_id, reason=str(shortage), product_id=shortage.product_id
                )
            )
            return
        except PlacesUnavailable as refused:
            uow.emit(
                StockRejected(
                    order_id=event.order_id, reason=str(refused), session_id=refused.session_id
                )
            )
            return
        uow.emit(
            StockReserved(
                order_id=event.order_id,
                lines=tuple(ReservedLine(product_id=p, quantity=q) for p, q in lines),
                expires_at=expires_at,
                places=tuple(places),
            )
        )
        for session_id in sorted({t.session_id for t in event.tickets}):
            asked = {t.category for t in event.tickets if t.session_id == session_id}
            await self._announce(uow, session_id, only_sold_out=asked)
        for product_id, count in available.items():
            uow.emit(AvailabilityChanged(product_id=product_id, available=count))

    async def on_order_confirmed(
        self, event: orders.OrderConfirmed, uow: InventoryUnitOfWork
    ) -> None:
        for product_id, quantity in await uow.stock.end_holds(event.order_id, SOLD):
            await uow.stock.sell(product_id, quantity)
        await uow.places.end(event.order_id, SOLD)

    async def on_order_ended(
        self, event: orders.OrderCancelled | orders.OrderExpired, uow: InventoryUnitOfWork
    ) -> None:
        released = await uow.stock.end_holds(event.order_id, RELEASED)
        sessions = await uow.places.end(event.order_id, RELEASED)
        for session_id in sessions:
            await self._places_came_back(uow, session_id)
        if not released and not sessions:
            return
        for product_id, quantity in sorted(released):
            available = await uow.stock.put_back(product_id, quantity)
            uow.emit(AvailabilityChanged(product_id=product_id, available=available))
        reason = "order expired" if isinstance(event, orders.OrderExpired) else event.reason
        uow.emit(StockReleased(order_id=event.order_id, reason=reason))


async def stock_of(db: Database, caller: Principal, product_id: str) -> StockLevel:
    """The stock of `product_id`, for its seller and admins; `ProductNotFound` for anyone else."""
    async with db.read() as conn:
        level = await stock_level(conn, product_id)
    if level is None or not may_read(caller, level.seller_id):
        raise ProductNotFound(product_id)
    return level


async def seat_map_of(db: Database, session_id: str) -> SeatMap:
    """Every place of the session and its state; anyone may look."""
    async with db.read() as conn:
        found = await seat_map(conn, session_id)
    if found is None:
        raise SessionNotFound(session_id)
    return found
