"""The disk of the embedded default full while orders arrive: `agora up` with its data folder (the
SQLite file of every service, the embedded log) on a tmpfs of its own, a trickle of orders, and
a filler file that takes every block left. While the disk is full clients are told so (507
insufficient-storage with Retry-After, never a 500), readiness names the disk, and the process
keeps running; once the filler is gone orders flow again, every order accepted is confirmed and
nothing was dead-lettered. Afterwards every SQLite file passes `PRAGMA integrity_check`, the
embedded log reads back, and the orders stored are exactly those the client was told of."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.messaging import Envelope
from agora.messaging.backends.embedded import EmbeddedLog
from harness import AgoraProcess, eventually, product
from small_disk import SmallDisk, mounted
from steady import SETTLE, Trickle, assert_every_order_confirmed, readiness

pytestmark = [pytest.mark.faults, pytest.mark.slow]

FULL = 8.0
"""Seconds the disk stays full, the trickle running all along."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with mounted(tmp_path / "data", "64m") as disk:  # room for the data folder and the filler
        yield disk


@pytest.fixture
def agora(small_disk: SmallDisk) -> Iterator[AgoraProcess]:
    # The process's own log goes beside the data folder, off the small disk.
    process = AgoraProcess(small_disk.path, seed=[product("widget", 100_000)]).start()
    yield process
    process.stop()


def read_only(database: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True))


def integrity(database: Path) -> list[str]:
    with read_only(database) as connection:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]


def logged_envelopes(bus: Path) -> int:
    """Every record of every topic of the embedded log, read and decoded as the consumers do."""

    async def read_all() -> int:
        log = EmbeddedLog(bus)
        await log.open()
        try:
            with read_only(bus) as connection:
                topics = [name for (name,) in connection.execute("SELECT name FROM log_topics")]
            records = [r for topic in topics for r in await log.read(topic, limit=1_000_000)]
            for record in records:
                Envelope.from_bytes(record.value)
            return len(records)
        finally:
            await log.close()

    return asyncio.run(read_all())


def test_a_full_disk_refuses_orders_clearly_and_loses_none(
    agora: AgoraProcess, small_disk: SmallDisk
) -> None:
    assert readiness(agora).status_code == 200
    auth = agora.headers("trickle")
    with Trickle(agora, auth) as trickle:
        eventually(lambda: len(trickle.accepted) >= 10, timeout=60, what="orders flowing")
        assert small_disk.fill() > 0
        full_at = time.monotonic()
        refusal = eventually(
            lambda: trickle.last_refusal.get(507),
            timeout=30,
            interval=0.1,
            what="an order refused for the full disk",
        )
        assert refusal.headers["content-type"].startswith("application/problem+json")
        assert refusal.json()["type"] == "/problems/insufficient-storage"
        assert int(refusal.headers["Retry-After"]) > 0
        down = eventually(
            lambda: (r := readiness(agora)).status_code == 503 and r,
            timeout=30,
            interval=0.2,
            what="readiness to name the disk",
        )
        assert {u["dependency"] for u in down.json()["unavailable"]} == {"disk"}, down.json()
        threading.Event().wait(max(0.0, full_at + FULL - time.monotonic()))
        assert agora.process is not None
        assert agora.process.poll() is None, agora.log()  # still serving, not restarted
        accepted_while_full = len(trickle.accepted)
        small_disk.free()
        eventually(
            lambda: readiness(agora).status_code == 200,
            timeout=SETTLE,
            interval=0.2,
            what="readiness back once the disk has space",
        )
        eventually(
            lambda: len(trickle.accepted) >= accepted_while_full + 20,
            timeout=SETTLE,
            what="orders flowing again",
        )
    orders = trickle.accepted
    # Refused only for the disk (or while the key's first request still held its claim).
    assert set(trickle.refused) <= {507, 409}, trickle.refused
    assert_every_order_confirmed(agora, orders)
    agora.stop()

    databases = sorted(small_disk.path.glob("*.db"))
    assert {"bus.db", "orders.db", "inventory.db", "payments.db"} <= {d.name for d in databases}
    for database in databases:
        assert integrity(database) == ["ok"], database
    assert logged_envelopes(small_disk.path / "bus.db") > 0
    # No order half-written: those stored are exactly those accepted, each with its line.
    with read_only(small_disk.path / "orders.db") as db:
        stored = {order_id for (order_id,) in db.execute("SELECT id FROM orders")}
        with_lines = {order_id for (order_id,) in db.execute("SELECT order_id FROM order_lines")}
    assert stored == set(orders) == with_lines
