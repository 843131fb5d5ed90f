"""Best available: which free seats of a category a session offers an order, without I/O.

Inventory keeps a session's seats row by row, rows in order of preference and each row's seats
in physical order (as a `SeatingPlan` lists them), and asks for `quantity` seats of a category.
The rules, each before the next:

1. Together: every seat in one row, as a run of neighbours, when any row has such a run.
2. No stranded seat: a choice never leaves a single free seat of the category between a taken
   seat (sold, held, or of another category) or the row's end and the chosen block, when
   another choice of the same kind exists. So a later row that fits the group without a gap
   beats an earlier row that only fits it with one.
3. Best first: the earliest row, then the block closest to the row's centre (then the leftmost).

When no row has room for everyone, the group is split across as few rows as possible: of the
sets of that many rows that hold it, the one whose worst row is the best (then the same for the
others). The best rows give all their free seats, as whole runs, which strand nobody; the worst
row gives the rest as a block by the rules above where one run holds it, else in as few runs
as it can.

The search is called under the session's lock for every order during an on-sale, so it reads
each seat at most once on the way and stops at the first row that satisfies rules 1 and 2.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence
from typing import Final

__all__ = ["MAX_BEST_AVAILABLE", "RowState", "SeatState", "best_available"]

MAX_BEST_AVAILABLE: Final = 20
"""The most seats one best-available request may ask for."""


@dataclasses.dataclass(frozen=True, slots=True)
class SeatState:
    seat_id: str
    category: str
    free: bool


@dataclasses.dataclass(frozen=True, slots=True)
class RowState:
    """A row's seats in physical order: neighbours in `seats` sit side by side."""

    key: str
    seats: tuple[SeatState, ...]


# A run of free seats of the category, as [start, stop) indices into the row's seats.
Run = tuple[int, int]


def best_available(
    rows: Sequence[RowState], quantity: int, category: str
) -> tuple[str, ...] | None:
    """The ids of the `quantity` best free seats of `category` (see the module's rules), row by
    row in order of preference and in physical order within a row; None if fewer are free."""
    if not 1 <= quantity <= MAX_BEST_AVAILABLE:
        raise ValueError(f"quantity must be 1 to {MAX_BEST_AVAILABLE}, not {quantity}")
    every_row_runs: list[list[Run]] = []
    together: tuple[str, ...] | None = None
    for row in rows:
        runs = _runs(row, category)
        every_row_runs.append(runs)
        block = _block(runs, quantity, len(row.seats))
        if block is None:
            continue
        start, gap_free = block
        if gap_free:
            return _ids(row, [(start, start + quantity)])
        if together is None:
            together = _ids(row, [(start, start + quantity)])
    if together is not None:
        return together
    return _split(rows, every_row_runs, quantity)


def _runs(row: RowState, category: str) -> list[Run]:
    runs: list[Run] = []
    start = -1
    for index, seat in enumerate(row.seats):
        if seat.free and seat.category == category:
            if start < 0:
                start = index
        elif start >= 0:
            runs.append((start, index))
            start = -1
    if start >= 0:
        runs.append((start, len(row.seats)))
    return runs


def _block(runs: list[Run], quantity: int, width: int) -> tuple[int, bool] | None:
    """The start of the best block of `quantity` neighbours within `runs` in a row of `width`
    seats, and whether it strands no single seat: the closest to the row's centre of those that
    strand none, else of all; None if no run is long enough."""
    best: tuple[bool, int, int] | None = None
    for start, stop in runs:
        first, last = start, stop - quantity
        if last < first:
            continue
        # The block centred on the row starts at (width - quantity) / 2; the nearest allowed
        # start is that one clamped into the run, or a step or two away from it when the step
        # would strand a seat at one end, or one of the run's ends.
        centred = min(max((width - quantity) // 2, first), last)
        for offset in (centred, centred + 1, centred - 1, centred + 2, centred - 2, first, last):
            if not first <= offset <= last:
                continue
            strands = offset - first == 1 or last - offset == 1
            # Doubled, so that a centre between two seats stays an integer.
            key = (strands, abs(2 * offset + quantity - width), offset)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], not best[0])


def _split(
    rows: Sequence[RowState], every_row_runs: list[list[Run]], quantity: int
) -> tuple[str, ...] | None:
    free = [sum(stop - start for start, stop in runs) for runs in every_row_runs]
    if sum(free) < quantity:
        return None
    seats: list[str] = []
    need = quantity
    # Best row first: every row but the worst gives all its free seats (whole runs, which
    # strand nothing), the worst gives the rest.
    for index in _fewest_rows(free, quantity):
        row = rows[index]
        share = min(free[index], need)
        seats.extend(_ids(row, _share(every_row_runs[index], share, len(row.seats))))
        need -= share
    return tuple(seats)


def _fewest_rows(free: list[int], quantity: int) -> list[int]:
    """The indices (best first) of the fewest rows whose `free` seats add up to `quantity`:
    of those sets, the one whose worst row is the best, then the same for the rest."""
    rows_needed = 0
    total = 0
    for count in sorted(free, reverse=True):
        if total >= quantity:
            break
        total += count
        rows_needed += 1
    chosen: list[int] = []
    need, limit = quantity, len(free)
    while need > 0:
        # The shortest prefix of rows whose `rows_needed` largest counts reach `need` ends
        # with a row every such set needs; what it lacks comes from before it.
        largest: list[int] = []
        total = 0
        for index in range(limit):
            count = free[index]
            if len(largest) < rows_needed:
                heapq.heappush(largest, count)
                total += count
            elif count > largest[0]:
                total += count - heapq.heapreplace(largest, count)
            if total >= need:
                break
        chosen.append(index)
        need -= free[index]
        rows_needed -= 1
        limit = index
    return sorted(chosen)


def _share(runs: list[Run], count: int, width: int) -> list[Run]:
    """`count` free seats of a row as few blocks as it allows: whole runs, largest first, until
    one run holds the rest, placed as a block of rule 1 in that row."""
    blocks: list[Run] = []
    left = sorted(runs, key=lambda run: run[0] - run[1])
    while count > 0:
        holding = [run for run in left if run[1] - run[0] >= count]
        if holding:
            block = _block(holding, count, width)
            assert block is not None, "a run holds the rest"
            blocks.append((block[0], block[0] + count))
            break
        run = left.pop(0)
        blocks.append(run)
        count -= run[1] - run[0]
    return sorted(blocks)


def _ids(row: RowState, blocks: list[Run]) -> tuple[str, ...]:
    return tuple(row.seats[index].seat_id for start, stop in blocks for index in range(start, stop))
