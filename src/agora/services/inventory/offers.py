"""What inventory does with waiting lists (`waitlist` keeps them): buyers join and leave, places
that come back are offered in order, an offer is taken by an order or passes on when it runs
out. Each step runs with the session's row locked (as holds do), in the caller's transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from agora.auth import Principal, may_read
from agora.contracts.inventory import HeldPlace, WaitlistOffered, WaitlistOfferLapsed
from agora.contracts.orders import TicketLine
from agora.messaging import new_id
from agora.services.inventory.domain import PlacesUnavailable, SessionNotFound
from agora.services.inventory.repository import InventoryUnitOfWork
from agora.services.inventory.store import LAPSED, LEFT, OFFERED, RELEASED, TAKEN, WAITING
from agora.services.inventory.waitlist import (
    AlreadyWaiting,
    Entry,
    EntryNotFound,
    NotOnTheList,
    PlacesStillAvailable,
    WaitlistRefused,
)

__all__ = ["WaitingLists"]


class WaitingLists:
    def __init__(self, clock: Callable[[], dt.datetime], lock_timeout: float) -> None:
        self._clock = clock
        self._lock_timeout = lock_timeout

    async def join(
        self,
        uow: InventoryUnitOfWork,
        customer_id: str,
        session_id: str,
        category: str,
        quantity: int,
    ) -> Entry:
        """Put the buyer's party on the session's list: only while sales are open and the
        category has fewer free places than the party, once per buyer and session."""
        await uow.places.lock([session_id], [], timeout=self._lock_timeout)
        window = await uow.places.window(session_id)
        if window is None:
            raise SessionNotFound(session_id)
        now = self._clock()
        if (refusal := window.refusal(now)) is not None:
            raise WaitlistRefused(409, "sales-not-open", "Sales are not open", refusal, session_id)
        free = await uow.places.free(session_id)
        if category not in free:
            raise WaitlistRefused(
                422,
                "invalid-tickets",
                "These tickets cannot be asked for",
                f"session {session_id} has no category {category!r}; it has "
                + ", ".join(sorted(free)),
                session_id,
            )
        cap, _ = await uow.places.limits(session_id)
        if quantity > cap:
            raise WaitlistRefused(
                409,
                "ticket-limit",
                "Too many tickets",
                f"at most {cap} tickets of session {session_id} in one order, not {quantity}",
                session_id,
            )
        if free[category] >= quantity:
            raise PlacesStillAvailable(session_id, category, free[category])
        if (present := await uow.waitlist.active(session_id, customer_id)) is not None:
            raise AlreadyWaiting(session_id, present.entry_id)
        return await uow.waitlist.join(new_id(), session_id, customer_id, category, quantity, now)

    async def leave(self, uow: InventoryUnitOfWork, caller: Principal, entry_id: str) -> None:
        """The buyer (or an admin) takes the entry off the list; an open offer passes on.
        Leaving twice is leaving once; an offer already ordered cannot be left."""
        entry = await uow.waitlist.get(entry_id)
        if entry is None or not may_read(caller, entry.customer_id):
            raise EntryNotFound(entry_id)
        await uow.places.lock([entry.session_id], [], timeout=self._lock_timeout)
        now = self._clock()
        if await uow.waitlist.end(entry_id, LEFT, now, was=[WAITING]):
            return
        if await uow.waitlist.end(entry_id, LEFT, now, was=[OFFERED]):
            await self._withdraw(uow, entry, "you left the waiting list")
            await self.serve(uow, entry.session_id)
            return
        entry = await uow.waitlist.get(entry_id)
        assert entry is not None
        if entry.state == TAKEN:
            raise NotOnTheList(entry_id, entry.order_id)

    async def serve(self, uow: InventoryUnitOfWork, session_id: str) -> list[WaitlistOffered]:
        """Offer the session's free places to its list, first come first: each entry whose
        party they fit (whole) gets them as a hold until its offer runs out."""
        waiting = await uow.waitlist.waiting(session_id)
        if not waiting:
            return []
        now = self._clock()
        window = await uow.places.window(session_id)
        if window is None or not window.is_open(now):
            return []
        free = await uow.places.free(session_id)
        _, offer_time = await uow.places.limits(session_id)
        expires_at = min(now + offer_time, window.closes_at or window.starts_at)
        offers: list[WaitlistOffered] = []
        for entry in waiting:
            if free.get(entry.category, 0) < entry.quantity:
                continue
            try:
                async with uow.all_or_nothing():
                    places = await uow.places.hold(entry.entry_id, entry, expires_at, swept=False)
                    if not await uow.waitlist.offer(entry.entry_id, now, expires_at):
                        raise PlacesUnavailable(session_id, "the entry is not waiting any more")
            except PlacesUnavailable:
                continue  # no seats together without a gap, say: the next may fit
            free[entry.category] -= entry.quantity
            offer = WaitlistOffered(
                entry_id=entry.entry_id,
                session_id=session_id,
                customer_id=entry.customer_id,
                category=entry.category,
                quantity=entry.quantity,
                places=tuple(places),
                expires_at=expires_at,
            )
            uow.emit(offer)
            offers.append(offer)
        return offers

    async def take(
        self,
        uow: InventoryUnitOfWork,
        order_id: str,
        customer_id: str,
        line: TicketLine,
        expires_at: dt.datetime,
    ) -> list[HeldPlace]:
        """The places offered to the line's entry are the order's, if the offer is still open,
        the order's buyer's, and for what the line asks; else `PlacesUnavailable`."""
        assert line.waitlist_id is not None
        entry = await uow.waitlist.get(line.waitlist_id)
        if (
            entry is None
            or entry.customer_id != customer_id
            or (entry.session_id, entry.category, entry.quantity)
            != (line.session_id, line.category, line.quantity)
        ):
            raise PlacesUnavailable(
                line.session_id, f"no waiting-list offer {line.waitlist_id} of these places"
            )
        if not await uow.waitlist.take(entry.entry_id, order_id, self._clock()):
            raise PlacesUnavailable(
                line.session_id, f"the waiting-list offer {entry.entry_id} is no longer open"
            )
        return await uow.places.transfer(entry.entry_id, order_id, expires_at)

    async def pass_on_lapsed(self, uow: InventoryUnitOfWork, limit: int = 100) -> list[str]:
        """Offers that ran out give their places to the next entries (or back on sale);
        returns the sessions whose places changed."""
        now = self._clock()
        lapsed = await uow.waitlist.lapsed(now, limit)
        sessions = sorted({entry.session_id for entry in lapsed})
        if not sessions:
            return []
        await uow.places.lock(sessions, [], timeout=self._lock_timeout)
        for entry in lapsed:
            # Another replica's sweeper, or the order that took it, may have been first.
            if await uow.waitlist.end(entry.entry_id, LAPSED, now, was=[OFFERED]):
                await self._withdraw(uow, entry, "the offer ran out")
        for session_id in sessions:
            await self.serve(uow, session_id)
        return sessions

    async def _withdraw(self, uow: InventoryUnitOfWork, entry: Entry, reason: str) -> None:
        await uow.places.end(entry.entry_id, RELEASED)
        uow.emit(
            WaitlistOfferLapsed(
                entry_id=entry.entry_id,
                session_id=entry.session_id,
                customer_id=entry.customer_id,
                reason=reason,
            )
        )
