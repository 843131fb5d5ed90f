"""The identity service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.identity.bootstrap import IdentityService
from agora.services.spec import service_dependency

__all__ = ["IdentityServiceDep"]

IdentityServiceDep = Annotated[IdentityService, Depends(service_dependency(IdentityService))]
"""The running identity service of the app serving the request."""
