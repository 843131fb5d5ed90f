"""Orders' HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Response, WebSocket
from pydantic import BaseModel, Field, StringConstraints, model_validator

from agora.auth import AUTHORIZE, Buyer, CurrentUser, Principal
from agora.contracts.types import MAX_QUANTITY, Quantity, RequestModel
from agora.preferences import wait_preference
from agora.problems import ProblemError
from agora.services.orders import handlers
from agora.services.orders.bootstrap import OrdersService
from agora.services.orders.deps import OrdersServiceDep
from agora.services.orders.domain import Order, OrderStatus, PaymentNotAllowed
from agora.sockets import GOING_AWAY, HEARTBEAT, NOT_FOUND, LiveSocket, serve
from agora.web import entity_tags

Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MAX_TICKETS = 20
"""Tickets of one request line, and ticket lines of one order, at most (an event's own cap per
order is lower or equal)."""


class OrderItemIn(RequestModel):
    product_id: Id
    quantity: Quantity


class TicketIn(RequestModel):
    """Named seats of a session (`seat_ids`), a `quantity` of the best available places in
    one of its categories (`category`), or the places a waiting list offered you
    (`waitlist_id`, the entry's id)."""

    session_id: Id
    seat_ids: list[Id] | None = Field(None, min_length=1, max_length=MAX_TICKETS)
    category: Id | None = None
    quantity: int | None = Field(None, ge=1, le=MAX_TICKETS)
    waitlist_id: Id | None = None

    @model_validator(mode="after")
    def _seats_or_count(self) -> TicketIn:
        if self.waitlist_id is not None:
            if self.seat_ids is not None or self.category is not None or self.quantity:
                raise ValueError("a waiting-list offer takes no seats, category or quantity")
        elif self.seat_ids is not None:
            if self.category is not None or self.quantity is not None:
                raise ValueError("named seats take no category or quantity: their own")
        elif self.category is None or self.quantity is None:
            raise ValueError("give `seat_ids`, a `category` and a `quantity`, or a `waitlist_id`")
        return self


class PlaceOrderIn(RequestModel):
    customer_id: Id | None = Field(
        None, description="The caller's own user id, if given at all (the token says who buys)"
    )
    items: list[OrderItemIn] = Field(
        default_factory=list,
        max_length=100,
        description=f"Lines of one product are merged: at most {MAX_QUANTITY} of each in all",
    )
    tickets: list[TicketIn] = Field(
        default_factory=list,
        max_length=MAX_TICKETS,
        description="Tickets, alongside or instead of `items` (docs/ticketing.md)",
    )
    payment_token: Token | None = None

    @model_validator(mode="after")
    def _something(self) -> PlaceOrderIn:
        if not self.items and not self.tickets:
            raise ValueError("an order needs `items`, `tickets` or both")
        return self

    @model_validator(mode="after")
    def _merged_quantities_in_bounds(self) -> PlaceOrderIn:
        merged: dict[str, int] = {}
        for item in self.items:
            merged[item.product_id] = merged.get(item.product_id, 0) + item.quantity
        over = sorted(
            product_id for product_id, quantity in merged.items() if quantity > MAX_QUANTITY
        )
        if over:
            raise ValueError(
                f"at most {MAX_QUANTITY} of one product per order, its lines added up: "
                + ", ".join(f"{product_id} ({merged[product_id]})" for product_id in over)
            )
        return self


class PayIn(RequestModel):
    payment_token: Token


class OrderItemOut(BaseModel):
    product_id: str
    quantity: int
    unit_price: str


class TicketLineOut(BaseModel):
    session_id: str
    category: str
    quantity: int
    unit_price: str
    seat_ids: list[str] = Field(description="Named seats; empty for best available")
    waitlist_id: str | None = Field(None, description="The waiting-list offer it takes")


class PlaceOut(BaseModel):
    session_id: str
    category: str
    seat_id: str | None
    area_id: str | None


class OrderOut(BaseModel):
    id: str
    status: OrderStatus
    customer_id: str
    items: list[OrderItemOut]
    tickets: list[TicketLineOut]
    places: list[PlaceOut] = Field(description="What inventory holds for the tickets, once it has")
    total: str
    currency: str
    cancel_reason: str | None
    hold_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            status=order.status,
            customer_id=order.customer_id,
            items=[
                OrderItemOut(
                    product_id=line.product_id,
                    quantity=line.quantity,
                    unit_price=str(line.unit_price),
                )
                for line in order.lines
            ],
            tickets=[
                TicketLineOut(
                    session_id=t.session_id,
                    category=t.category,
                    quantity=t.quantity,
                    unit_price=str(t.unit_price),
                    seat_ids=list(t.seat_ids),
                    waitlist_id=t.waitlist_id,
                )
                for t in order.tickets
            ],
            places=[
                PlaceOut(
                    session_id=p.session_id,
                    category=p.category,
                    seat_id=p.seat_id,
                    area_id=p.area_id,
                )
                for p in order.places
            ],
            total=str(order.total),
            currency=order.currency,
            cancel_reason=order.cancel_reason,
            hold_expires_at=order.hold_expires_at,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": description, "content": {"application/problem+json": {}}}
    for code, description in {
        400: "Malformed request",
        404: "No such order",
        409: "Conflict with the order's state or an in-flight request",
        422: "Invalid request",
        **{code: value["description"] for code, value in AUTHORIZE.items()},
    }.items()
}


