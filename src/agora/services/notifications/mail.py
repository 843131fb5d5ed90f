"""Delivering messages: over SMTP to a configured server, or into the local mailbox (the
messages table itself, readable through the API) on the embedded default."""

from __future__ import annotations

import dataclasses
import html
import logging
from email.message import EmailMessage
from email.utils import make_msgid
from typing import ClassVar, Literal, Protocol

import aiosmtplib

from agora.qr import qr_image

__all__ = ["Mail", "MailSender", "MailUnavailable", "SmtpSender", "SmtpSettings", "TicketQr"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class TicketQr:
    """A ticket's QR code, kept as the code it carries and drawn when the mail is sent: shown
    in the mail's HTML part and attached as `filename`."""

    ticket_id: str
    code: str
    content_type: ClassVar[Literal["image/png"]] = "image/png"

    @property
    def filename(self) -> str:
        return f"ticket-{self.ticket_id}.png"

    def png(self) -> bytes:
        return qr_image(self.code, "png")


@dataclasses.dataclass(frozen=True, slots=True)
class Mail:
    """A message to send: plain text, and with `ticket_qr` also an HTML alternative that shows
    the QR code, which is attached as well (for mail readers that show no HTML)."""

    recipient: str
    subject: str
    body: str
    ticket_qr: TicketQr | None = None


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
        if mail.ticket_qr is not None:
            with_qr_code(message, mail.body, mail.ticket_qr)
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


def with_qr_code(message: EmailMessage, body: str, qr: TicketQr) -> None:
    """Make `message` (its text part set) multipart/mixed: an alternative of the text and an
    HTML part that shows the QR code inline, then the same PNG attached.

    The image travels in the message (multipart/related, found by `cid:`) rather than as a link
    to the QR route: that route needs the buyer signed in, and readers that load no remote
    images still show it."""
    png = qr.png()
    image_id = make_msgid(domain="agora.localhost")
    message.add_alternative(
        f"<!DOCTYPE html>\n<html><body>\n<pre>{html.escape(body)}</pre>\n"
        f'<p><img src="cid:{image_id[1:-1]}" alt="The QR code of ticket '
        f'{html.escape(qr.ticket_id)}"></p>\n</body></html>\n',
        subtype="html",
    )
    html_part = message.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(
        png, "image", "png", cid=image_id, disposition="inline", filename=qr.filename
    )
    message.add_attachment(png, "image", "png", filename=qr.filename)
