"""The notifications service: messages to buyers and sellers (email over SMTP, or the mailbox)."""

from agora.services.notifications.api import build_router
from agora.services.notifications.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="notifications",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/notifications",),
    consumer_groups=("notifications",),
    workers=("mail-dispatcher",),
)