RECHECK = 5.0
"""While waiting, the order is re-read this often (seconds) even if no change is announced: a
safety net for an announcement lost with the NOTIFY listener's connection."""


def represent(order: Order) -> tuple[bytes, str]:
    """The order's JSON and its entity tag (a digest of that JSON: it changes when and only when
    what a reader sees changes)."""
    body = orjson.dumps(OrderOut.of(order).model_dump(mode="json"))
    return body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class OrdersOut(BaseModel):
    items: list[OrderOut]
    page: int
    page_size: int


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/orders", tags=["orders"], responses=PROBLEM_RESPONSES)

    def not_found(order_id: str) -> ProblemError:
        return ProblemError(404, "order-not-found", "Order not found", f"no order {order_id}")

    async def load(service: OrdersService, order_id: str, caller: Principal) -> Order:
        """The order if the caller may read it (anyone else learns nothing: 404)."""
        try:
            return await handlers.read_order(service.platform.db, caller, order_id)
        except handlers.OrderNotFound:
            raise not_found(order_id) from None

    @router.post(
        "",
        status_code=202,
        response_model=OrderOut,
        summary="Place an order",
        description=(
            "Writes the order (PENDING) and starts its saga; answers at once. The "
            "`Idempotency-Key` header is required: the same key and body return the same order "
            "and create nothing; the same key with another body is refused (422); a key whose "
            "first request is still being processed is refused (409). A product inventory has "
            "announced as sold out is refused at once (409 `sold-out`), nothing written. With "
            "`Prefer: wait=N` (seconds, at most 20) the answer waits up to N seconds for the "
            "saga to come to rest (the order final, or reserved and waiting to be paid) and is "
            "then 201 with that state (200 for a replayed key); 202 as without it when the "
            "saga takes longer: one request instead of one per change."
        ),
        responses={
            200: {"model": OrderOut, "description": "Replayed key; the order at rest"},
            201: {"model": OrderOut, "description": "Placed; the order at rest (Prefer: wait)"},
        },
        # Required in the document, optional to FastAPI: its absence is answered with our
        # own 400 `idempotency-key-missing` rather than a generic validation error.
        openapi_extra={
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "description": "A unique value per order: a retry with it creates nothing",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ]
        },
    )
    async def place_order(
        service: OrdersServiceDep,
        body: PlaceOrderIn,
        buyer: Buyer,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", max_length=255, include_in_schema=False)
        ] = None,
        prefer: Annotated[str | None, Header(alias="Prefer", max_length=1000)] = None,
    ) -> Response:
        if not idempotency_key:
            raise ProblemError(
                400,
                "idempotency-key-missing",
                "Idempotency-Key header required",
                "POST /api/orders needs an Idempotency-Key header (a unique value per order).",
            )
        if body.customer_id is not None and body.customer_id != buyer.user_id:
            raise ProblemError(
                403,
                "customer-mismatch",
                "Not your customer id",
                "customer_id, when given, must be the authenticated buyer's own user id.",
            )
        command = handlers.PlaceOrder(
            customer_id=buyer.user_id,
            items=tuple((item.product_id, item.quantity) for item in body.items),
            payment_token=body.payment_token,
            tickets=tuple(
                handlers.TicketRequest(
                    session_id=t.session_id,
                    seat_ids=tuple(t.seat_ids or ()),
                    category=t.category,
                    quantity=t.quantity or 0,
                    waitlist_id=t.waitlist_id,
                )
                for t in body.tickets
            ),
        )
        try:
            placed = await handlers.place_order(
                command,
                idempotency_key,
                service.unit_of_work,
                in_flight_timeout=service.in_flight_timeout,
            )
        except handlers.IdempotencyKeyReused:
            raise ProblemError(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "This Idempotency-Key was first used with a different request body.",
            ) from None
        except handlers.IdempotencyKeyInFlight:
            raise ProblemError(
                409,
                "idempotency-key-in-flight",
                "Request in progress",
                "The first request with this Idempotency-Key is still being processed.",
                headers={"Retry-After": "1"},
            ) from None
        except handlers.UnknownProducts as error:
            raise ProblemError(
                422,
                "unknown-product",
                "Unknown product",
                str(error),
                product_ids=error.product_ids,
            ) from None
        except handlers.SoldOut as error:
            raise ProblemError(
                409, "sold-out", "Sold out", str(error), product_ids=error.product_ids
            ) from None
        except handlers.MixedCurrencies as error:
            raise ProblemError(422, "mixed-currencies", "Mixed currencies", str(error)) from None
        wait = wait_preference(prefer)
        location = f"/api/orders/{placed.order_id}"
        headers = {"Location": location, "Content-Location": location}
        if wait:
            order, waited = await watched(
                service, placed.order_id, buyer, lambda o: o.at_rest, wait
            )
            if waited:
                headers["Preference-Applied"] = f"wait={wait}"
        else:
            order = await load(service, placed.order_id, buyer)
        content, etag = represent(order)
        # the ETag is the order's (Content-Location says so), not the collection's
        headers["ETag"] = etag
        if not placed.created:
            headers["Idempotent-Replayed"] = "true"
        status = 202 if not (wait and order.at_rest) else 201 if placed.created else 200
        return Response(content, status_code=status, headers=headers, media_type="application/json")

    @router.get(
        "",
        response_model=OrdersOut,
        summary="Orders the caller may read, newest first",
        description="A buyer's own orders; a seller's: those with a line of its products; "
        "an admin's: all.",
    )
    async def list_orders(
        service: OrdersServiceDep,
        caller: CurrentUser,
        status: OrderStatus | None = None,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> OrdersOut:
        found = await handlers.list_orders(
            service.platform.db, caller, status, limit=page_size, offset=(page - 1) * page_size
        )
        return OrdersOut(
            items=[OrderOut.of(order) for order in found],
            page=page,
            page_size=page_size,
        )

    @router.get(
        "/{order_id}",
        response_model=OrderOut,
        summary="An order and its status",
        description=(
            "Answers with an `ETag`. With `If-None-Match` naming the current tag the answer is "
            "304 Not Modified; add `Prefer: wait=N` (seconds, at most 20) and the request waits "
            "up to N seconds for the order to change, then answers 200 with the new state (or "
            "304 if nothing changed): a client follows an order's saga with one request per "
            "change instead of polling."
        ),
        responses={304: {"description": "Unchanged (the `If-None-Match` tag is current)"}},
    )
    async def get_order(
        service: OrdersServiceDep,
        order_id: Annotated[str, Path(max_length=100)],
        caller: CurrentUser,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=1000)] = None,
        prefer: Annotated[str | None, Header(alias="Prefer")] = None,
    ) -> Response:
        known = entity_tags(if_none_match)
        wait = wait_preference(prefer) if known else 0
        headers = {}
        if wait:
            body, etag, waited = await current_or_changed(service, order_id, caller, known, wait)
            if waited:
                headers["Preference-Applied"] = f"wait={wait}"
        else:
            body, etag = current(await load(service, order_id, caller), known)
        headers["ETag"] = etag
        if etag in known:
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="application/json")

    def current(order: Order, known: set[str]) -> tuple[bytes, str]:
        """The order's representation; `*` in `known` stands for it (any current one matches)."""
        body, etag = represent(order)
        if "*" in known:
            known.add(etag)
        return body, etag

    async def current_or_changed(
        service: OrdersService, order_id: str, caller: Principal, known: set[str], wait: int
    ) -> tuple[bytes, str, bool]:
        """The order if its tag is not in `known`; else the order once it is not, or as it is
        after `wait` seconds (and True: the wait was applied)."""
        last: tuple[bytes, str] | None = None

        def changed(order: Order) -> bool:
            nonlocal last
            last = current(order, known) if last is None else represent(order)
            return last[1] not in known

        _, waited = await watched(service, order_id, caller, changed, wait)
        assert last is not None  # `done` has judged the order `watched` returns
        body, etag = last
        return body, etag, waited

    async def watched(
        service: OrdersService,
        order_id: str,
        caller: Principal,
        done: Callable[[Order], bool],
        wait: int,
    ) -> tuple[Order, bool]:
        """The order once `done` says so of it, or as it is after `wait` seconds; and whether
        it was waited for (False: `done` at the first read). `done` is called on every read,
        the order returned included. Subscribed before the first read, so no change slips
        between the read and the wait."""
        async with service.changes.subscribe(order_id) as announced:
            order = await load(service, order_id, caller)
            if done(order):
                return order, False
            deadline = asyncio.get_running_loop().time() + wait
            while not done(order):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, RECHECK)):
                        if await anext(announced, None) is None:  # the process is stopping
                            deadline = 0.0
                order = await load(service, order_id, caller)
        return order, True

    @router.post(
        "/{order_id}/pay",
        status_code=202,
        response_model=OrderOut,
        summary="Pay a reserved order placed without a payment token",
    )
    async def pay(
        service: OrdersServiceDep,
        order_id: Annotated[str, Path(max_length=100)],
        body: PayIn,
        buyer: Buyer,
    ) -> OrderOut:
        order = await load(service, order_id, buyer)
        if order.customer_id != buyer.user_id:
            raise not_found(order_id)
        try:
            await handlers.pay_order(order_id, body.payment_token, service.unit_of_work)
        except handlers.OrderNotFound:
            raise not_found(order_id) from None
        except PaymentNotAllowed as error:
            raise ProblemError(409, "payment-not-allowed", "Cannot pay now", str(error)) from None
        return OrderOut.of(await load(service, order_id, buyer))

    entry = APIRouter(tags=["orders"])
    entry.include_router(router)

    @entry.websocket("/ws/orders/{order_id}", name="order_socket")
    async def order_socket(
        websocket: WebSocket,
        service: OrdersServiceDep,
        order_id: Annotated[str, Path(max_length=100)],
        token: Annotated[str | None, Query(max_length=4000)] = None,
    ) -> None:
        """The order's state as it changes, to whoever may read it (see docs/live.md)."""

        async def send(socket: LiveSocket) -> None:
            caller = await socket.principal(token)
            if caller is None:
                return
            async with service.changes.subscribe(order_id) as announced:
                try:
                    body, etag = represent(await load(service, order_id, caller))
                except ProblemError:
                    await socket.close(NOT_FOUND, f"no order {order_id}")
                    return
                loop = asyncio.get_running_loop()
                while True:
                    await socket.send(order_frame(body))
                    sent = etag
                    quiet_since = loop.time()
                    while etag == sent:
                        woken = False
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(RECHECK):
                                if await anext(announced, None) is None:
                                    await socket.close(GOING_AWAY, "the server is restarting")
                                    return
                                woken = True
                        body, etag = represent(await load(service, order_id, caller))
                        if not woken and etag == sent and loop.time() - quiet_since > HEARTBEAT:
                            await socket.heartbeat()
                            quiet_since = loop.time()

        await serve(websocket, "orders", service.live, send)

    return entry


def order_frame(body: bytes) -> str:
    return '{"type":"order","order":' + body.decode() + "}"
