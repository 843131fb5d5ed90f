"""The identity service: users, credentials, access and refresh tokens, signing keys."""

from agora.services.identity.api import build_router
from agora.services.identity.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="identity",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/auth", "/api/users", "/.well-known"),
    consumer_groups=(),
    workers=("revocations-publisher",),
)
