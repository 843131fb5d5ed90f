"""The payments service's composition root."""

from __future__ import annotations

from agora.messaging import Infrastructure, UnitOfWork
from agora.services.payments import store
from agora.services.payments.api import build_router
from agora.services.payments.handlers import PaymentProcessor, PaymentsHandlers, ProviderRetry
from agora.services.payments.provider import CardProvider, MockCardProvider


class PaymentsService:
    name = "payments"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        provider: CardProvider | None = None,
        retry: ProviderRetry | None = None,
    ) -> None:
        self.platform = infrastructure.platform(self.name, store.metadata)
        self.processor = PaymentProcessor(
            self.platform.db,
            self.unit_of_work,
            provider or MockCardProvider(),
            retry or ProviderRetry(),
        )
        processor_loop = self.platform.add_loop("processor", self.processor.step)
        self.platform.subscribe(PaymentsHandlers(processor_loop.wake).table, self.unit_of_work)
        self.router = build_router(self)

    def unit_of_work(self) -> UnitOfWork:
        return self.platform.unit_of_work()

    async def start(self) -> None:
        await self.platform.db.create_tables()

    async def refresh_metrics(self) -> None:
        return None


def bootstrap(
    infrastructure: Infrastructure,
    *,
    provider: CardProvider | None = None,
    retry: ProviderRetry | None = None,
) -> PaymentsService:
    return PaymentsService(infrastructure, provider=provider, retry=retry)
