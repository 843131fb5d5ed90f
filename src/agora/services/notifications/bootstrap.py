"""The notifications service's composition root."""

from __future__ import annotations

from agora.messaging import Infrastructure, UnitOfWork
from agora.services.notifications import store
from agora.services.notifications.api import build_router
from agora.services.notifications.handlers import MailDispatcher, NotificationHandlers
from agora.services.notifications.mail import MailSender, SmtpSender, SmtpSettings


class NotificationsService:
    name = "notifications"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        smtp: SmtpSettings | None = None,
        sender: MailSender | None = None,
    ) -> None:
        self.platform = infrastructure.platform(self.name, store.metadata)
        if sender is None and smtp is not None:
            sender = SmtpSender(smtp)
        wake = lambda: None  # noqa: E731 - no sender: messages land in the local mailbox
        if sender is not None:
            dispatcher = MailDispatcher(self.platform.db, sender)
            wake = self.platform.add_loop("mail-dispatcher", dispatcher.step, idle=5.0).wake
        handlers = NotificationHandlers(smtp=sender is not None, wake_sender=wake)
        self.platform.subscribe(handlers.table, self.unit_of_work)
        self.router = build_router(self)

    def unit_of_work(self) -> UnitOfWork:
        return self.platform.unit_of_work()

    async def start(self) -> None:
        await self.platform.db.create_tables()

    async def refresh_metrics(self) -> None:
        return None


def bootstrap(
    infrastructure: Infrastructure,
    *,
    smtp: SmtpSettings | None = None,
    sender: MailSender | None = None,
) -> NotificationsService:
    return NotificationsService(infrastructure, smtp=smtp, sender=sender)
