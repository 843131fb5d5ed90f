"""The notifications service's composition root."""

from __future__ import annotations

from pathlib import Path

from agora.messaging import DependencyHealth, Infrastructure, Service
from agora.services.notifications import store
from agora.services.notifications.handlers import NotificationHandlers
from agora.services.notifications.mail import MailSender, SmtpSender, SmtpSettings
from agora.services.notifications.repository import NotificationsUnitOfWork
from agora.services.notifications.workers import MailDispatcher
from agora.services.spec import ServiceContext


class NotificationsService(Service):
    name = "notifications"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        smtp: SmtpSettings | None = None,
        sender: MailSender | None = None,
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        if sender is None and smtp is not None:
            sender = SmtpSender(smtp)
        if sender is None:  # messages land in the local mailbox, read through the API
            handlers = NotificationHandlers(smtp=False, wake_sender=lambda: None)
        else:
            name = "mail-dispatcher"
            health = DependencyHealth(
                self.platform.loop_name(name), self.platform.metrics.dependency_up
            )
            dispatcher = MailDispatcher(self.platform.db, sender, health=health)
            loop = self.platform.add_loop(name, dispatcher.step, idle=5.0, health=health)
            handlers = NotificationHandlers(smtp=True, wake_sender=loop.wake)
        self.platform.subscribe(handlers.table, self.unit_of_work)

    def unit_of_work(self) -> NotificationsUnitOfWork:
        return self.platform.unit_of_work(NotificationsUnitOfWork)


def bootstrap(context: ServiceContext) -> NotificationsService:
    settings = context.settings
    smtp = (
        SmtpSettings(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
        if settings.smtp_host
        else None
    )
    return NotificationsService(context.infrastructure, smtp=smtp)
