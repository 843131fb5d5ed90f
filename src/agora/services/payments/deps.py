"""The payments service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.payments.bootstrap import PaymentsService
from agora.services.spec import service_dependency

__all__ = ["PaymentsServiceDep"]

PaymentsServiceDep = Annotated[PaymentsService, Depends(service_dependency(PaymentsService))]
"""The running payments service of the app serving the request."""
