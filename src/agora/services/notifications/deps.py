"""The notifications service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.notifications.bootstrap import NotificationsService
from agora.services.spec import service_dependency

__all__ = ["NotificationsServiceDep"]

NotificationsServiceDep = Annotated[
    NotificationsService, Depends(service_dependency(NotificationsService))
]
"""The running notifications service of the app serving the request."""
