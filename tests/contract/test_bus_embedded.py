"""The bus contract for the embedded log (one SQLite file)."""

from __future__ import annotations

from pathlib import Path

from bus_contract import BusContract

from agora.messaging.backends.embedded import EmbeddedLog
from agora.messaging.ports import MessageLog


class TestEmbeddedBus(BusContract):
    async def open_log(self, location: Path) -> MessageLog:
        log = EmbeddedLog(location)
        try:
            await log.open()
        except BaseException:
            await log.close()
            raise
        return log
