"""`agora check` after real sagas: every invariant holds; and with facts corrupted in the
databases of the services that own them, the check fails naming exactly those invariants."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, insert, select, update
from sqlalchemy.sql import Executable

from agora.messaging import Database, Record, add_outbox_table
from agora.runtime.runtime import build_log
from agora.services.inventory.store import SEAT, SOLD, place_holds, stock
from agora.services.orders.store import orders
from agora.services.payments.store import SUCCEEDED, attempts, ledger_balances, payments
from agora.services.ticketing.store import tickets
from agora.settings import Settings
from harness import FINAL, AgoraProcess, eventually, product, servers_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOLD_SECONDS = 3
"""An unpaid order expires this soon (the demo concert's longer hold is capped by it)."""

EVERY_INVARIANT = {
    "stock conserved",
    "seats in one state",
    "seats held once",
    "free seats counted",
    "area places conserved",
    "one ticket per seat",
    "orders final or on hold",
    "one capture per payment",
    "postings balance",
    "one capture posting per charge",
    "refunds posted",
    "payouts posted",
    "shares add up",
    "balances are their entries",
    "confirmed orders paid",
    "ended orders not charged",
    "payments match totals",
    "holds follow orders",
    "outbox published",
    "consumers caught up",
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("embedded"),
        pytest.param("servers", marks=[pytest.mark.postgres, pytest.mark.kafka]),
    ],
)
def agora(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgoraProcess]:
    data_dir: Path = tmp_path_factory.mktemp("agora") / "data"
    env = servers_env(request) if request.param == "servers" else {}
    env["AGORA_HOLD_SECONDS"] = str(HOLD_SECONDS)
    process = AgoraProcess(data_dir, seed=[product("widget", 100)], env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sagas(agora: AgoraProcess) -> dict[str, str]:
    """One saga of each ending, by name: the ids of their orders, all final."""
    ids = {
        "confirmed": agora.place([("widget", 2)]).json()["id"],
        "declined": agora.place([("widget", 1)], token="tok_chargeDeclined").json()["id"],
        "expired": agora.place([("widget", 3)], token=None).json()["id"],
        "seated": order_seat(agora, "main-C-7"),
    }
    wanted = {"confirmed": "CONFIRMED", "declined": "CANCELLED", "expired": "EXPIRED"}
    for name, status in wanted.items():
        order = agora.wait_status(ids[name], timeout=60)
        assert order["status"] == status, order
    seated = f"/api/orders/{ids['seated']}"
    order = eventually(
        lambda: (
            (o := agora.client.get(seated, headers=agora.headers("buyer")).json())["status"]
            in FINAL
            and o
        ),
        timeout=60,
        what="the seated order final",
    )
    assert order["status"] == "CONFIRMED", order
    eventually(agora.settled, timeout=60, what="every event of the sagas consumed (tickets issued)")
    return ids


def order_seat(agora: AgoraProcess, seat: str) -> str:
    """Order seat `seat` of the demo concert's first session, paid at once (retried while
    orders has not learned of its sales yet)."""
    listed = agora.client.get("/api/events", params={"q": "demo concert"}).json()["items"]
    (event,) = [e for e in listed if e["title"] == "Agora demo concert"]
    session_id = agora.client.get(f"/api/events/{event['id']}").json()["sessions"][0]["id"]
    body = {
        "tickets": [{"session_id": session_id, "seat_ids": [seat]}],
        "payment_token": "tok_visa",
    }
    key = str(uuid.uuid4())

    def accepted() -> httpx.Response | None:
        response = agora.client.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, **agora.headers("buyer")}
        )
        if response.status_code in (409, 422) and response.json()["type"] in (
            "/problems/unknown-session",
            "/problems/sales-not-open",
        ):
            return None
        return response

    response = eventually(accepted, what="orders to learn of the demo concert's sales")
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def settings_of(agora: AgoraProcess) -> Settings:
    """The settings `agora up` was given (its AGORA_* environment and data folder)."""
    given = {k.removeprefix("AGORA_").lower(): v for k, v in agora.env.items()}
    return Settings.model_validate({**given, "data_dir": agora.data_dir})


def in_database(agora: AgoraProcess, service: str, statement: Executable) -> list[Any]:
    """Run `statement` in `service`'s own database, as a fault or an operator's slip would:
    the rows it returns, if any."""
    settings = settings_of(agora)

    async def run() -> list[Any]:
        db = Database(settings.database_url(service), MetaData())
        try:
            async with db.write() as conn:
                result = await conn.execute(statement)
                return list(result.all()) if result.returns_rows else []
        finally:
            await db.dispose()

    return asyncio.run(run())


def on_the_log(agora: AgoraProcess, records: list[Record]) -> None:
    """Append `records` to the deployment's log (the embedded file, or its Kafka topics)."""

    async def run() -> None:
        log = build_log(settings_of(agora))
        try:
            await log.open()
            await log.publish(records)
        finally:
            await log.close()

    asyncio.run(run())


def violated(agora: AgoraProcess, *options: str) -> dict[str, dict[str, Any]]:
    """The invariants `agora check` finds violated (it must exit 1 then)."""
    status, result = agora.run_check("--settle-seconds", "0", *options)
    broken = {i["name"]: i for i in result["invariants"] if not i["ok"]}
    assert (status, result["ok"]) == ((1, False) if broken else (0, True)), result
    return broken


