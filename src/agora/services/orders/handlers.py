"""Orders' use cases: placing and paying orders (from HTTP) and moving the saga on (from events)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping

import orjson

from agora.auth import Principal, may_read
from agora.contracts import catalog, inventory, payments, ticketing
from agora.messaging import Database, Event, Handler, utcnow
from agora.problems import ProblemError
from agora.services.orders import store
from agora.services.orders.domain import Line, Order, OrderStatus, Place, Seller, TicketLine
from agora.services.orders.repository import OrdersUnitOfWork
from agora.services.orders.sessions import SessionOnSale

UnitOfWorkFactory = Callable[[], OrdersUnitOfWork]


class OrderNotFound(Exception):
    pass


class UnknownProducts(Exception):
    def __init__(self, product_ids: list[str]) -> None:
        super().__init__(f"unknown products: {', '.join(product_ids)}")
        self.product_ids = product_ids


class MixedCurrencies(Exception):
    pass


class SoldOut(Exception):
    """Inventory last announced none available of these products: the order is refused at the
    door. (An order for more than is available, of a product not sold out, goes on to inventory,
    which decides.)"""

    def __init__(self, product_ids: list[str]) -> None:
        super().__init__(f"sold out: {', '.join(product_ids)}")
        self.product_ids = product_ids


class IdempotencyKeyReused(Exception):
    """The key was first used with another request body."""


class IdempotencyKeyInFlight(Exception):
    """The key's first request is still being processed."""


class UnknownSession(ProblemError):
    def __init__(self, session_ids: list[str]) -> None:
        super().__init__(
            422,
            "unknown-session",
            "Unknown session",
            f"no session on sale: {', '.join(session_ids)}",
            session_ids=session_ids,
        )


class SalesNotOpen(ProblemError):
    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(
            409,
            "sales-not-open",
            "Sales are not open",
            f"session {session_id}: {reason}",
            session_id=session_id,
        )


