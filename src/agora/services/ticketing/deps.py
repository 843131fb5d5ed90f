"""The ticketing service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.spec import service_dependency
from agora.services.ticketing.bootstrap import TicketingService

__all__ = ["TicketingServiceDep"]

TicketingServiceDep = Annotated[TicketingService, Depends(service_dependency(TicketingService))]
"""The running ticketing service of the app serving the request."""
