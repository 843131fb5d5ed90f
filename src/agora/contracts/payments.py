"""Events of payments: charges and refunds at the card provider, payouts to sellers."""

from typing import ClassVar

from agora.contracts.types import Amount, Currency
from agora.messaging import Event

__all__ = ["PaymentFailed", "PaymentSucceeded", "PayoutSent", "RefundIssued"]


class _PaymentEvent(Event):
    topic: ClassVar[str] = "payments"
    key_field: ClassVar[str] = "order_id"


class PaymentSucceeded(_PaymentEvent):
    order_id: str
    payment_id: str
    amount: Amount
    currency: Currency


class PaymentFailed(_PaymentEvent):
    order_id: str
    payment_id: str
    reason: str


class RefundIssued(_PaymentEvent):
    """Money went back to the buyer: the whole payment, or (`ticket_id` set) one cancelled
    ticket's price."""

    order_id: str
    payment_id: str
    amount: Amount
    currency: Currency
    ticket_id: str | None = None
    customer_id: str | None = None


class PayoutSent(Event):
    """The provider transferred a payout of a store's balance to its seller."""

    topic: ClassVar[str] = "payments"
    key_field: ClassVar[str] = "store_id"

    payout_id: str
    store_id: str
    amount: Amount
    currency: Currency
    seller_id: str | None = None
