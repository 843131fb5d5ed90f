"""The identity service's typed dependencies for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agora.services.identity.bootstrap import IdentityService
from agora.services.identity.handlers import IdentityHandlers
from agora.services.identity.signing_keys import SigningKeys
from agora.services.spec import service_dependency

__all__ = ["IdentityHandlersDep", "SigningKeysDep"]

_service = service_dependency(IdentityService)


def _handlers(service: Annotated[IdentityService, Depends(_service)]) -> IdentityHandlers:
    return service.handlers


def _keys(service: Annotated[IdentityService, Depends(_service)]) -> SigningKeys:
    return service.keys


IdentityHandlersDep = Annotated[IdentityHandlers, Depends(_handlers)]
"""The handlers of the running identity service of the app serving the request."""

SigningKeysDep = Annotated[SigningKeys, Depends(_keys)]
"""The signing keys of the running identity service of the app serving the request."""
