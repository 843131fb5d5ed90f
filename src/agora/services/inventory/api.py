"""Inventory's HTTP API: stock levels, for operators and for checks of conservation; each
session's seat map, for buyers; and the waiting lists of sold-out sessions."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Response, WebSocket
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from agora.auth import AUTHORIZE, Buyer, CurrentUser, SellerOrAdmin, may_manage, may_read
from agora.contracts.seating import SeatingPlan
from agora.contracts.types import RequestModel
from agora.messaging import Database, utcnow
from agora.services.inventory import handlers, waitlist
from agora.services.inventory.deps import InventoryServiceDep
from agora.services.inventory.domain import SeatMap, SessionNotFound
from agora.services.inventory.feed import MAX_REPLAY, SEAT_STATES, FeedClosed, Run, Snapshot
from agora.services.inventory.store import AREA, session_seller
from agora.sockets import GOING_AWAY, NOT_FOUND, LiveSocket, serve
from agora.web import entity_tags

Id = Annotated[str, Path(max_length=100)]


class StockOut(BaseModel):
    product_id: str
    available: int
    reserved: int
    sold: int


class AreaOut(BaseModel):
    capacity: int
    available: int


class SalesOut(BaseModel):
    open: bool
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None


class SeatMapOut(BaseModel):
    session_id: str
    event_id: str
    version: int
    sales: SalesOut
    plan: SeatingPlan
    seats: dict[str, Literal["available", "held", "sold"]]
    areas: dict[str, AreaOut]


class WaitlistIn(RequestModel):
    category: Annotated[str, Field(min_length=1, max_length=100)]
    quantity: int = Field(ge=1, le=20, description="A party, served whole or not at all")


class OfferedPlaceOut(BaseModel):
    seat_id: str | None
    area_id: str | None
    quantity: int


class OfferTicketOut(BaseModel):
    session_id: str
    waitlist_id: str


class OfferOut(BaseModel):
    expires_at: dt.datetime
    places: list[OfferedPlaceOut]
    ticket: OfferTicketOut = Field(
        description="Put this in `tickets` of `POST /api/orders` to take the places"
    )


class WaitlistEntryOut(BaseModel):
    id: str
    session_id: str
    category: str
    quantity: int
    state: Literal["waiting", "offered", "taken", "lapsed", "left"]
    ahead: int | None = Field(description="Entries still waiting that joined before (waiting)")
    joined_at: dt.datetime
    offer: OfferOut | None = Field(description="The places held for the entry (offered)")
    order_id: str | None = Field(description="The order that took the offer (taken)")


class WaitlistOut(BaseModel):
    items: list[WaitlistEntryOut]


class WaitlistTallyOut(BaseModel):
    category: str
    state: Literal["waiting", "offered", "taken", "lapsed", "left"]
    entries: int
    places: int


class SessionWaitlistOut(BaseModel):
    session_id: str
    tally: list[WaitlistTallyOut] = Field(description="Entries and places by category and state")


async def describe(db: Database, entry: waitlist.Entry) -> WaitlistEntryOut:
    async with db.read() as conn:
        ahead = await waitlist.ahead_of(conn, entry) if entry.state == "WAITING" else None
        places = (
            await waitlist.offered_places(conn, entry.entry_id) if entry.state == "OFFERED" else []
        )
    offer = None
    if entry.state == "OFFERED" and entry.offer_expires_at is not None:
        offer = OfferOut(
            expires_at=entry.offer_expires_at,
            places=[
                OfferedPlaceOut(
                    seat_id=None if kind == AREA else place,
                    area_id=place if kind == AREA else None,
                    quantity=quantity,
                )
                for kind, place, quantity in places
            ],
            ticket=OfferTicketOut(session_id=entry.session_id, waitlist_id=entry.entry_id),
        )
    return WaitlistEntryOut(
        id=entry.entry_id,
        session_id=entry.session_id,
        category=entry.category,
        quantity=entry.quantity,
        state=entry.state.lower(),
        ahead=ahead,
        joined_at=entry.joined_at,
        offer=offer,
        order_id=entry.order_id,
    )


async def known_session(service: InventoryServiceDep, session_id: Id) -> str:
    """The session, or a 404 before the stream starts."""
    await handlers.seat_map_of(service.platform.db, session_id)
    return session_id


def represent(found: SeatMap, is_open: bool | None = None) -> bytes:
    """The map's JSON, the plan spliced in as stored (not parsed and re-rendered per request:
    a plan of 10,000 seats is most of the answer). `is_open`: whether sales are open, if known
    (else: now)."""
    window = found.window
    head = orjson.dumps(
        {
            "session_id": found.session_id,
            "event_id": found.event_id,
            "version": found.version,
            "sales": {
                "open": window.is_open(utcnow()) if is_open is None else is_open,
                "opens_at": window.opens_at,
                "closes_at": window.closes_at,
            },
            "seats": {seat: SEAT_STATES[state] for seat, state in found.seats.items()},
            "areas": {
                area: {"capacity": places.capacity, "available": places.available}
                for area, places in found.areas.items()
            },
        }
    )
    return head[:-1] + b',"plan":' + found.plan_json.encode() + b"}"


def snapshot_frame(snapshot: Snapshot) -> str:
    """The snapshot's WebSocket message, encoded once per snapshot and state of its sales
    (which opening or closing hours change without a version)."""
    is_open = snapshot.seat_map.window.is_open(utcnow())
    return snapshot.encoded(
        ("ws", is_open),
        lambda: '{"type":"snapshot","map":' + represent(snapshot.seat_map, is_open).decode() + "}",
    )


def snapshot_event(snapshot: Snapshot) -> str:
    """The snapshot as a Server-Sent Event's data, as `snapshot_frame`."""
    is_open = snapshot.seat_map.window.is_open(utcnow())
    return snapshot.encoded(
        ("sse", is_open), lambda: represent(snapshot.seat_map, is_open).decode()
    )


