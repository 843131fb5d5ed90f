"""Best available: each rule by example, then as properties checked against a brute force over
every choice in small rows.

A row is drawn as text, one character a seat in physical order: "." free of the category asked
for, "x" taken, "b" free but of another category. Seat ids are the row's key and the position.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from agora.services.inventory.seating import (
    MAX_BEST_AVAILABLE,
    RowState,
    SeatState,
    best_available,
)

CATEGORY = "a"
PROPERTY_SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # the same cases on every run
    database=None,  # no .hypothesis folder
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=False,
)


@pytest.fixture(autouse=True, scope="module")
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis caches constants it collects in its home folder: keep it out of the project."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


def row(key: str, drawing: str) -> RowState:
    return RowState(
        key,
        tuple(
            SeatState(f"{key}{index}", "b" if mark == "b" else CATEGORY, mark != "x")
            for index, mark in enumerate(drawing)
        ),
    )


def plan(*drawings: str) -> list[RowState]:
    return [row(chr(ord("A") + number), drawing) for number, drawing in enumerate(drawings)]


def ids(key: str, *positions: int) -> tuple[str, ...]:
    return tuple(f"{key}{position}" for position in positions)


# -- Rule 1: together, in the best row, closest to the centre --------------------------------


def test_a_group_sits_together_in_the_first_row_with_room() -> None:
    rows = plan("xxxxxxxx", "xx.xx...", "........")
    assert best_available(rows, 3, CATEGORY) == ids("B", 5, 6, 7)


def test_the_block_closest_to_the_centre_of_the_row_wins() -> None:
    assert best_available(plan("........"), 2, CATEGORY) == ids("A", 3, 4)
    assert best_available(plan("..........."), 3, CATEGORY) == ids("A", 4, 5, 6)
    # The run near the centre beats the longer one at the end.
    assert best_available(plan("....x..xx....."), 2, CATEGORY) == ids("A", 5, 6)


def test_a_centre_between_two_blocks_goes_to_the_left_one() -> None:
    assert best_available(plan("..xx.."), 2, CATEGORY) == ids("A", 0, 1)


def test_seats_of_another_category_count_as_taken() -> None:
    rows = plan("bb..bb", "..bb..", "bbbb....")
    assert best_available(rows, 2, CATEGORY) == ids("A", 2, 3)
    assert best_available(rows, 3, CATEGORY) == ids("C", 4, 5, 6)
    assert best_available(plan("bbbb"), 1, CATEGORY) is None


# -- Rule 2: no stranded single seat ---------------------------------------------------------


def test_a_block_moves_off_centre_rather_than_strand_a_seat() -> None:
    # Centred, two of five would leave seat 0 alone; at an end they leave three together.
    assert best_available(plan("....."), 2, CATEGORY) == ids("A", 0, 1)
    # Centred, two in "x.....x" leave one seat on one side.
    assert best_available(plan("x.....x"), 2, CATEGORY) == ids("A", 1, 2)


def test_a_later_row_without_a_gap_beats_an_earlier_row_with_one() -> None:
    rows = plan("x....x", "xxxxxx", "x...xx")
    assert best_available(rows, 3, CATEGORY) == ids("C", 1, 2, 3)


def test_a_stranded_seat_is_accepted_when_every_block_strands_one() -> None:
    rows = plan("x....x", "x....x")
    assert best_available(rows, 3, CATEGORY) in {ids("A", 1, 2, 3), ids("A", 2, 3, 4)}


def test_a_single_seat_goes_to_the_end_of_a_run_rather_than_next_to_it() -> None:
    assert best_available(plan("x....x"), 1, CATEGORY) == ids("A", 1)


# -- Split: as few rows as possible, best rows first ----------------------------------------


def test_a_group_too_big_for_any_row_is_split_over_the_fewest_rows() -> None:
    # No row holds six together; two rows hold them, and rows A and B are the best two.
    rows = plan("..x..", "..x..", "xxxxx", "x....", "....x")
    assert best_available(rows, 6, CATEGORY) == (*ids("A", 0, 1, 3, 4), *ids("B", 0, 1))


def test_the_split_keeps_to_the_best_rows_that_suffice() -> None:
    # No row holds seven; B and C do, so the group stays out of row D (six together).
    rows = plan("xx..xx", "x....x", "x..x.x", "......")
    assert best_available(rows, 7, CATEGORY) == (*ids("B", 1, 2, 3, 4), *ids("C", 1, 2, 4))


def test_the_split_fills_the_best_row_and_places_the_rest_as_a_block() -> None:
    rows = plan("...x..", "......")
    # B's three go to an end rather than strand seat 0 or 5.
    assert best_available(rows, 8, CATEGORY) == (*ids("A", 0, 1, 2, 4, 5), *ids("B", 0, 1, 2))


def test_a_split_row_gives_its_longest_runs_first() -> None:
    rows = plan("x.x...x..", "x.x...x..")
    # Ten of the twelve: all of A, then B's run of three and its lone seat 1, rather than half
    # of the pair at 7-8.
    picked = best_available(rows, 10, CATEGORY)
    assert picked == (*ids("A", 1, 3, 4, 5, 7, 8), *ids("B", 1, 3, 4, 5))


def test_not_enough_free_seats_is_none() -> None:
    assert best_available(plan("x.x", ".xb"), 3, CATEGORY) is None
    assert best_available([], 1, CATEGORY) is None
    assert best_available(plan(""), 1, CATEGORY) is None


@pytest.mark.parametrize("quantity", [0, -1, MAX_BEST_AVAILABLE + 1])
def test_a_quantity_out_of_range_is_refused(quantity: int) -> None:
    with pytest.raises(ValueError, match=f"1 to {MAX_BEST_AVAILABLE}"):
        best_available(plan("...."), quantity, CATEGORY)


# -- Properties, against a brute force -------------------------------------------------------


def is_free(drawing: str, index: int) -> bool:
    return 0 <= index < len(drawing) and drawing[index] == "."


def strands(drawing: str, start: int, stop: int) -> bool:
    """Whether taking [start, stop) leaves a single free seat next to it."""
    left = is_free(drawing, start - 1) and not is_free(drawing, start - 2)
    right = is_free(drawing, stop) and not is_free(drawing, stop + 1)
    return left or right


def blocks(drawing: str, quantity: int) -> Iterator[int]:
    for start in range(len(drawing) - quantity + 1):
        if all(is_free(drawing, index) for index in range(start, start + quantity)):
            yield start


def positions(picked: tuple[str, ...]) -> dict[str, list[int]]:
    by_row: dict[str, list[int]] = {}
    for seat in picked:
        by_row.setdefault(seat[0], []).append(int(seat[1:]))
    return by_row


drawings = st.lists(st.text(alphabet=".xb", max_size=10), min_size=0, max_size=5)
quantities = st.integers(min_value=1, max_value=6)


@PROPERTY_SETTINGS
@given(drawings, quantities)
def test_the_answer_is_exactly_quantity_free_seats_or_none(drawn: list[str], quantity: int) -> None:
    rows = plan(*drawn)
    free = {seat.seat_id for r in rows for seat in r.seats if seat.free and seat.category == "a"}
    picked = best_available(rows, quantity, CATEGORY)
    if len(free) < quantity:
        assert picked is None
    else:
        assert picked is not None
        assert len(picked) == quantity
        assert len(set(picked)) == quantity
        assert set(picked) <= free


@PROPERTY_SETTINGS
@given(drawings, quantities)
def test_a_group_sits_together_whenever_a_row_allows(drawn: list[str], quantity: int) -> None:
    choices = [(r, start) for r, drawing in enumerate(drawn) for start in blocks(drawing, quantity)]
    picked = best_available(plan(*drawn), quantity, CATEGORY)
    if not choices:
        return
    assert picked is not None
    by_row = positions(picked)
    assert len(by_row) == 1
    (seats,) = by_row.values()
    assert seats == list(range(seats[0], seats[0] + quantity))


@PROPERTY_SETTINGS
@given(drawings, quantities)
def test_no_seat_is_stranded_when_a_block_without_one_exists(
    drawn: list[str], quantity: int
) -> None:
    clean = [
        (r, start)
        for r, drawing in enumerate(drawn)
        for start in blocks(drawing, quantity)
        if not strands(drawing, start, start + quantity)
    ]
    picked = best_available(plan(*drawn), quantity, CATEGORY)
    if not clean:
        return
    assert picked is not None
    ((key, seats),) = positions(picked).items()
    r = ord(key) - ord("A")
    assert not strands(drawn[r], seats[0], seats[-1] + 1)
    # Then the best row, then the closest to its centre.
    best_row = min(choice[0] for choice in clean)
    assert r == best_row
    width = len(drawn[r])
    distance = min(abs(2 * start + quantity - width) for row_, start in clean if row_ == r)
    assert abs(2 * seats[0] + quantity - width) == distance


@PROPERTY_SETTINGS
@given(drawings, quantities)
def test_a_split_uses_the_fewest_rows(drawn: list[str], quantity: int) -> None:
    if any(True for drawing in drawn for _ in blocks(drawing, quantity)):
        return
    picked = best_available(plan(*drawn), quantity, CATEGORY)
    if picked is None:
        return
    free = [drawing.count(".") for drawing in drawn]
    fewest = next(
        size
        for size in range(1, len(drawn) + 1)
        if any(sum(combo) >= quantity for combo in itertools.combinations(free, size))
    )
    assert len(positions(picked)) == fewest


def test_a_long_plan_in_an_on_sale_is_answered() -> None:
    # 10,000 seats in rows of 30, all but the last row sold: the search reads every row once.
    rows = [row(f"R{number:03}-", "x" * 30) for number in range(333)]
    rows.append(row("Z", "." * 30))
    assert best_available(rows, 4, CATEGORY) == ids("Z", 13, 14, 15, 16)
