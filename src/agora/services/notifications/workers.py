"""Notifications' background work: the mail dispatcher, which sends queued messages over SMTP."""

from __future__ import annotations

import dataclasses
import logging
import random
import time

from agora.messaging import Database, DependencyHealth, transient_fault, utcnow
from agora.services.notifications.mail import MailSender, MailUnavailable
from agora.services.notifications.repository import MessagesRepository

__all__ = ["Backoff", "MailDispatcher"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """The waits between attempts at a mail server that failed: doubling from `first` up to
    `cap` seconds, each drawn between half and all of that ("equal jitter"), so that replicas
    that failed together do not retry in step, while no wait is shorter than the one before
    until the cap is reached."""

    first: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` attempts in a row failed (1 or more)."""
        ceiling = min(self.cap, self.first * 2.0 ** min(failures - 1, 64))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


MAIL = "mail"
"""The dependency a mail server that cannot be reached is reported as (`DependencyHealth`)."""


class MailDispatcher:
    """Sends queued messages over SMTP, oldest first. A failed send stays queued; the next
    attempt waits as `backoff` says (wake-ups and idle ticks meanwhile try nothing). A server
    that cannot be reached is a dependency down (`health`: one log line when it goes, one when
    it is back); a message it refuses may be a defect here and is logged at each attempt with
    its traceback. A message is sent at least once: a crash between the send and the commit
    sends it again."""

    def __init__(
        self,
        db: Database,
        sender: MailSender,
        *,
        batch_size: int = 10,
        backoff: Backoff | None = None,
        health: DependencyHealth | None = None,
    ) -> None:
        self._db = db
        self.health = health or DependencyHealth("mail-dispatcher")
        self._sender = sender
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._failures = 0
        self._retry_at = 0.0  # monotonic time before which no attempt is made

    async def step(self) -> float | None:
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            return wait
        # No events to emit: a plain transaction, not a unit of work.
        async with self._db.write() as conn:
            outgoing = MessagesRepository(conn)
            # Rows stay locked while they are sent: a replica's dispatcher skips them.
            queued = await outgoing.take_queued(self._batch_size)
            sent: list[str] = []
            failure: Exception | None = None
            for message in queued:
                try:
                    await self._sender.send(message.mail)
                except Exception as error:
                    failure = error
                    break
                sent.append(message.message_id)
            if sent:
                await outgoing.mark_sent(sent, utcnow())
        # After the commit: what was sent stays marked sent.
        if failure is not None:
            return self._failed(failure, len(sent))
        if self._failures:
            if self.health.healthy:
                logger.info("mail: sending again after %d failed attempts", self._failures)
            self.health.up()
            self._failures = 0
        return 0 if len(queued) == self._batch_size else None

    def _failed(self, failure: Exception, sent: int) -> float:
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self._retry_at = time.monotonic() + delay
        if isinstance(failure, MailUnavailable) or transient_fault(failure) is not None:
            # An unreachable server is an expected state: its cause in one line, once.
            self.health.down(MAIL, failure)
            return delay
        logger.warning(
            "mail: attempt %d failed (%r%s); next attempt in %.1f s",
            self._failures,
            failure,
            f", {sent} sent before it" if sent else "",
            delay,
            exc_info=failure,
        )
        return delay
