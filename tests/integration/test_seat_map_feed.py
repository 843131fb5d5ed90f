"""The seat map feed on a real database (SQLite and PostgreSQL): what a stream is handed it
checks against the change log, so a hand-off lost or out of order never makes it skip or repeat
a change; and a stream that falls behind its backlog is given a snapshot, not the backlog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from agora.messaging import Database
from agora.services.inventory.feed import PlaceFeed, Run, Snapshot, Watch
from agora.services.inventory.store import place_changes
from inventory_on_db import (
    DATABASES,
    Inventory,
    inventory_database,
    opened,
    placed,
    scheduled,
    seats,
)


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async for database in inventory_database(request, tmp_path, "feed"):
        yield database


@pytest.fixture
async def inventory(db: Database) -> Inventory:
    inventory = Inventory(db)
    await inventory.apply(scheduled())
    await inventory.apply(opened())
    return inventory


async def hold(inventory: Inventory, order_id: str, *seat_ids: str) -> int:
    """Hold `seat_ids` for `order_id`; the session's version after it."""
    before = await inventory.version("s1")
    await inventory.apply(placed(order_id, seats(*(f"main-{seat}" for seat in seat_ids))))
    after = await inventory.version("s1")
    assert after == before + len(seat_ids), "the seats were not held"
    return after


async def logged(db: Database, version: int) -> list[dict[str, object]]:
    """The change log rows of `version`, as the unit of work that wrote them hands them on."""
    async with db.read() as conn:
        rows = await conn.execute(select(place_changes).where(place_changes.c.version == version))
        return [dict(row._mapping) for row in rows]


async def deltas_until(watch: Watch, version: int) -> list[int]:
    """The versions the stream sends until it reaches `version` (each run checked)."""
    seen: list[int] = []
    while watch.last < version:
        item = await watch.next(timeout=10)
        assert isinstance(item, Run), item
        seen.extend(delta.version for delta in item.deltas)
    return seen


async def test_a_stream_handed_a_later_change_first_reads_the_missing_ones(
    db: Database, inventory: Inventory
) -> None:
    feed = PlaceFeed(db)
    async with feed.watch("s1") as watch:
        snapshot = await watch.next(timeout=10)
        assert isinstance(snapshot, Snapshot)
        start = snapshot.seat_map.version
        first = await hold(inventory, "o1", "A-1")
        second = await hold(inventory, "o2", "A-2")
        third = await hold(inventory, "o3", "A-3")
        # only the third is handed over (the others' hand-offs lost, as from another replica
        # whose wake-up never came): the stream must not skip the first two
        feed.committed(["s1"], await logged(db, third))
        assert await deltas_until(watch, third) == list(range(start + 1, third + 1))
        assert first < second < third
        # the reader's own reads later bring nothing twice
        feed.announce(["s1"])
        fourth = await hold(inventory, "o4", "B-1")
        feed.announce(["s1"])
        assert await deltas_until(watch, fourth) == [fourth]


async def test_hand_offs_out_of_commit_order_are_sent_in_version_order_once(
    db: Database, inventory: Inventory
) -> None:
    feed = PlaceFeed(db)
    async with feed.watch("s1") as watch:
        snapshot = await watch.next(timeout=10)
        assert isinstance(snapshot, Snapshot)
        start = snapshot.seat_map.version
        first = await hold(inventory, "o1", "A-1")
        second = await hold(inventory, "o2", "A-2")
        third = await hold(inventory, "o3", "A-3")
        # two transactions commit in turn and their after-commit hand-offs come reversed,
        # while the stream is busy elsewhere (both wait for it)
        feed.committed(["s1"], await logged(db, third))
        feed.committed(["s1"], await logged(db, second))
        feed.committed(["s1"], await logged(db, first))
        assert await deltas_until(watch, third) == list(range(start + 1, third + 1))


@pytest.mark.parametrize("backlog", [3, 100])
async def test_a_stream_that_falls_behind_its_backlog_gets_a_snapshot(
    db: Database, inventory: Inventory, backlog: int
) -> None:
    feed = PlaceFeed(db, backlog=backlog)
    async with feed.watch("s1") as watch:
        snapshot = await watch.next(timeout=10)
        assert isinstance(snapshot, Snapshot)
        start = snapshot.seat_map.version
        for n in range(1, 6):  # five changes handed over while the client reads nothing
            version = await hold(inventory, f"o{n}", f"A-{n}")
            feed.committed(["s1"], await logged(db, version))
        item = await watch.next(timeout=10)
        if backlog < 5:
            assert isinstance(item, Snapshot), "the backlog must not grow past its bound"
            assert item.seat_map.version == version
            assert item.seat_map.seats["main-A-5"] == "HELD"
            assert watch.resyncs == 1
        else:  # the negative control: within the backlog, every change, none skipped
            assert isinstance(item, Run)
            assert [d.version for d in item.deltas] == list(range(start + 1, version + 1))
            assert watch.resyncs == 0
        # either way the stream goes on from there, change by change
        later = await hold(inventory, "o9", "C-1")
        feed.committed(["s1"], await logged(db, later))
        assert await deltas_until(watch, later) == [later]


async def test_joiners_at_one_version_share_one_snapshot_and_never_get_an_older_one(
    db: Database, inventory: Inventory
) -> None:
    feed = PlaceFeed(db)
    async with feed.watch("s1") as first, feed.watch("s1") as second:
        one = await first.next(timeout=10)
        same = await second.next(timeout=10)
        assert isinstance(one, Snapshot)
        assert same is one, "the map was read again for a joiner at the same version"
        assert one.encoded("k", lambda: "x") == one.encoded("k", lambda: "y") == "x"

        # changed in this process: handed over, the next joiner's map is read anew
        held = await hold(inventory, "o1", "A-1")
        feed.committed(["s1"], await logged(db, held))
        assert await deltas_until(first, held) == [held]
        async with feed.watch("s1") as third:
            after = await third.next(timeout=10)
        assert isinstance(after, Snapshot)
        assert after.seat_map.version == held
        assert after.seat_map.seats["main-A-1"] == "HELD"

        # changed elsewhere, no wake-up here yet: a joiner still gets the current map
        elsewhere = await hold(inventory, "o2", "A-2")
        async with feed.watch("s1") as fourth:
            latest = await fourth.next(timeout=10)
        assert isinstance(latest, Snapshot)
        assert latest.seat_map.version == elsewhere
        assert latest.seat_map.seats["main-A-2"] == "HELD"
        # and the streams already open hear of it without a wake-up from the other replica
        assert await deltas_until(first, elsewhere) == [elsewhere]
