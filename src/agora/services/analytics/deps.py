"""The analytics service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.analytics.bootstrap import AnalyticsService
from agora.services.spec import service_dependency

__all__ = ["AnalyticsServiceDep"]

AnalyticsServiceDep = Annotated[AnalyticsService, Depends(service_dependency(AnalyticsService))]
"""The running analytics service of the app serving the request."""