def build_router() -> APIRouter:
    router = APIRouter(tags=["inventory"])

    @router.get(
        "/api/sessions/{session_id}/seats",
        response_model=SeatMapOut,
        summary="A session's seat map: the plan, every seat's state, free places per area",
        description=(
            "Public. `version` grows with every change of the session's places; the `ETag` is "
            "the version, so `If-None-Match` with it answers 304 while nothing changed."
        ),
        responses={
            304: {"description": "Unchanged (the `If-None-Match` tag is current)"},
            404: {"description": "Unknown session"},
        },
    )
    async def get_seat_map(
        service: InventoryServiceDep,
        session_id: Annotated[str, Path(max_length=100)],
        if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=1000)] = None,
    ) -> Response:
        found = await handlers.seat_map_of(service.platform.db, session_id)
        etag = f'"{found.version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        known = entity_tags(if_none_match)
        if etag in known or "*" in known:
            return Response(status_code=304, headers=headers)
        return Response(represent(found), headers=headers, media_type="application/json")

    @router.get(
        "/api/sessions/{session_id}/seats/stream",
        response_class=EventSourceResponse,
        summary="A session's seat map as Server-Sent Events: a snapshot, then every change",
        description=(
            "Public. First a `snapshot` event (the seat map, as `GET .../seats` answers it), "
            "then a `delta` event per change of a place in version order, each sent once it "
            "has committed: `{version, seat_id, state, committed_at}` for a seat, `{version, "
            "area_id, available, committed_at}` for a general-admission area, `{version, sales, "
            "committed_at}` when the sales window changes. Every event's `id` is its version: a "
            "client that reconnects with `Last-Event-ID` (or `?since=`) gets exactly the "
            f"changes it missed, or a fresh snapshot if more than {MAX_REPLAY} happened."
        ),
        responses={404: {"description": "Unknown session"}},
    )
    async def stream_seat_map(
        service: InventoryServiceDep,
        session_id: Annotated[str, Depends(known_session)],
        since: Annotated[
            int | None, Query(ge=0, description="The last version the client applied")
        ] = None,
        last_event_id: Annotated[
            int | None, Header(alias="Last-Event-ID", ge=0, description="As `since`")
        ] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        start = since if since is not None else last_event_id
        metrics = service.live
        metrics.clients.labels("seats", "sse").inc()
        try:
            async for item in service.feed.stream(session_id, start):
                if isinstance(item, Snapshot):
                    yield ServerSentEvent(
                        raw_data=snapshot_event(item),
                        event="snapshot",
                        id=str(item.seat_map.version),
                    )
                else:
                    yield ServerSentEvent(
                        raw_data=item.body.decode(), event="delta", id=str(item.version)
                    )
                    metrics.sent_changes("seats", "sse", (item,))
        finally:
            metrics.clients.labels("seats", "sse").dec()

    @router.websocket("/ws/sessions/{session_id}", name="seat_map_socket")
    async def seat_map_socket(
        websocket: WebSocket,
        service: InventoryServiceDep,
        session_id: Annotated[str, Path(max_length=100)],
        since: Annotated[int | None, Query(ge=0)] = None,
    ) -> None:
        """The seat map stream over WebSocket (see docs/live.md): public."""

        async def send(socket: LiveSocket) -> None:
            metrics = socket.metrics
            try:
                async with service.feed.watch(session_id, since) as watch:
                    resyncs = 0
                    socket.on_idle = watch.poke  # the heartbeat's turn

                    def send_now(run: Run) -> bool:
                        if not socket.send_now(run.message):
                            return False
                        metrics.sent_changes("seats", "ws", run.deltas)
                        return True

                    async def send(item: Snapshot | Run | None) -> None:
                        nonlocal resyncs
                        if item is None:
                            await socket.heartbeat(version=watch.last)
                        elif isinstance(item, Snapshot):
                            if watch.resyncs > resyncs:
                                resyncs = watch.resyncs
                                metrics.resyncs.labels("seats").inc()
                            await socket.send(snapshot_frame(item))
                        else:
                            await socket.send(item.message)
                            metrics.sent_changes("seats", "ws", item.deltas)

                    watch.send_at_once(send_now)
                    while True:
                        # Nothing sent is kept while the stream waits (a snapshot is a map of
                        # every seat; the stream may wait long, its changes sent at once).
                        await send(await watch.next(None))
            except SessionNotFound:
                await socket.close(NOT_FOUND, f"no session {session_id}")
            except FeedClosed:
                await socket.close(GOING_AWAY, "the server is restarting: reconnect with ?since=")

        await serve(websocket, "seats", service.live, send)

    @router.post(
        "/api/sessions/{session_id}/waitlist",
        status_code=201,
        response_model=WaitlistEntryOut,
        summary="Join a sold-out session's waiting list",
        description=(
            "For a party of `quantity` places in `category`, while sales are open and fewer "
            "places than that are free; once per buyer and session. When places come back, "
            "entries are served first come first, whole or not at all: the next one they fit "
            "holds them until its offer runs out (the event's `waitlist_offer_minutes`) and "
            "is emailed; an offer not taken passes on to the next."
        ),
        responses={
            404: {"description": "Unknown session"},
            409: {"description": "Places are available, already waiting, or sales not open"},
            **AUTHORIZE,
        },
    )
    async def join_waitlist(
        service: InventoryServiceDep,
        session_id: Id,
        body: WaitlistIn,
        buyer: Buyer,
        response: Response,
    ) -> WaitlistEntryOut:
        async with service.unit_of_work() as uow:
            entry = await service.handlers.waitlists.join(
                uow, buyer.user_id, session_id, body.category, body.quantity
            )
        response.headers["Location"] = f"/api/waitlist/{entry.entry_id}"
        return await describe(service.platform.db, entry)

    @router.get(
        "/api/sessions/{session_id}/waitlist",
        response_model=SessionWaitlistOut,
        summary="A session's waiting list at a glance, for its organizer",
        description="Entries and the places they ask for, by category and state.",
        responses={404: {"description": "Unknown session (or another seller's)"}, **AUTHORIZE},
    )
    async def session_waitlist(
        service: InventoryServiceDep, session_id: Id, caller: SellerOrAdmin
    ) -> SessionWaitlistOut:
        async with service.platform.db.read() as conn:
            seller = await session_seller(conn, session_id)
            if seller is None or not may_manage(caller, seller[0]):
                raise SessionNotFound(session_id)
            rows = await waitlist.tally(conn, session_id)
        return SessionWaitlistOut(
            session_id=session_id,
            tally=[
                WaitlistTallyOut(
                    category=category, state=state.lower(), entries=entries, places=places
                )
                for category, state, entries, places in rows
            ],
        )

    @router.get(
        "/api/waitlist",
        response_model=WaitlistOut,
        summary="My waiting-list entries, the latest first (at most 100)",
        responses={**AUTHORIZE},
    )
    async def my_waitlist(service: InventoryServiceDep, caller: CurrentUser) -> WaitlistOut:
        db = service.platform.db
        async with db.read() as conn:
            entries = await waitlist.entries_of(conn, caller.user_id)
        return WaitlistOut(items=[await describe(db, entry) for entry in entries])

    @router.get(
        "/api/waitlist/{entry_id}",
        response_model=WaitlistEntryOut,
        summary="A waiting-list entry: its place in line, or the places offered",
        responses={404: {"description": "Unknown entry (or another buyer's)"}, **AUTHORIZE},
    )
    async def get_waitlist_entry(
        service: InventoryServiceDep, entry_id: Id, caller: CurrentUser
    ) -> WaitlistEntryOut:
        db = service.platform.db
        async with db.read() as conn:
            entry = await waitlist.entry_by_id(conn, entry_id)
        if entry is None or not may_read(caller, entry.customer_id):
            raise waitlist.EntryNotFound(entry_id)
        return await describe(db, entry)

    @router.delete(
        "/api/waitlist/{entry_id}",
        status_code=204,
        summary="Leave a waiting list (an open offer passes on to the next)",
        responses={
            404: {"description": "Unknown entry (or another buyer's)"},
            409: {"description": "The offer was ordered already: cancel the order instead"},
            **AUTHORIZE,
        },
    )
    async def leave_waitlist(
        service: InventoryServiceDep, entry_id: Id, caller: CurrentUser
    ) -> Response:
        async with service.unit_of_work() as uow:
            await service.handlers.waitlists.leave(uow, caller, entry_id)
        return Response(status_code=204)

    @router.get(
        "/api/stock/{product_id}",
        response_model=StockOut,
        summary="Stock of a product: available, held for orders, and sold",
        description="For the product's seller and admins (buyers see `available` on the product).",
        responses={404: {"description": "Unknown product"}, **AUTHORIZE},
    )
    async def get_stock(
        service: InventoryServiceDep,
        product_id: Annotated[str, Path(max_length=100)],
        caller: SellerOrAdmin,
    ) -> StockOut:
        level = await handlers.stock_of(service.platform.db, caller, product_id)
        return StockOut(
            product_id=level.product_id,
            available=level.available,
            reserved=level.reserved,
            sold=level.sold,
        )

    return router