def payment_id(agora: AgoraProcess, order_id: str) -> str:
    """The id of the payment of `order_id`, from payments' database."""
    (row,) = in_database(
        agora, "payments", select(payments.c.id).where(payments.c.order_id == order_id)
    )
    return str(row.id)


def test_after_every_kind_of_saga_every_invariant_holds(
    agora: AgoraProcess, sagas: dict[str, str]
) -> None:
    result = agora.check()
    verdicts = {i["name"]: i for i in result["invariants"]}
    assert set(verdicts) == EVERY_INVARIANT
    assert all(i["ok"] and i["offenders"] == [] for i in verdicts.values()), verdicts
    # the checks across services saw the sagas: two confirmed, two ended otherwise
    assert verdicts["confirmed orders paid"]["detail"] == "2 confirmed orders"
    assert verdicts["ended orders not charged"]["detail"] == "2 cancelled or expired orders"
    assert verdicts["seats held once"]["detail"] == "1 seats held or sold"


def test_each_fact_corrupted_breaks_exactly_its_invariant(
    agora: AgoraProcess, sagas: dict[str, str]
) -> None:
    """With Agora stopped (a running relay would publish an unpublished row within a second),
    one fact corrupted per invariant, each in the database of the service that owns it, and a
    record appended that no consumer reads: the check fails naming those invariants and, for
    each, exactly the corrupted ids."""
    agora.stop()
    now = dt.datetime.now(dt.UTC)
    an_hour_ago = now - dt.timedelta(hours=1)
    expected: dict[str, list[str]] = {}

    widget = update(stock).where(stock.c.product_id == "widget")
    in_database(agora, "inventory", widget.values(available=stock.c.available + 1))
    expected["stock conserved"] = ["widget"]

    captured = payment_id(agora, sagas["confirmed"])
    in_database(agora, "payments", insert(attempts).values(capture(captured, now)))
    expected["one capture per payment"] = [captured]

    # consistent within payments (succeeded, charged once), wrong against orders
    declined = payment_id(agora, sagas["declined"])
    in_database(agora, "payments", insert(attempts).values(capture(declined, now)))
    in_database(
        agora,
        "payments",
        update(payments).where(payments.c.id == declined).values(state=SUCCEEDED),
    )
    expected["ended orders not charged"] = [sagas["declined"]]

    seated = payments.c.order_id == sagas["seated"]
    (asked,) = in_database(agora, "payments", select(payments.c.amount).where(seated))
    in_database(agora, "payments", update(payments).where(seated).values(amount=asked.amount + 1))
    expected["payments match totals"] = [sagas["seated"]]
    # the ledger recorded what was charged: the capture and the shares no longer match it
    seated_payment = payment_id(agora, sagas["seated"])
    expected["one capture posting per charge"] = [seated_payment]
    expected["shares add up"] = [seated_payment]

    commission = ledger_balances.c.account == "platform:commission"
    in_database(
        agora,
        "payments",
        update(ledger_balances).where(commission).values(balance=ledger_balances.c.balance - 1),
    )
    expected["balances are their entries"] = ["platform:commission/EUR"]

    in_database(
        agora,
        "orders",
        update(orders)
        .where(orders.c.id == sagas["expired"])
        .values(status="RESERVED", hold_expires_at=an_hour_ago),
    )
    expected["orders final or on hold"] = [sagas["expired"]]

    (sold,) = in_database(
        agora,
        "inventory",
        select(place_holds).where(
            place_holds.c.order_id == sagas["seated"], place_holds.c.kind == SEAT
        ),
    )
    assert sold.state == SOLD
    in_database(
        agora,
        "inventory",
        insert(place_holds).values({**sold._asdict(), "order_id": str(uuid.uuid4())}),
    )
    expected["seats held once"] = [f"{sold.session_id}/{sold.place_id}"]

    (issued,) = in_database(
        agora, "ticketing", select(tickets).where(tickets.c.order_id == sagas["seated"])
    )
    second = {**issued._asdict(), "id": str(uuid.uuid4()), "order_id": str(uuid.uuid4())}
    in_database(agora, "ticketing", insert(tickets).values(second))
    expected["one ticket per seat"] = [f"{issued.session_id}/{issued.seat_id}"]

    outbox = add_outbox_table(MetaData())
    (first,) = in_database(
        agora, "catalog", select(outbox.c.id, outbox.c.event_id).order_by(outbox.c.id).limit(1)
    )
    in_database(
        agora,
        "catalog",
        update(outbox)
        .where(outbox.c.id == first.id)
        .values(published_at=None, created_at=an_hour_ago),
    )
    expected["outbox published"] = [f"catalog:{first.event_id}"]

    # nobody reads it while Agora is down: every group reading catalog's topic is one behind
    on_the_log(agora, [Record("catalog", "check", b"{}")])

    broken = violated(agora, "--lag-records", "0")
    lagging = broken.pop("consumers caught up")["offenders"]
    assert {name: v["offenders"] for name, v in broken.items()} == expected
    assert all(v["detail"].startswith("1 ") for v in broken.values()), broken
    assert {"inventory@catalog=1", "orders@catalog=1"} <= set(lagging), lagging
    assert all(lag.endswith("@catalog=1") for lag in lagging), lagging


def capture(payment: str, at: dt.datetime) -> dict[str, Any]:
    """A successful charge of `payment`, as the processor records one."""
    return {
        "id": str(uuid.uuid4()),
        "payment_id": payment,
        "kind": "charge",
        "outcome": "succeeded",
        "detail": None,
        "at": at,
    }
