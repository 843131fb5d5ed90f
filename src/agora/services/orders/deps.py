"""The orders service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.orders.bootstrap import OrdersService
from agora.services.spec import service_dependency

__all__ = ["OrdersServiceDep"]

OrdersServiceDep = Annotated[OrdersService, Depends(service_dependency(OrdersService))]
"""The running orders service of the app serving the request."""
