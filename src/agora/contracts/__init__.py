"""Integration events: the public contract between services, one module per bounded context.

Payload changes follow one rule: add optional fields freely; anything else is a new `version`.
"""

from agora.contracts import catalog, identity, inventory, orders, payments, ticketing
from agora.messaging import Event, EventRegistry

__all__ = [
    "ALL_EVENTS",
    "TOPICS",
    "catalog",
    "identity",
    "inventory",
    "orders",
    "payments",
    "registry",
    "ticketing",
]

ALL_EVENTS: tuple[type[Event], ...] = (
    identity.UserRegistered,
    identity.PlanChanged,
    identity.UserProfileChanged,
    catalog.ProductListed,
    catalog.PriceChanged,
    catalog.ListingChanged,
    catalog.StoreOpened,
    ticketing.EventScheduled,
    ticketing.SalesOpened,
    ticketing.SalesClosed,
    ticketing.TicketIssued,
    ticketing.TicketCheckedIn,
    ticketing.TicketCancelled,
    inventory.StockReserved,
    inventory.StockRejected,
    inventory.StockReleased,
    inventory.HoldExpired,
    inventory.AvailabilityChanged,
    inventory.PlacesAvailable,
    inventory.WaitlistOffered,
    inventory.WaitlistOfferLapsed,
    orders.OrderPlaced,
    orders.PaymentRequested,
    orders.OrderConfirmed,
    orders.OrderCancelled,
    orders.OrderExpired,
    payments.PaymentSucceeded,
    payments.PaymentFailed,
    payments.RefundIssued,
    payments.PayoutSent,
)

TOPICS: tuple[str, ...] = tuple(sorted({event.topic for event in ALL_EVENTS}))


def registry() -> EventRegistry:
    return EventRegistry(ALL_EVENTS)
