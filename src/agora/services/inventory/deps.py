"""The inventory service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.inventory.bootstrap import InventoryService
from agora.services.spec import service_dependency

__all__ = ["InventoryServiceDep"]

InventoryServiceDep = Annotated[InventoryService, Depends(service_dependency(InventoryService))]
"""The running inventory service of the app serving the request."""
