"""Delivering messages: over SMTP to a configured server, or into the local mailbox (the
messages table itself, readable through the API) on the embedded default."""

from __future__ import annotations

import dataclasses
import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

__all__ = ["Mail", "MailSender", "MailUnavailable", "SmtpSender", "SmtpSettings"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Mail:
    recipient: str
    subject: str
    body: str


class MailUnavailable(Exception):
    """The mail system could not be reached (refused, timed out, dropped the connection): a
    state of the server, not of the message, which is tried again once it may be back."""


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand `mail` to the mail system. Raises `MailUnavailable` when it cannot be reached,
        anything else when it refuses the message; either way the message is tried again."""
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
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                start_tls=settings.start_tls,
                timeout=settings.timeout,
            )
        except OSError as error:  # aiosmtplib's connect, timeout and disconnect errors among them
            raise MailUnavailable(
                f"SMTP server {settings.host}:{settings.port}: {error or type(error).__name__}"
            ) from error
