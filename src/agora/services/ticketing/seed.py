"""What ticketing starts with on a fresh installation: a demo venue in catalog's demo store and
a demo concert whose two sessions are on sale (docs/ticketing.md).

The event is scheduled and its sales opened by the same handlers as the API's, on behalf of
`SEEDER`, an admin principal no token carries: the demo store has no seller, so only an admin
may manage it, and the handlers emit `EventScheduled` and `SalesOpened` through the outbox in
the seed's one transaction exactly as they do for an organizer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

from agora.auth import Principal
from agora.contracts.seating import SeatingPlan, rows_plan
from agora.messaging import utcnow
from agora.services.ticketing import handlers
from agora.services.ticketing.domain import EventPlan
from agora.services.ticketing.handlers import Clock
from agora.services.ticketing.repository import TicketingUnitOfWork
from agora.services.ticketing.store import Venue

__all__ = [
    "DEMO_EVENT_TITLE",
    "DEMO_STORE",
    "DEMO_VENUE",
    "SEEDER",
    "demo_plan",
    "seed_ticketing",
]

# Catalog's demo store (agora.services.catalog.seed), named here by convention rather than
# learned from its StoreOpened, which may reach ticketing only after this service has started.
DEMO_STORE: Final = "demo"
DEMO_STORE_NAME: Final = "Agora demo store"
# A fixed id, so that a second replica seeding at the same time collides on the primary key.
DEMO_VENUE: Final = "demo-venue"
DEMO_EVENT_TITLE: Final = "Agora demo concert"

SEEDER: Final = Principal(
    user_id="agora-seed",
    role="admin",
    plan="free",
    email="seed@agora.invalid",
    session_id="seed",
    expires_at=dt.datetime.max.replace(tzinfo=dt.UTC),
)


def demo_plan() -> SeatingPlan:
    """Rows A-J of 20 seats ("stalls") in front of a standing area of 100 ("standing")."""
    seated = rows_plan("A-J", 20, category="stalls").model_dump()
    seated["categories"].append("standing")
    seated["areas"] = [
        {"id": "standing", "name": "Standing", "category": "standing", "capacity": 100}
    ]
    return SeatingPlan.model_validate(seated)


async def seed_ticketing(uow: TicketingUnitOfWork, clock: Clock = utcnow) -> bool:
    """Create the demo venue and event unless the demo venue exists; True if it seeded.

    Replicas starting together may both find no demo venue: the second's insert then violates
    the venue's primary key and its whole transaction rolls back (IntegrityError), which the
    caller takes as "seeded already"."""
    if await uow.ticketing.venue(DEMO_VENUE) is not None:
        return False
    # The store's row as catalog's StoreOpened will write it; whichever comes second is a no-op.
    await uow.ticketing.add_store(DEMO_STORE, None, DEMO_STORE_NAME)
    plan = demo_plan()
    now = clock()
    await uow.ticketing.add_venue(
        Venue(
            id=DEMO_VENUE,
            store_id=DEMO_STORE,
            seller_id=None,
            name="Agora demo hall",
            plan_json=plan.model_dump_json(),
            seats=plan.seat_count,
            capacity=plan.capacity,
            created_at=now,
        )
    )
    evening = dt.datetime.combine(now.date(), dt.time(20, 0), tzinfo=dt.UTC)
    event_id = await handlers.create_event(
        uow,
        SEEDER,
        DEMO_STORE,
        EventPlan(
            title=DEMO_EVENT_TITLE,
            description="Two evenings in the demo hall: numbered stalls and a standing area.",
            venue_id=DEMO_VENUE,
            currency="EUR",
            prices={"stalls": Decimal("45.00"), "standing": Decimal("25.00")},
            starts=[evening + dt.timedelta(days=30), evening + dt.timedelta(days=31)],
            hold_seconds=10 * 60,
            max_per_order=10,
            max_per_buyer=10,
            cancel_until_hours=24,
            waitlist_offer_seconds=60 * 60,
        ),
        clock,
    )
    event = await uow.ticketing.event(event_id)
    assert event is not None  # written above, in this transaction
    for session in event.sessions:
        await handlers.open_sales(uow, SEEDER, session.id, None, clock)
    return True
