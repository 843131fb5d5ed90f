"""Running Agora: email over real SMTP, the outbox and dead-letter commands, stopping, the
benchmarks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from agora.messaging import Record
from agora.messaging.backends.embedded import EmbeddedLog
from agora.runtime.supervisor import LOOPBACK, free_port
from harness import AgoraProcess, eventually, product

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Inbox:
    """An SMTP server's recipient: keeps every message it is handed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content or b"")))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port(LOOPBACK)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_emails_go_out_over_smtp(
    agora_factory: Callable[..., AgoraProcess], smtp_server: tuple[int, Inbox]
) -> None:
    port, inbox = smtp_server
    agora = agora_factory(
        [product("mug", 5)], AGORA_SMTP_HOST="127.0.0.1", AGORA_SMTP_PORT=str(port)
    )
    order_id = agora.place([("mug", 1)], customer="carol@example.test").json()["id"]
    assert agora.wait_status(order_id)["status"] == "CONFIRMED"

    def order_emails() -> list[tuple[list[str], EmailMessage]]:
        parsed = [
            (to, message_from_bytes(raw, policy=policy.default)) for to, raw in inbox.messages
        ]
        return [(to, m) for to, m in parsed if m["Subject"] == f"Order {order_id} confirmed"]

    ((recipients, email),) = eventually(order_emails, what="the order's email")
    assert recipients == ["carol@example.test"]
    assert "10.00 EUR was charged" in email.get_content()  # type: ignore[attr-defined]
    sent = eventually(
        lambda: [m for m in agora.messages("carol@example.test") if m["status"] == "SENT"],
        what="the message marked sent",
    )
    assert order_id in {m["order_id"] for m in sent}
    assert len(order_emails()) == 1
    welcome = [m for m in agora.messages("carol@example.test") if m["order_id"] is None]
    assert [m["recipient"] for m in welcome] == ["carol@example.test"]  # sent on registering


def agora_cli(agora: AgoraProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora", *args, "--data-dir", str(agora.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_outbox_status_and_dead_letters_from_the_cli(
    agora_factory: Callable[..., AgoraProcess],
) -> None:
    agora = agora_factory([product("lamp", 5)])
    status = agora_cli(agora, "outbox", "status").stdout
    assert "orders" in status
    assert "unpublished" in status

    async def publish_poison() -> None:
        # Another process appends to the running server's log, as a broken producer would.
        log = EmbeddedLog(agora.data_dir / "bus.db")
        await log.open()
        try:
            await log.publish([Record("orders", "poison-1", b"{not json")])
        finally:
            await log.close()

    asyncio.run(publish_poison())

    def dead_letters() -> list[dict[str, Any]]:
        lines = agora_cli(agora, "dlt", "list", "--json", "--topic", "orders").stdout
        return [orjson.loads(line) for line in lines.splitlines() if line.strip()]

    # Every group reading `orders` dead-letters the poison message once; none stops.
    letters = eventually(lambda: len(dead_letters()) >= 4 and dead_letters(), what="dead letters")
    assert {letter["key"] for letter in letters} == {"poison-1"}
    assert {letter["group"] for letter in letters} >= {"inventory", "payments", "analytics"}
    assert all("DecodeError" in letter["error"] for letter in letters)
    assert not any(letter["replayed"] for letter in letters)
    order_id = agora.place([("lamp", 1)]).json()["id"]
    assert agora.wait_status(order_id)["status"] == "CONFIRMED"

    replay = agora_cli(agora, "dlt", "replay", "--topic", "orders").stdout
    assert f"replayed {len(letters)} dead letters" in replay
    # Each replay goes back to the group that failed it, which (the message being poison still)
    # dead-letters it once more: the count doubles, it does not fan out.
    after = eventually(
        lambda: len(d := dead_letters()) == 2 * len(letters) and d, what="replays dead-lettered"
    )
    assert [letter["replayed"] for letter in after].count(True) == len(letters)
    again = agora_cli(agora, "dlt", "replay", "--topic", "orders").stdout
    assert f"replayed {len(letters)} dead letters" in again
    assert eventually(lambda: len(dead_letters()) == 3 * len(letters), what="one more round")


