"""Orders' handlers (the saga's steps, placing and paying orders, the price list) against
in-memory twins of their repositories, and against the real ones on SQLite (so that the twins
cannot drift from what the handlers get in production)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest

from agora.contracts import catalog, inventory, orders, payments, ticketing
from agora.messaging import Event
from agora.messaging.sql import Database, sqlite_url
from agora.services.orders import handlers, store
from agora.services.orders.domain import (
    InvalidTransition,
    Order,
    OrderStatus,
    PaymentNotAllowed,
    Seller,
)
from agora.services.orders.repository import IdempotencyKeys, OrderRepository, PriceList

EXPIRES = dt.datetime(2026, 12, 1, 12, 10, tzinfo=dt.UTC)


class InMemoryOrders:
    """`OrderRepository`'s twin: orders kept as copies, so a handler's changes count only once
    saved."""

    def __init__(self, rows: dict[str, Order], seen: Callable[[Order], None]) -> None:
        self._rows = rows
        self._seen = seen

    async def add(self, order: Order) -> None:
        self._rows[order.id] = dataclasses.replace(order, events=[])
        self._seen(order)

    async def get(self, order_id: str) -> Order | None:
        order = self._rows.get(order_id)
        return None if order is None else dataclasses.replace(order, events=[])

    async def save(self, order: Order) -> None:
        self._rows[order.id] = dataclasses.replace(order, events=[])
        self._seen(order)

    async def add_places(self, order: Order) -> None:
        self._rows[order.id] = dataclasses.replace(self._rows[order.id], places=order.places)


class InMemoryKeys:
    """`IdempotencyKeys`' twin."""

    def __init__(self, rows: dict[tuple[str, str], list[Any]]) -> None:
        self._rows = rows

    async def find(self, customer_id: str, key: str) -> tuple[str, str | None, dt.datetime] | None:
        row = self._rows.get((customer_id, key))
        return None if row is None else (row[0], row[1], row[2])

    async def claim(
        self,
        customer_id: str,
        key: str,
        fingerprint: str,
        now: dt.datetime,
        *,
        order_id: str | None = None,
    ) -> bool:
        self._rows[(customer_id, key)] = [fingerprint, order_id, now]
        return True


