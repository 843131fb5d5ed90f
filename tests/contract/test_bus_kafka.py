"""The bus contract for Apache Kafka (a real broker, started by `agora.infra`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bus_contract import BusContract

from agora.infra import InfraSettings
from agora.messaging.backends.kafka import KafkaLog
from agora.messaging.ports import MessageLog

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class TestKafkaBus(BusContract):
    @pytest.fixture(autouse=True)
    def _broker(self, servers: InfraSettings) -> None:
        self.bootstrap = servers.kafka_bootstrap

    async def open_log(self, location: Path) -> MessageLog:
        # The location names a file for the embedded log; Kafka's "reopening" is a new client.
        log = KafkaLog(self.bootstrap, client_id=f"contract-{location.name}")
        try:
            await log.open()
        except BaseException:
            await log.close()
            raise
        return log