def test_stopping_answers_a_waiting_reader_at_once(
    agora_factory: Callable[..., AgoraProcess],
) -> None:
    """SIGTERM while a client waits for its order to change (`Prefer: wait=20`): the reader
    gets its 304 as the shutdown begins, not a connection cut at the server's 10 s grace."""
    agora = agora_factory([product("widget", 10)])
    order_id = agora.place([("widget", 1)], token=None).json()["id"]  # stays RESERVED
    agora.wait_status(order_id, "RESERVED")
    url, auth = f"{agora.base_url}/api/orders/{order_id}", agora.headers("buyer")
    etag = httpx.get(url, headers=auth).headers["ETag"]

    def waiters() -> bool:
        return sum(value for _, value in agora.metrics()["agora_order_waiters"]) == 1

    headers = {**auth, "If-None-Match": etag, "Prefer": "wait=20"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(httpx.get, url, headers=headers, timeout=60)
        eventually(waiters, what="the reader to wait")
        assert agora.process is not None
        stopping = time.monotonic()
        agora.process.send_signal(signal.SIGTERM)
        response = waiting.result(timeout=60)
        answered_after = time.monotonic() - stopping

    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    assert answered_after < 10, "answered by the drain, not held until the grace ran out"
    assert agora.process.wait(timeout=30) == -signal.SIGTERM  # uvicorn re-raises it, once shut down


def test_bench_saga_times_sagas_after_the_warmup() -> None:
    """`agora bench saga`: a short closed loop; its figures describe what it measured."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "agora", "bench", "saga"),
            *("--duration", "3", "--concurrency", "2", "--warmup", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert "warming up" in result.stderr
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["scenario"], figures["backend"], figures["concurrency"]) == (
        "saga",
        "embedded",
        2,
    )
    assert (figures["warmup_s"], figures["poll_ms"], figures["errors"]) == (1, 0, 0)
    assert figures["completed"] > 0
    assert figures["sagas_per_s"] > 0
    assert figures["p99_ms"] >= figures["p95_ms"] >= figures["p50_ms"] > 0
    assert figures["cpu_ms_per_saga"] > 0


def test_bench_onsale_sells_exactly_the_stock() -> None:
    """`agora bench onsale` on a small rush: its figures are the platform's, none oversold."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agora",
            "bench",
            "onsale",
            "--units",
            "5",
            "--buyers",
            "40",
            "--concurrency",
            "20",
            "--poll",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert figures["scenario"] == "onsale"
    assert (figures["sold"], figures["oversold"], figures["confirmed"]) == (5, 0, 5)
    assert figures["rejected"] == 35
    assert figures["errors"] == 0
    assert figures["sell_out_s"] is not None
    assert figures["p99_ms"] >= figures["p50_ms"] > 0


def test_bench_onsale_seated_sells_each_seat_once(tmp_path: Any) -> None:
    """`agora bench onsale --seated` on a tiny rush: every seat sold, none twice, the rest of
    the buyers refused; the server's profile written when it stops."""
    profile = tmp_path / "agora-up.pstats"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "agora", "bench", "onsale", "--seated"),
            *("--seats", "30", "--buyers", "60", "--concurrency", "10"),
            *("--profile", str(profile)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert "seats confirmed" in result.stderr
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["scenario"], figures["seats"], figures["buyers"]) == ("onsale-seated", 30, 60)
    assert (figures["sold"], figures["double_sold"], figures["held_at_end"]) == (30, 0, 0)
    assert figures["confirmed_tickets"] == 30
    # Late buyers are cancelled by the saga, or refused at the door once orders has heard that
    # the category sold out.
    answered = figures["confirmed_orders"] + figures["cancelled_by_saga"]
    assert answered + figures["refused_at_door"] == 60
    assert set(figures["refused_at_door_by_kind"]) <= {"sold-out"}
    assert (figures["errors"], figures["expired"]) == (0, 0)
    assert figures["sell_out_s"] is not None
    assert figures["p99_ms"] >= figures["p50_ms"] > 0
    assert figures["cpu_ms_per_ticket"] > 0
    functions = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    assert any(name == "place_order" for _, _, name in functions)


def test_bench_live_delivers_every_change_to_every_subscriber() -> None:
    """`agora bench live` on a small session: every subscriber's stream has every change once,
    in order, and ends with the map the API answers; latencies are measured at them."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "agora", "bench", "live"),
            *("--clients", "30", "--buyers", "4", "--seats", "40", "--duration", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["scenario"], figures["clients"], figures["buyers"]) == ("live", 30, 4)
    assert figures["orders"].get("CONFIRMED", 0) > 0
    # a held seat and its sale are two changes each; every subscriber saw all of them
    assert figures["changes"] >= 2 * figures["orders"]["CONFIRMED"]
    assert figures["resyncs"] == 0
    # each subscriber got every change after its snapshot (all the same: sales were open first)
    assert figures["deltas_received"] % 30 == 0
    assert figures["deltas_received"] >= 30 * 2 * figures["orders"]["CONFIRMED"]
    assert (figures["deltas_lost"], figures["deltas_repeated"]) == (0, 0)
    assert (figures["clients_behind_at_end"], figures["maps_wrong_at_end"]) == (0, 0)
    assert figures["max_ms"] >= figures["p99_ms"] >= figures["p50_ms"] > 0


@pytest.mark.kafka
@pytest.mark.postgres
def test_bench_relay_drains_the_outbox_and_compares_with_raw_produce(servers: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agora", "bench", "relay", "--events", "2000"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert figures["scenario"] == "relay"
    assert figures["events"] == 2000
    assert figures["relay_events_per_s"] > 0
    assert figures["raw_events_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["relay_events_per_s"] / figures["raw_events_per_s"], rel=0.01
    )


@pytest.mark.postgres
def test_bench_limit_measures_saga_step_transactions_with_pgbench(servers: object) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "agora", "bench", "limit"),
            *("--duration", "2", "--clients", "2", "--products", "200", "--measured", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert "progress:" in result.stderr  # pgbench's own, passed through
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert figures["scenario"] == "limit"
    assert (figures["duration_s"], figures["clients"], figures["products"]) == (2, 2, 200)
    assert figures["tps"] > 0
    assert figures["transactions"] > 0
    assert figures["transactions_per_saga"] == sum(figures["saga_transactions"].values())
    assert figures["sagas_per_s_ceiling"] == pytest.approx(
        figures["tps"] / figures["transactions_per_saga"], abs=0.1
    )
    # share is rounded to 4 places, from the ceiling before its rounding to 0.1
    unrounded_ceiling = figures["tps"] / figures["transactions_per_saga"]
    assert figures["share"] == pytest.approx(5 / unrounded_ceiling, abs=2e-4)
