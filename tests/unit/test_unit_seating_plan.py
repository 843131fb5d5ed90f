"""The seating plan format: what it accepts, each refusal naming what is wrong and where, its
limits, the rows-of-seats builder and the published JSON Schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from agora.contracts.seating import (
    MAX_SEATS,
    Row,
    Seat,
    SeatingPlan,
    Zone,
    plan_json_schema,
    rows_plan,
)


def seat(seat_id: str, category: str = "stalls", label: str = "1") -> dict[str, Any]:
    return {"id": seat_id, "label": label, "category": category, "x": 10, "y": 20.5}


def theatre() -> dict[str, Any]:
    return {
        "categories": ["stalls", "balcony", "standing"],
        "zones": [
            {
                "id": "stalls",
                "name": "Stalls",
                "rows": [
                    {"id": "A", "label": "A", "seats": [seat("stalls-A-1"), seat("stalls-A-2")]},
                    {"id": "B", "label": "B", "seats": [seat("stalls-B-1")]},
                ],
            },
            {
                "id": "balcony",
                "name": "Balcony",
                "rows": [{"id": "A", "label": "A", "seats": [seat("balcony-A-1", "balcony")]}],
            },
        ],
        "areas": [{"id": "standing", "name": "Standing", "category": "standing", "capacity": 500}],
    }


def errors(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    with pytest.raises(ValidationError) as caught:
        SeatingPlan.model_validate(data)
    return [(error["loc"], error["type"], error["msg"]) for error in caught.value.errors()]


# -- Valid plans ------------------------------------------------------------------------------


def test_a_plan_reads_from_json_and_counts_its_places() -> None:
    plan = SeatingPlan.model_validate_json(json.dumps(theatre()))
    assert plan.seat_count == 4
    assert plan.capacity == 504
    assert [(zone.id, row.id, seat.id) for zone, row, seat in plan.seats()] == [
        ("stalls", "A", "stalls-A-1"),
        ("stalls", "A", "stalls-A-2"),
        ("stalls", "B", "stalls-B-1"),
        ("balcony", "A", "balcony-A-1"),
    ]


def test_a_plan_round_trips_through_its_json() -> None:
    plan = SeatingPlan.model_validate(theatre())
    assert SeatingPlan.model_validate_json(plan.model_dump_json()) == plan


def test_a_plan_of_areas_only_or_seats_only_is_valid() -> None:
    data = theatre()
    assert SeatingPlan.model_validate({**data, "zones": []}).capacity == 500
    assert SeatingPlan.model_validate({**data, "areas": []}).capacity == 4


def test_row_ids_repeat_across_zones_and_labels_are_free_text() -> None:
    data = theatre()
    data["zones"][0]["name"] = "Parterre — côté jardin"
    assert SeatingPlan.model_validate(data).zones[1].rows[0].id == "A"


def test_a_plan_is_frozen() -> None:
    plan = SeatingPlan.model_validate(theatre())
    with pytest.raises(ValidationError, match="frozen"):
        plan.zones[0].rows[0].seats[0].x = 3  # type: ignore[misc]


# -- Each refusal names the offender, at its place ---------------------------------------------


def test_a_seat_id_twice_names_both_places() -> None:
    data = theatre()
    data["zones"][1]["rows"][0]["seats"].append(seat("stalls-A-1", "balcony"))
    assert errors(data) == [
        (
            ("zones", 1, "rows", 0, "seats", 1, "id"),
            "seating_seat_duplicate",
            "seat 'stalls-A-1' appears twice (zone 'stalls' row 'A' and zone 'balcony' row 'A')",
        )
    ]


def test_a_seat_of_an_unknown_category_is_named() -> None:
    data = theatre()
    data["zones"][0]["rows"][0]["seats"].append(seat("stalls-A-3", "vip"))
    assert errors(data) == [
        (
            ("zones", 0, "rows", 0, "seats", 2, "category"),
            "seating_category_unknown",
            "seat 'stalls-A-3' has unknown category 'vip'",
        )
    ]


def test_an_area_of_an_unknown_category_is_named() -> None:
    data = theatre()
    data["areas"][0]["category"] = "lawn"
    assert errors(data) == [
        (
            ("areas", 0, "category"),
            "seating_category_unknown",
            "area 'standing' has unknown category 'lawn'",
        )
    ]


def test_an_area_with_a_seat_id_is_named() -> None:
    data = theatre()
    data["areas"][0]["id"] = "stalls-B-1"
    assert errors(data) == [
        (
            ("areas", 0, "id"),
            "seating_area_is_seat",
            "area 'stalls-B-1' has the id of the seat in zone 'stalls' row 'B'",
        )
    ]


def test_an_area_twice_is_named() -> None:
    data = theatre()
    data["areas"].append(copy.deepcopy(data["areas"][0]))
    assert errors(data) == [
        (("areas", 1, "id"), "seating_area_duplicate", "area 'standing' appears twice")
    ]


def test_a_zone_twice_is_named() -> None:
    data = theatre()
    twin = copy.deepcopy(data["zones"][1])
    twin["rows"][0]["seats"] = [seat("balcony-A-9", "balcony")]
    data["zones"].append(twin)
    assert errors(data) == [
        (("zones", 2, "id"), "seating_zone_duplicate", "zone 'balcony' appears twice")
    ]


def test_a_row_twice_in_a_zone_is_named() -> None:
    data = theatre()
    data["zones"][0]["rows"][1]["id"] = "A"
    assert errors(data) == [
        (
            ("zones", 0, "rows", 1, "id"),
            "seating_row_duplicate",
            "row 'A' appears twice in zone 'stalls'",
        )
    ]


def test_a_category_twice_is_named() -> None:
    data = theatre()
    data["categories"].append("balcony")
    assert errors(data) == [
        (("categories",), "seating_category_duplicate", "category 'balcony' appears twice")
    ]


def test_every_broken_seat_is_reported_at_once() -> None:
    data = theatre()
    for broken in data["zones"][0]["rows"][0]["seats"]:
        broken["category"] = "vip"
    assert [loc for loc, _, _ in errors(data)] == [
        ("zones", 0, "rows", 0, "seats", 0, "category"),
        ("zones", 0, "rows", 0, "seats", 1, "category"),
    ]


def test_a_message_never_names_the_previous_seat() -> None:
    data = theatre()
    second = data["zones"][0]["rows"][0]["seats"][1]
    second["id"] = "bad id"
    second["category"] = "vip"
    assert errors(data)[1] == (
        ("zones", 0, "rows", 0, "seats", 1, "category"),
        "seating_category_unknown",
        "a seat has unknown category 'vip'",
    )


def test_a_plan_built_from_models_is_checked_too() -> None:
    row = Row(id="A", label="A", seats=[Seat(**seat("s-1")), Seat(**seat("s-1"))])
    with pytest.raises(ValidationError, match="seat 's-1' appears twice"):
        SeatingPlan(categories=["stalls"], zones=[Zone(id="z", name="Z", rows=[row])])


def test_an_empty_plan_is_refused() -> None:
    assert errors({"categories": ["stalls"]}) == [
        ((), "seating_plan_empty", "a seating plan has at least one seat or one area")
    ]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s.update(id="stalls A 1"), "id"),
        (lambda s: s.update(id="s" * 65), "id"),
        (lambda s: s.update(id=""), "id"),
        (lambda s: s.update(label=""), "label"),
        (lambda s: s.update(label="x" * 65), "label"),
        (lambda s: s.update(label="1\n"), "label"),
        (lambda s: s.update(label="   "), "label"),
        (lambda s: s.update(label="1\x00"), "label"),
        (lambda s: s.update(x=-1), "x"),
        (lambda s: s.update(y=100_000.5), "y"),
        (lambda s: s.update(x="10"), "x"),
        (lambda s: s.update(x=True), "x"),
        (lambda s: s.update(row="A"), "row"),
        (lambda s: s.pop("category"), "category"),
    ],
)
def test_a_malformed_seat_is_refused_at_its_field(change: Any, where: str) -> None:
    data = theatre()
    change(data["zones"][0]["rows"][1]["seats"][0])
    assert ("zones", 0, "rows", 1, "seats", 0, where) in [loc for loc, _, _ in errors(data)]


def test_an_area_capacity_is_bounded() -> None:
    for capacity in (0, 1_000_001, 1.5):
        data = theatre()
        data["areas"][0]["capacity"] = capacity
        assert [loc for loc, _, _ in errors(data)] == [("areas", 0, "capacity")]


def test_an_empty_zone_or_row_is_refused() -> None:
    data = theatre()
    data["zones"][0]["rows"][1]["seats"] = []
    data["zones"][1]["rows"] = []
    assert [loc for loc, _, _ in errors(data)] == [
        ("zones", 0, "rows", 1, "seats"),
        ("zones", 1, "rows"),
    ]


# -- Size limits -------------------------------------------------------------------------------


def test_a_row_holds_at_most_a_thousand_seats() -> None:
    data = theatre()
    data["zones"][0]["rows"][0]["seats"] = [seat(f"s-{n}") for n in range(1_001)]
    assert [loc for loc, _, _ in errors(data)] == [("zones", 0, "rows", 0, "seats")]


def test_a_zone_holds_at_most_a_thousand_rows() -> None:
    data = theatre()
    data["zones"][0]["rows"] = [
        {"id": f"r{n}", "label": "r", "seats": [seat(f"s-{n}")]} for n in range(1_001)
    ]
    assert [loc for loc, _, _ in errors(data)] == [("zones", 0, "rows")]


def test_categories_and_areas_are_at_most_a_hundred() -> None:
    data = theatre()
    data["categories"] = [f"c{n}" for n in range(101)]
    data["areas"] = [
        {"id": f"a{n}", "name": "A", "category": "standing", "capacity": 1} for n in range(101)
    ]
    assert [loc for loc, _, _ in errors(data)] == [("categories",), ("areas",)]


def test_a_plan_holds_at_most_a_hundred_thousand_seats() -> None:
    assert rows_plan("1-100", 1_000).seat_count == MAX_SEATS
    data = rows_plan("1-100", 1_000).model_dump()
    one_more = {"id": "A", "label": "A", "seats": [seat("one-more", "standard")]}
    data["zones"].append({"id": "box", "name": "Box", "rows": [one_more]})
    assert errors(data) == [
        (
            (),
            "seating_plan_too_large",
            "a seating plan has at most 100000 seats; this one has 100001",
        )
    ]


# -- rows_plan ---------------------------------------------------------------------------------


def test_rows_plan_lays_out_lettered_rows() -> None:
    plan = rows_plan("A-T", 30)
    assert plan.categories == ["standard"]
    (zone,) = plan.zones
    assert zone.id == "main"
    assert [row.id for row in zone.rows] == [chr(code) for code in range(ord("A"), ord("T") + 1)]
    assert plan.seat_count == 600
    first, second = zone.rows[0].seats[:2]
    assert (first.id, first.label, first.category) == ("main-A-1", "1", "standard")
    assert second.id == "main-A-2"
    assert second.x > first.x
    assert first.y == second.y < zone.rows[1].seats[0].y


def test_rows_plan_lays_out_numbered_rows_of_a_category_and_zone() -> None:
    plan = rows_plan("1-40", 12, category="stalls", zone="stalls")
    assert [row.id for row in plan.zones[0].rows] == [str(n) for n in range(1, 41)]
    assert plan.zones[0].rows[39].seats[11].id == "stalls-40-12"
    assert {seat.category for _, _, seat in plan.seats()} == {"stalls"}


@pytest.mark.parametrize(
    "rows", ["A-Z", "A-A", "1-1", "7-9"], ids=["A-Z", "one letter", "one number", "7-9"]
)
def test_rows_plan_accepts_single_letters_and_numbers(rows: str) -> None:
    assert rows_plan(rows, 1).seat_count >= 1


@pytest.mark.parametrize("rows", ["AA-AF", "T-A", "a-t", "A-9", "0-3", "01-10", "40-1", "A", ""])
def test_rows_plan_refuses_other_ranges_saying_what_it_accepts(rows: str) -> None:
    with pytest.raises(ValueError, match="'A-T' \\(A to Z\\) or of numbers such as '1-40'"):
        rows_plan(rows, 10)


@pytest.mark.parametrize("seats_per_row", [0, 1_001])
def test_rows_plan_refuses_a_row_size_out_of_range(seats_per_row: int) -> None:
    with pytest.raises(ValueError, match="seats_per_row must be 1 to 1000"):
        rows_plan("A-C", seats_per_row)


def test_rows_plan_refuses_a_zone_that_is_no_id() -> None:
    with pytest.raises(ValidationError, match=r"zones\.0\.id"):
        rows_plan("A-C", 3, zone="main hall")


# -- The JSON Schema ---------------------------------------------------------------------------


def test_the_schema_is_identified_and_described() -> None:
    schema = plan_json_schema()
    assert schema["$id"] == "urn:agora:schema:seating-plan:1"
    assert schema["title"] == "Seating plan"
    assert "order of preference" in schema["description"]
    jsonschema_rs.meta.validate(schema)


def test_rows_plan_and_the_example_validate_against_the_schema() -> None:
    validator = jsonschema_rs.validator_for(plan_json_schema())
    validator.validate(json.loads(rows_plan("A-T", 30).model_dump_json()))
    validator.validate(theatre())


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(extra=1),
        lambda p: p["zones"][0]["rows"][0]["seats"][0].update(x=-1),
        lambda p: p["zones"][0]["rows"][0]["seats"][0].update(id="a b"),
        lambda p: p["areas"][0].update(capacity=0),
        lambda p: p["categories"].append("stalls"),
    ],
    ids=["unknown field", "negative x", "bad id", "no capacity", "category twice"],
)
def test_the_schema_refuses_what_the_model_refuses(change: Any) -> None:
    data = theatre()
    change(data)
    assert not jsonschema_rs.validator_for(plan_json_schema()).is_valid(data)
    with pytest.raises(ValidationError):
        SeatingPlan.model_validate(data)
