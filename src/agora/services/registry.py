"""The one list of Agora's services. Adding a service is a package exporting a `SPEC` (see
`agora.services.spec`) and one line here."""

from __future__ import annotations

from agora.services import (
    analytics,
    catalog,
    identity,
    inventory,
    notifications,
    orders,
    payments,
    ticketing,
)
from agora.services.spec import ServiceSpec

__all__ = ["SERVICES", "SERVICE_NAMES", "spec_of"]

SERVICES: tuple[ServiceSpec, ...] = (
    identity.SPEC,
    catalog.SPEC,
    ticketing.SPEC,
    inventory.SPEC,
    orders.SPEC,
    payments.SPEC,
    notifications.SPEC,
    analytics.SPEC,
)

SERVICE_NAMES: tuple[str, ...] = tuple(spec.name for spec in SERVICES)


def spec_of(name: str, specs: tuple[ServiceSpec, ...] = SERVICES) -> ServiceSpec:
    """The spec of service `name`; `ValueError` naming the services if there is none."""
    for spec in specs:
        if spec.name == name:
            return spec
    raise ValueError(f"no service {name!r}; services: {', '.join(s.name for s in specs)}")