class InMemoryPrices:
    """`PriceList`'s twin."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self._rows = rows

    async def list_product(
        self,
        product_id: str,
        price: Decimal,
        currency: str,
        seller_id: str | None,
        store_id: str | None = None,
    ) -> None:
        self._rows[product_id] = {
            "price": price,
            "currency": currency,
            "seller_id": seller_id,
            "store_id": store_id,
            "listed": True,
            "available": None,
        }

    async def reprice(self, product_id: str, price: Decimal, currency: str) -> None:
        if product_id in self._rows:
            self._rows[product_id] |= {"price": price, "currency": currency}

    async def set_listed(self, product_id: str, listed: bool) -> None:
        if product_id in self._rows:
            self._rows[product_id]["listed"] = listed

    async def set_available(self, product_id: str, available: int) -> None:
        if product_id in self._rows:
            self._rows[product_id]["available"] = available

    async def listed(self, product_ids: Iterable[str]) -> dict[str, tuple[Decimal, str]]:
        return {
            p: (self._rows[p]["price"], self._rows[p]["currency"])
            for p in product_ids
            if p in self._rows and self._rows[p]["listed"]
        }

    async def sellers(self, product_ids: Iterable[str]) -> dict[str, Seller]:
        return {
            p: Seller(self._rows[p]["store_id"], self._rows[p]["seller_id"])
            for p in product_ids
            if p in self._rows
        }

    async def sold_out(self, product_ids: Iterable[str]) -> list[str]:
        return sorted(
            p for p in set(product_ids) if p in self._rows and self._rows[p]["available"] == 0
        )


class Unit:
    """What orders' handlers use of `OrdersUnitOfWork`: its repositories, `emit`, and the
    orders it names as changed."""

    def __init__(self, make: Callable[[Callable[[Order], None]], tuple[Any, Any, Any]]) -> None:
        self.emitted: list[Event] = []
        self.changed_orders: set[str] = set()
        self.orders, self.keys, self.prices = make(self._seen)

    def _seen(self, order: Order) -> None:
        self.changed_orders.add(order.id)
        self.emitted.extend(order.events)
        order.events.clear()

    def emit(self, event: Event) -> None:
        self.emitted.append(event)


class Work(Protocol):
    """What a test does with either adapter: units of work that commit what they emitted and
    changed, or roll all of it back."""

    emitted: list[Event]
    changed: set[str]

    def unit_of_work(self) -> AbstractAsyncContextManager[Any]: ...

    async def order(self, order_id: str) -> Order: ...


class MemoryWork:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {"orders": {}, "keys": {}, "prices": {}}
        self.emitted: list[Event] = []
        self.changed: set[str] = set()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Unit]:
        before = copy.deepcopy(self.state)  # a rollback puts it back
        unit = Unit(
            lambda seen: (
                InMemoryOrders(self.state["orders"], seen),
                InMemoryKeys(self.state["keys"]),
                InMemoryPrices(self.state["prices"]),
            )
        )
        try:
            yield unit
        except BaseException:
            self.state = before
            raise
        self.emitted.extend(unit.emitted)
        self.changed |= unit.changed_orders

    async def order(self, order_id: str) -> Order:
        return self.state["orders"][order_id]  # type: ignore[no-any-return]


class SqliteWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.emitted: list[Event] = []
        self.changed: set[str] = set()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Unit]:
        async with self.db.write() as conn:
            unit = Unit(
                lambda seen: (OrderRepository(conn, seen), IdempotencyKeys(conn), PriceList(conn))
            )
            yield unit
        self.emitted.extend(unit.emitted)
        self.changed |= unit.changed_orders

    async def order(self, order_id: str) -> Order:
        async with self.db.read() as conn:
            (found,) = await store.load_orders(conn, [order_id])
        return found


@pytest.fixture(params=["in-memory", "sqlite"])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = Database(sqlite_url(tmp_path / "orders.db"), store.metadata)
    await db.create_tables()
    try:
        yield SqliteWork(db)
    finally:
        await db.dispose()


async def apply(work: Work, handle: Any, event: Event) -> None:
    async with work.unit_of_work() as uow:
        await handle(event, uow)


async def priced(work: Work, **products: str) -> None:
    """List each product at its price in EUR (or `"<price> <currency>"`)."""
    for product_id, label in products.items():
        price, _, currency = label.partition(" ")
        listed = catalog.ProductListed(
            product_id=product_id,
            name=product_id,
            price=Decimal(price),
            currency=currency or "EUR",
            initial_stock=10,
            seller_id="seller-1",
            store_id="store-1",
        )
        await apply(work, handlers.on_product_listed, listed)


def command(
    *items: tuple[str, int], customer: str = "buyer-1", token: str | None = None
) -> handlers.PlaceOrder:
    return handlers.PlaceOrder(customer_id=customer, items=items, payment_token=token)


async def place(
    work: Work, *items: tuple[str, int], key: str = "k1", **options: Any
) -> handlers.Placed:
    return await handlers.place_order(command(*items, **options), key, work.unit_of_work)


async def reserved(work: Work, *items: tuple[str, int], token: str | None = None) -> str:
    """A placed order whose stock is reserved; the emitted events forgotten."""
    placed = await place(work, *items, token=token)
    await apply(work, handlers.on_stock_reserved, stock_reserved(placed.order_id))
    work.emitted.clear()
    work.changed.clear()
    return placed.order_id


def stock_reserved(order_id: str) -> inventory.StockReserved:
    return inventory.StockReserved(order_id=order_id, lines=(), expires_at=EXPIRES)


def succeeded(order_id: str) -> payments.PaymentSucceeded:
    return payments.PaymentSucceeded(
        order_id=order_id, payment_id="pay-1", amount=Decimal("6.00"), currency="EUR"
    )


def kinds(events: Iterable[Event]) -> list[type[Event]]:
    return [type(event) for event in events]


# -- placing an order ------------------------------------------------------------------------


async def test_an_order_is_placed_pending_at_the_listed_prices_with_lines_merged(
    work: Work,
) -> None:
    await priced(work, tea="2.50", cups="4.00")

    placed = await place(work, ("tea", 2), ("cups", 1), ("tea", 1))

    assert placed.created
    order = await work.order(placed.order_id)
    assert order.status is OrderStatus.PENDING
    assert [(line.product_id, line.quantity, line.unit_price) for line in order.lines] == [
        ("tea", 3, Decimal("2.50")),
        ("cups", 1, Decimal("4.00")),
    ]
    assert work.emitted == [
        orders.OrderPlaced(
            order_id=placed.order_id,
            customer_id="buyer-1",
            lines=order.event_lines(),
            total=Decimal("11.50"),
            currency="EUR",
        )
    ]
    assert work.changed == {placed.order_id}


async def test_the_same_key_and_body_answer_with_the_first_order_and_place_nothing(
    work: Work,
) -> None:
    await priced(work, tea="2.50")
    first = await place(work, ("tea", 1))
    work.emitted.clear()

    again = await place(work, ("tea", 1))

    assert again == handlers.Placed(first.order_id, created=False)
    assert work.emitted == []


async def test_a_key_is_the_customers_own(work: Work) -> None:
    await priced(work, tea="2.50")
    mine = await place(work, ("tea", 1), customer="buyer-1")

    theirs = await place(work, ("tea", 1), customer="buyer-2")

    assert theirs.created
    assert theirs.order_id != mine.order_id
    assert (await work.order(theirs.order_id)).customer_id == "buyer-2"


async def test_the_same_key_with_another_body_is_refused(work: Work) -> None:
    await priced(work, tea="2.50")
    await place(work, ("tea", 1))
    work.emitted.clear()

    with pytest.raises(handlers.IdempotencyKeyReused):
        await place(work, ("tea", 2))
    assert work.emitted == []


async def test_a_key_in_flight_is_refused_until_its_claim_is_stale(work: Work) -> None:
    await priced(work, tea="2.50")
    claimed = command(("tea", 1))
    async with work.unit_of_work() as uow:
        await uow.keys.claim(
            claimed.customer_id, "k1", claimed.fingerprint(), dt.datetime.now(dt.UTC)
        )

    with pytest.raises(handlers.IdempotencyKeyInFlight):
        await handlers.place_order(claimed, "k1", work.unit_of_work)
    taken_over = await handlers.place_order(
        claimed, "k1", work.unit_of_work, in_flight_timeout=dt.timedelta(0)
    )

    assert taken_over.created
    assert kinds(work.emitted) == [orders.OrderPlaced]


async def test_an_order_that_cannot_be_placed_releases_its_key(work: Work) -> None:
    await priced(work, tea="2.50")

    with pytest.raises(handlers.UnknownProducts) as refused:
        await place(work, ("tea", 1), ("jam", 1))
    assert refused.value.product_ids == ["jam"]
    async with work.unit_of_work() as uow:
        assert await uow.keys.find("buyer-1", "k1") is None

    await priced(work, jam="1.00")
    assert (await place(work, ("tea", 1), ("jam", 1))).created


async def test_an_order_in_two_currencies_is_refused(work: Work) -> None:
    await priced(work, tea="2.50", kettle="30.00 USD")

    with pytest.raises(handlers.MixedCurrencies):
        await place(work, ("tea", 1), ("kettle", 1))
    assert work.emitted == []


async def test_an_unlisted_product_is_unknown_until_listed_again(work: Work) -> None:
    await priced(work, tea="2.50")
    unlisted = catalog.ListingChanged(product_id="tea", listed=False)
    await apply(work, handlers.on_listing_changed, unlisted)

    with pytest.raises(handlers.UnknownProducts):
        await place(work, ("tea", 1))

    relisted = catalog.ListingChanged(product_id="tea", listed=True)
    await apply(work, handlers.on_listing_changed, relisted)
    assert (await place(work, ("tea", 1), key="k2")).created


async def test_a_new_price_is_the_next_orders_price(work: Work) -> None:
    await priced(work, tea="2.50")
    first = await place(work, ("tea", 1))

    changed = catalog.PriceChanged(product_id="tea", price=Decimal("3.00"), currency="EUR")
    await apply(work, handlers.on_price_changed, changed)
    second = await place(work, ("tea", 1), key="k2")

    assert (await work.order(first.order_id)).total == Decimal("2.50")
    assert (await work.order(second.order_id)).total == Decimal("3.00")


async def test_a_product_announced_sold_out_is_refused_at_the_door_and_claims_no_key(
    work: Work,
) -> None:
    await priced(work, tea="2.50", cups="4.00")
    for product_id, available in (("tea", 0), ("cups", 3)):
        changed = inventory.AvailabilityChanged(product_id=product_id, available=available)
        await apply(work, handlers.on_availability_changed, changed)

    with pytest.raises(handlers.SoldOut) as refused:
        await place(work, ("tea", 1), ("cups", 1))

    assert refused.value.product_ids == ["tea"]
    assert work.emitted == []
    async with work.unit_of_work() as uow:
        assert await uow.keys.find("buyer-1", "k1") is None


async def test_a_product_listed_again_forgets_it_was_sold_out(work: Work) -> None:
    await priced(work, tea="2.50")
    sold_out = inventory.AvailabilityChanged(product_id="tea", available=0)
    await apply(work, handlers.on_availability_changed, sold_out)

    await priced(work, tea="2.75")

    placed = await place(work, ("tea", 1))
    assert (await work.order(placed.order_id)).total == Decimal("2.75")


# -- the saga --------------------------------------------------------------------------------


async def test_reserved_stock_asks_for_payment_when_the_order_came_with_a_token(
    work: Work,
) -> None:
    await priced(work, tea="2.00")
    placed = await place(work, ("tea", 3), token="tok_visa")
    work.emitted.clear()

    await apply(work, handlers.on_stock_reserved, stock_reserved(placed.order_id))

    order = await work.order(placed.order_id)
    assert (order.status, order.hold_expires_at, order.payment_requested) == (
        OrderStatus.RESERVED,
        EXPIRES,
        True,
    )
    assert work.emitted == [
        orders.PaymentRequested(
            order_id=placed.order_id,
            customer_id="buyer-1",
            amount=Decimal("6.00"),
            currency="EUR",
            payment_token="tok_visa",
            shares=(
                orders.PaymentShare(
                    store_id="store-1", seller_id="seller-1", amount=Decimal("6.00")
                ),
            ),
        )
    ]


async def test_reserved_stock_waits_for_payment_when_the_order_came_without_a_token(
    work: Work,
) -> None:
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 3))

    order = await work.order(order_id)
    assert (order.status, order.payment_requested) == (OrderStatus.RESERVED, False)

    await handlers.pay_order(order_id, "tok_visa", work.unit_of_work)

    assert kinds(work.emitted) == [orders.PaymentRequested]
    assert (await work.order(order_id)).payment_token == "tok_visa"
    assert work.changed == {order_id}


async def test_an_order_is_paid_once_and_only_once_reserved(work: Work) -> None:
    await priced(work, tea="2.00")
    pending = await place(work, ("tea", 1), key="pending")
    with pytest.raises(PaymentNotAllowed):
        await handlers.pay_order(pending.order_id, "tok_visa", work.unit_of_work)

    order_id = await reserved(work, ("tea", 1), token="tok_visa")
    with pytest.raises(PaymentNotAllowed):
        await handlers.pay_order(order_id, "tok_visa", work.unit_of_work)
    with pytest.raises(handlers.OrderNotFound):
        await handlers.pay_order("no-such-order", "tok_visa", work.unit_of_work)

    assert work.emitted == []


async def test_rejected_stock_cancels_the_order(work: Work) -> None:
    await priced(work, tea="2.00")
    placed = await place(work, ("tea", 1))
    work.emitted.clear()

    rejected = inventory.StockRejected(order_id=placed.order_id, reason="tea: 0 left")
    await apply(work, handlers.on_stock_rejected, rejected)

    order = await work.order(placed.order_id)
    assert (order.status, order.cancel_reason) == (
        OrderStatus.CANCELLED,
        "out of stock: tea: 0 left",
    )
    assert work.emitted == [
        orders.OrderCancelled(
            order_id=placed.order_id, customer_id="buyer-1", reason="out of stock: tea: 0 left"
        )
    ]


async def test_a_payment_that_succeeds_confirms_the_order(work: Work) -> None:
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 3), token="tok_visa")

    await apply(work, handlers.on_payment_succeeded, succeeded(order_id))

    assert (await work.order(order_id)).status is OrderStatus.CONFIRMED
    (confirmed,) = work.emitted
    assert isinstance(confirmed, orders.OrderConfirmed)
    assert (confirmed.order_id, confirmed.total, confirmed.currency) == (
        order_id,
        Decimal("6.00"),
        "EUR",
    )
    assert [(line.product_id, line.quantity) for line in confirmed.lines] == [("tea", 3)]


async def test_a_payment_that_fails_cancels_the_order(work: Work) -> None:
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 1), token="tok_chargeDeclined")

    failed = payments.PaymentFailed(order_id=order_id, payment_id="pay-1", reason="declined")
    await apply(work, handlers.on_payment_failed, failed)

    assert (await work.order(order_id)).cancel_reason == "payment failed: declined"
    assert kinds(work.emitted) == [orders.OrderCancelled]


async def test_a_hold_that_runs_out_first_expires_the_order_and_a_late_payment_changes_nothing(
    work: Work,
) -> None:
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 1), token="tok_visa")

    await apply(work, handlers.on_hold_expired, inventory.HoldExpired(order_id=order_id))
    await apply(work, handlers.on_payment_succeeded, succeeded(order_id))
    failed = payments.PaymentFailed(order_id=order_id, payment_id="pay-1", reason="late")
    await apply(work, handlers.on_payment_failed, failed)

    assert (await work.order(order_id)).status is OrderStatus.EXPIRED
    assert work.emitted == [orders.OrderExpired(order_id=order_id, customer_id="buyer-1")]


async def test_a_hold_that_runs_out_after_payment_changes_nothing(work: Work) -> None:
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 1), token="tok_visa")
    await apply(work, handlers.on_payment_succeeded, succeeded(order_id))
    work.emitted.clear()

    await apply(work, handlers.on_hold_expired, inventory.HoldExpired(order_id=order_id))

    assert (await work.order(order_id)).status is OrderStatus.CONFIRMED
    assert work.emitted == []


async def test_a_hold_that_runs_out_after_a_cancellation_changes_nothing(work: Work) -> None:
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 1), token="tok_chargeDeclined")
    failed = payments.PaymentFailed(order_id=order_id, payment_id="pay-1", reason="declined")
    await apply(work, handlers.on_payment_failed, failed)
    work.emitted.clear()

    await apply(work, handlers.on_hold_expired, inventory.HoldExpired(order_id=order_id))

    assert (await work.order(order_id)).status is OrderStatus.CANCELLED
    assert work.emitted == []


async def test_a_reservation_out_of_turn_is_refused_and_changes_nothing(work: Work) -> None:
    """The consumer retries and then dead-letters such an event: nothing of it is written."""
    await priced(work, tea="2.00")
    order_id = await reserved(work, ("tea", 1), token="tok_visa")

    with pytest.raises(InvalidTransition):
        await apply(work, handlers.on_stock_reserved, stock_reserved(order_id))
    with pytest.raises(handlers.OrderNotFound):
        await apply(work, handlers.on_stock_reserved, stock_reserved("no-such-order"))

    assert (await work.order(order_id)).status is OrderStatus.RESERVED
    assert work.emitted == []


def test_every_saga_event_has_its_handler() -> None:
    assert set(handlers.HANDLERS) == {
        inventory.StockReserved,
        inventory.StockRejected,
        inventory.HoldExpired,
        payments.PaymentSucceeded,
        payments.PaymentFailed,
        catalog.ProductListed,
        catalog.PriceChanged,
        catalog.ListingChanged,
        inventory.AvailabilityChanged,
        inventory.PlacesAvailable,
        ticketing.EventScheduled,
        ticketing.SalesOpened,
        ticketing.SalesClosed,
        inventory.WaitlistOffered,
        inventory.WaitlistOfferLapsed,
    }