class InvalidTickets(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-tickets", "These tickets cannot be asked for", detail)


class CategorySoldOut(ProblemError):
    """Inventory last announced no free places in the category: refused at the door, as a
    sold-out product is (the same problem type)."""

    def __init__(self, session_id: str, category: str) -> None:
        super().__init__(
            409,
            "sold-out",
            "Sold out",
            f"no {category} places left in session {session_id}",
            session_id=session_id,
            category=category,
        )


class OfferNotOpen(ProblemError):
    def __init__(self, session_id: str, entry_id: str) -> None:
        super().__init__(
            409,
            "waitlist-offer-not-open",
            "No such offer open to you",
            f"no waiting-list offer {entry_id} of session {session_id} is open to you (it may "
            "have run out: see GET /api/waitlist)",
            session_id=session_id,
            entry_id=entry_id,
        )


class TicketLimit(ProblemError):
    def __init__(self, detail: str, session_id: str, limit: int) -> None:
        super().__init__(
            409, "ticket-limit", "Too many tickets", detail, session_id=session_id, limit=limit
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TicketRequest:
    """Seats named in a session, or a quantity in one of its categories."""

    session_id: str
    seat_ids: tuple[str, ...] = ()
    category: str | None = None
    quantity: int = 0
    waitlist_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PlaceOrder:
    customer_id: str
    items: tuple[tuple[str, int], ...]
    payment_token: str | None
    tickets: tuple[TicketRequest, ...] = ()

    def fingerprint(self) -> str:
        canonical = orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    order_id: str
    created: bool


async def place_order(
    command: PlaceOrder,
    idempotency_key: str,
    unit_of_work: UnitOfWorkFactory,
    *,
    in_flight_timeout: dt.timedelta = dt.timedelta(seconds=30),
) -> Placed:
    """Place an order once per idempotency key of its customer (IETF Idempotency-Key draft).

    The key, the order and its events are written in one transaction: a crash leaves all or
    nothing. A second request with the same key that arrives while the first is being processed
    finds the key's row taken (on PostgreSQL its insert waits for the first to commit) and is
    refused (409); asked again, it is answered with the first's order. A claim without an
    order (written by versions that claimed the key first) is taken over after
    `in_flight_timeout`.
    """
    fingerprint = command.fingerprint()
    async with unit_of_work() as uow:
        now = utcnow()
        existing = await uow.keys.find(command.customer_id, idempotency_key)
        if existing is not None:
            first_fingerprint, order_id, claimed_at = existing
            if first_fingerprint != fingerprint:
                raise IdempotencyKeyReused
            if order_id is not None:
                return Placed(order_id, created=False)
            if now - claimed_at < in_flight_timeout:
                raise IdempotencyKeyInFlight
        if command.items:
            sold_out = await uow.prices.sold_out({product_id for product_id, _ in command.items})
            if sold_out:
                raise SoldOut(sold_out)
        order = await _new_order(uow, command)
        if not await uow.keys.claim(
            command.customer_id, idempotency_key, fingerprint, now, order_id=order.id
        ):
            # Another request claimed the same key between our look and our insert.
            raise IdempotencyKeyInFlight
        await uow.orders.add(order)
    return Placed(order.id, created=True)


async def _new_order(uow: OrdersUnitOfWork, command: PlaceOrder) -> Order:
    quantities: dict[str, int] = {}
    for product_id, quantity in command.items:
        quantities[product_id] = quantities.get(product_id, 0) + quantity
    known = await uow.prices.listed(quantities) if quantities else {}
    unknown = [product_id for product_id in quantities if product_id not in known]
    if unknown:
        raise UnknownProducts(unknown)
    currencies = {currency for _, currency in known.values()}
    tickets, ticket_currencies = await _ticket_lines(uow, command)
    currencies |= ticket_currencies
    if len(currencies) != 1:
        raise MixedCurrencies(f"an order is paid in one currency, not {sorted(currencies)}")
    lines = [Line(pid, quantity, known[pid][0]) for pid, quantity in quantities.items()]
    return Order.place(
        command.customer_id, lines, currencies.pop(), command.payment_token, tickets=tickets
    )


async def _ticket_lines(
    uow: OrdersUnitOfWork, command: PlaceOrder
) -> tuple[list[TicketLine], set[str]]:
    """The order's ticket lines, priced, one per session and category (named seats grouped by
    their category), within the sessions' caps; and the sessions' currencies."""
    if not command.tickets:
        return [], set()
    sessions = await uow.sessions.find(t.session_id for t in command.tickets)
    unknown = sorted({t.session_id for t in command.tickets} - set(sessions))
    if unknown:
        raise UnknownSession(unknown)
    now = utcnow()
    named: dict[tuple[str, str], list[str]] = {}
    counted: dict[tuple[str, str], int] = {}
    offered: list[TicketLine] = []
    for request in command.tickets:
        session = sessions[request.session_id]
        if (refusal := session.window.refusal(now)) is not None:
            raise SalesNotOpen(session.session_id, refusal)
        if request.waitlist_id is not None:
            offered.append(await _offered_line(uow, command.customer_id, session, request, now))
            continue
        if request.seat_ids:
            categories = await uow.sessions.seat_categories(session.event_id, request.seat_ids)
            strangers = sorted(set(request.seat_ids) - set(categories))
            if strangers:
                raise InvalidTickets(
                    f"session {session.session_id} has no seats {', '.join(strangers)}"
                )
            for seat_id in request.seat_ids:
                seats = named.setdefault((session.session_id, categories[seat_id]), [])
                if seat_id in seats:
                    raise InvalidTickets(f"seat {seat_id} is asked for twice")
                seats.append(seat_id)
            continue
        category = request.category or ""
        if category not in session.categories:
            raise InvalidTickets(
                f"session {session.session_id} has no category {category!r}; it has "
                + ", ".join(sorted(session.categories))
            )
        key = (session.session_id, category)
        counted[key] = counted.get(key, 0) + request.quantity
    lines: list[TicketLine] = []
    for (session_id, category), seat_ids in sorted(named.items()):
        price, _ = sessions[session_id].categories[category]
        lines.append(TicketLine(session_id, category, len(seat_ids), price, tuple(seat_ids)))
    for (session_id, category), quantity in sorted(counted.items()):
        price, _ = sessions[session_id].categories[category]
        lines.append(TicketLine(session_id, category, quantity, price))
    for session_id in sorted({line.session_id for line in lines}):
        gone = await uow.sessions.sold_out(session_id)
        for line in lines:
            if line.session_id == session_id and line.category in gone and not line.seat_ids:
                raise CategorySoldOut(session_id, line.category)
    lines.extend(offered)  # held for the buyer: a sold-out category does not refuse them
    await _within_caps(uow, command.customer_id, sessions, lines)
    return lines, {sessions[line.session_id].currency for line in lines}


async def _offered_line(
    uow: OrdersUnitOfWork,
    customer_id: str,
    session: SessionOnSale,
    request: TicketRequest,
    now: dt.datetime,
) -> TicketLine:
    """The line that takes a waiting-list offer: its places, at its category's price."""
    assert request.waitlist_id is not None
    offer = await uow.sessions.offer(request.waitlist_id)
    if (
        offer is None
        or offer.customer_id != customer_id
        or offer.session_id != session.session_id
        or offer.expires_at <= now
    ):
        raise OfferNotOpen(session.session_id, request.waitlist_id)
    price, _ = session.categories[offer.category]
    return TicketLine(
        session.session_id, offer.category, offer.quantity, price, waitlist_id=offer.entry_id
    )


async def _within_caps(
    uow: OrdersUnitOfWork,
    customer_id: str,
    sessions: Mapping[str, SessionOnSale],
    lines: list[TicketLine],
) -> None:
    asked: dict[str, int] = {}
    for line in lines:
        asked[line.session_id] = asked.get(line.session_id, 0) + line.quantity
    for session_id, count in asked.items():
        cap = sessions[session_id].max_per_order
        if count > cap:
            raise TicketLimit(
                f"at most {cap} tickets of session {session_id} in one order, not {count}",
                session_id,
                cap,
            )
    already = await uow.sessions.held_by(customer_id, asked)
    for session_id, count in asked.items():
        cap = sessions[session_id].max_per_buyer
        if already.get(session_id, 0) + count > cap:
            raise TicketLimit(
                f"at most {cap} tickets of session {session_id} per buyer; you have "
                f"{already.get(session_id, 0)} in orders already",
                session_id,
                cap,
            )


async def pay_order(order_id: str, payment_token: str, unit_of_work: UnitOfWorkFactory) -> None:
    async with unit_of_work() as uow:
        order = await _get(uow, order_id)
        order.pay(payment_token, await _sellers(uow, order))
        await uow.orders.save(order)


async def _get(uow: OrdersUnitOfWork, order_id: str) -> Order:
    order = await uow.orders.get(order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return order


# -- the saga, driven by other services' events ----------------------------------------------


async def _sellers(uow: OrdersUnitOfWork, order: Order) -> dict[str, Seller]:
    """Who sells each of the order's products and sessions, for its payment's shares."""
    sellers: dict[str, Seller] = {}
    if order.lines:
        sellers |= await uow.prices.sellers(line.product_id for line in order.lines)
    if order.tickets:
        sellers |= await uow.sessions.sellers({t.session_id for t in order.tickets})
    return sellers


async def on_stock_reserved(event: inventory.StockReserved, uow: OrdersUnitOfWork) -> None:
    order = await _get(uow, event.order_id)
    sellers = await _sellers(uow, order) if order.payment_token is not None else None
    order.stock_reserved(
        event.expires_at,
        [Place(p.session_id, p.category, p.seat_id, p.area_id) for p in event.places],
        sellers,
    )
    await uow.orders.save(order)
    await uow.orders.add_places(order)


async def on_stock_rejected(event: inventory.StockRejected, uow: OrdersUnitOfWork) -> None:
    order = await _get(uow, event.order_id)
    order.stock_rejected(event.reason)
    await uow.orders.save(order)


async def on_hold_expired(event: inventory.HoldExpired, uow: OrdersUnitOfWork) -> None:
    order = await _get(uow, event.order_id)
    order.hold_expired()
    await uow.orders.save(order)


async def on_payment_succeeded(event: payments.PaymentSucceeded, uow: OrdersUnitOfWork) -> None:
    order = await _get(uow, event.order_id)
    order.payment_succeeded()
    await uow.orders.save(order)


async def on_payment_failed(event: payments.PaymentFailed, uow: OrdersUnitOfWork) -> None:
    order = await _get(uow, event.order_id)
    order.payment_failed(event.reason)
    await uow.orders.save(order)


async def on_product_listed(event: catalog.ProductListed, uow: OrdersUnitOfWork) -> None:
    await uow.prices.list_product(
        event.product_id, event.price, event.currency, event.seller_id, event.store_id
    )


async def on_price_changed(event: catalog.PriceChanged, uow: OrdersUnitOfWork) -> None:
    await uow.prices.reprice(event.product_id, event.price, event.currency)


async def on_availability_changed(
    event: inventory.AvailabilityChanged, uow: OrdersUnitOfWork
) -> None:
    await uow.prices.set_available(event.product_id, event.available)


async def on_listing_changed(event: catalog.ListingChanged, uow: OrdersUnitOfWork) -> None:
    await uow.prices.set_listed(event.product_id, event.listed)


async def on_places_available(event: inventory.PlacesAvailable, uow: OrdersUnitOfWork) -> None:
    await uow.sessions.set_available(event.session_id, event.category, event.available)


async def on_waitlist_offered(event: inventory.WaitlistOffered, uow: OrdersUnitOfWork) -> None:
    await uow.sessions.offered(event)


async def on_waitlist_offer_lapsed(
    event: inventory.WaitlistOfferLapsed, uow: OrdersUnitOfWork
) -> None:
    await uow.sessions.offer_lapsed(event.entry_id)


async def on_event_scheduled(event: ticketing.EventScheduled, uow: OrdersUnitOfWork) -> None:
    await uow.sessions.schedule(event)


async def on_sales_opened(event: ticketing.SalesOpened, uow: OrdersUnitOfWork) -> None:
    await uow.sessions.open_sales(event.session_id, event.opens_at)


async def on_sales_closed(event: ticketing.SalesClosed, uow: OrdersUnitOfWork) -> None:
    await uow.sessions.close_sales(event.session_id, event.closes_at)


HANDLERS: Mapping[type[Event], Handler[OrdersUnitOfWork]] = {
    inventory.StockReserved: on_stock_reserved,
    inventory.StockRejected: on_stock_rejected,
    inventory.HoldExpired: on_hold_expired,
    payments.PaymentSucceeded: on_payment_succeeded,
    payments.PaymentFailed: on_payment_failed,
    catalog.ProductListed: on_product_listed,
    catalog.PriceChanged: on_price_changed,
    catalog.ListingChanged: on_listing_changed,
    inventory.AvailabilityChanged: on_availability_changed,
    inventory.PlacesAvailable: on_places_available,
    inventory.WaitlistOffered: on_waitlist_offered,
    inventory.WaitlistOfferLapsed: on_waitlist_offer_lapsed,
    ticketing.EventScheduled: on_event_scheduled,
    ticketing.SalesOpened: on_sales_opened,
    ticketing.SalesClosed: on_sales_closed,
}

__all__ = [
    "HANDLERS",
    "CategorySoldOut",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InvalidTickets",
    "MixedCurrencies",
    "OrderNotFound",
    "PlaceOrder",
    "Placed",
    "SalesNotOpen",
    "SoldOut",
    "TicketLimit",
    "TicketRequest",
    "UnknownProducts",
    "UnknownSession",
    "pay_order",
    "place_order",
]


async def read_order(db: Database, caller: Principal, order_id: str) -> Order:
    """The order, for its buyer, a seller of one of its lines, and admins; `OrderNotFound` for
    anyone else (who learns nothing)."""
    async with db.read() as conn:
        found = await store.load_orders(conn, [order_id])
        if not found:
            raise OrderNotFound(order_id)
        order = found[0]
        if may_read(caller, order.customer_id):
            return order
        if caller.role == "seller" and await store.sold_by(
            conn, caller.user_id, [line.product_id for line in order.lines]
        ):
            return order
    raise OrderNotFound(order_id)


async def list_orders(
    db: Database, caller: Principal, status: OrderStatus | None, *, limit: int, offset: int
) -> list[Order]:
    """The orders `caller` may read (see `read_order`), newest first."""
    async with db.read() as conn:
        ids = await store.order_ids(
            conn, store.visible_to(caller.role, caller.user_id), status, limit=limit, offset=offset
        )
        found = {order.id: order for order in await store.load_orders(conn, ids)}
    return [found[order_id] for order_id in ids]
