"""The catalog service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.catalog.bootstrap import CatalogService
from agora.services.spec import service_dependency

__all__ = ["CatalogServiceDep"]

CatalogServiceDep = Annotated[CatalogService, Depends(service_dependency(CatalogService))]
"""The running catalog service of the app serving the request."""
