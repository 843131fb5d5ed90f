"""Delivering messages: over SMTP to a configured server, or into the local mailbox (the
messages table itself, readable through the API) on the embedded default."""

from __future__ import annotations

import dataclasses
import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

__all__ = ["Mail", "MailSender", "SmtpSender", "SmtpSettings"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Mail:
    recipient: str
    subject: str
    body: str


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand `mail` to the mail system; raises on failure (the message is tried again)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "Agora <orders@agora.localhost>"
    username: str | None = None
    password: str | None = None
    start_tls: bool = False
    timeout: float = 10.0


class SmtpSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, mail: Mail) -> None:
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        await aiosmtplib.send(
            message,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            start_tls=settings.start_tls,
            timeout=settings.timeout,
        )
