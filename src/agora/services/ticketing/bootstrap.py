"""The ticketing service's composition root."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from agora.messaging import Infrastructure, Service
from agora.services.spec import ServiceContext
from agora.services.ticketing import store
from agora.services.ticketing.handlers import HANDLERS
from agora.services.ticketing.repository import TicketingUnitOfWork
from agora.services.ticketing.seed import seed_ticketing
from agora.services.ticketing.tickets import ensure_signing_key


class TicketingService(Service):
    name = "ticketing"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, infrastructure: Infrastructure) -> None:
        super().__init__(infrastructure, store.metadata)
        self.platform.subscribe(HANDLERS, self.unit_of_work)

    def unit_of_work(self) -> TicketingUnitOfWork:
        return self.platform.unit_of_work(TicketingUnitOfWork)

    async def start(self) -> None:
        async with self.unit_of_work() as uow:
            await ensure_signing_key(uow)
        with contextlib.suppress(IntegrityError):  # another replica seeded it meanwhile
            async with self.unit_of_work() as uow:
                await seed_ticketing(uow)


def bootstrap(context: ServiceContext) -> TicketingService:
    return TicketingService(context.infrastructure)
