"""The payments service's composition root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agora.messaging import Infrastructure, Service
from agora.services.payments import store
from agora.services.payments.handlers import PaymentsHandlers
from agora.services.payments.ledger import CommissionRates
from agora.services.payments.payouts import PayoutScheduler
from agora.services.payments.provider import CardProvider, MockCardProvider
from agora.services.payments.repository import PaymentsUnitOfWork
from agora.services.payments.workers import PaymentProcessor, ProviderRetry
from agora.services.spec import ServiceContext


class PaymentsService(Service):
    name = "payments"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        provider: CardProvider | None = None,
        retry: ProviderRetry | None = None,
        rates: CommissionRates | None = None,
        holding: dt.timedelta = dt.timedelta(days=7),
        payout_every: dt.timedelta | None = None,
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        self.holding = holding
        self.processor = PaymentProcessor(
            self.unit_of_work,
            provider or MockCardProvider(),
            retry or ProviderRetry(),
        )
        processor_loop = self.platform.add_loop("processor", self.processor.step)
        self.wake_processor = processor_loop.wake
        if payout_every is not None:
            scheduler = PayoutScheduler(
                self.unit_of_work, every=payout_every, holding=holding, wake=self.wake_processor
            )
            self.platform.add_loop("payouts", scheduler.step, idle=payout_every.total_seconds())
        self.platform.subscribe(
            PaymentsHandlers(processor_loop.wake, rates).table, self.unit_of_work
        )

    def unit_of_work(self) -> PaymentsUnitOfWork:
        return self.platform.unit_of_work(PaymentsUnitOfWork)


def bootstrap(context: ServiceContext) -> PaymentsService:
    settings = context.settings
    return PaymentsService(
        context.infrastructure,
        rates=CommissionRates(
            free=settings.commission_rate_free, premium=settings.commission_rate_premium
        ),
        holding=dt.timedelta(days=settings.payout_holding_days),
        payout_every=dt.timedelta(hours=settings.payout_schedule_hours)
        if settings.payout_schedule_hours
        else None,
    )
