"""A venue's seating plan: our own JSON format, published as a JSON Schema (`plan_json_schema`).

A plan names its price `categories`, lays out numbered seats in `zones` of `rows`, and counts
unnumbered places in `areas` (standing, a lawn). Order carries meaning, and the best-available
search relies on it: a zone lists its rows in order of preference (the first row is the best),
a row lists its seats in physical order (neighbours in the list sit side by side).

The models check what a JSON Schema cannot say: every seat id appears once in the whole plan
(and is no area's id), zone ids are unique, row ids are unique within their zone, categories are
unique and every seat and area has one of them. A broken seat is reported at the seat: the
error's `loc` is the path to it (`zones.0.rows.2.seats.7.category`), and its message names it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agora.contracts.types import RequestModel

__all__ = [
    "MAX_AREAS",
    "MAX_CATEGORIES",
    "MAX_ROWS_PER_ZONE",
    "MAX_SEATS",
    "MAX_SEATS_PER_ROW",
    "MAX_ZONES",
    "Area",
    "Row",
    "Seat",
    "SeatingPlan",
    "Zone",
    "plan_json_schema",
    "rows_plan",
]

MAX_SEATS: Final = 100_000
MAX_ROWS_PER_ZONE: Final = 1_000
MAX_SEATS_PER_ROW: Final = 1_000
MAX_CATEGORIES: Final = 100
MAX_AREAS: Final = 100
MAX_ZONES: Final = 1_000
MAX_COORDINATE: Final = 100_000
MAX_CAPACITY: Final = 1_000_000

SCHEMA_ID: Final = "urn:agora:schema:seating-plan:1"

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


def _printable(value: str) -> str:
    if not value.isprintable() or not value.strip():
        raise PydanticCustomError(
            "label_not_printable", "must be printable characters, not only spaces"
        )
    return value


Label = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_printable)]
Coordinate = Annotated[float, Field(ge=0, le=MAX_COORDINATE, allow_inf_nan=False)]


@dataclasses.dataclass
class _PlanScope:
    """What a plan's validation has seen so far. Pydantic validates a model's fields in their
    declared order, each nested model in full before the next field, so a seat is checked
    against the plan's categories and the seats before it while its own path is the error's
    `loc`."""

    categories: frozenset[str] | None = None
    seats: dict[str, str] = dataclasses.field(default_factory=dict)
    areas: set[str] = dataclasses.field(default_factory=set)
    zones: set[str] = dataclasses.field(default_factory=set)
    rows: set[str] = dataclasses.field(default_factory=set)
    # The zone, row, and seat or area being validated, for messages; "?" (or "a seat") until
    # its id is read, and when the id itself is invalid.
    zone: str = "?"
    row: str = "?"
    owner: str = "?"

    def place(self) -> str:
        return f"zone '{self.zone}' row '{self.row}'"

    def check_category(self, category: str) -> None:
        if self.categories is not None and category not in self.categories:
            raise PydanticCustomError(
                "seating_category_unknown",
                "{owner} has unknown category '{category}'",
                {"owner": self.owner, "category": category},
            )


# Set only while a SeatingPlan validates: a Seat or Row built on its own has nothing to check.
_scope: ContextVar[_PlanScope | None] = ContextVar("seating_plan_scope", default=None)


class _PlanModel(RequestModel):
    # Nested instances are validated again inside a plan, so a plan built from ready-made Zones
    # is checked as strictly as one parsed from JSON.
    model_config = ConfigDict(frozen=True, revalidate_instances="always")


class Seat(_PlanModel):
    """One numbered seat. `x`/`y` place it on the venue's drawing (0..100,000, any unit)."""

    id: Id
    label: Label
    category: Id
    x: Coordinate
    y: Coordinate

    @model_validator(mode="before")
    @classmethod
    def _entering(cls, data: Any) -> Any:
        # Forget the previous one's id, so that no message names a neighbour.
        if scope := _scope.get():
            scope.owner = "a seat"
        return data

    @field_validator("id")
    @classmethod
    def _id_once(cls, value: str) -> str:
        scope = _scope.get()
        if scope is None:
            return value
        scope.owner = f"seat '{value}'"
        if value in scope.seats:
            raise PydanticCustomError(
                "seating_seat_duplicate",
                "seat '{seat}' appears twice ({first} and {second})",
                {"seat": value, "first": scope.seats[value], "second": scope.place()},
            )
        scope.seats[value] = scope.place()
        return value

    @field_validator("category")
    @classmethod
    def _category_known(cls, value: str) -> str:
        if scope := _scope.get():
            scope.check_category(value)
        return value


class Row(_PlanModel):
    """A row of seats, listed in physical order: seats next to each other in `seats` sit side by
    side, so a run of the list is a run of neighbours."""

    id: Id
    label: Label
    seats: list[Seat] = Field(min_length=1, max_length=MAX_SEATS_PER_ROW)

    @model_validator(mode="before")
    @classmethod
    def _entering(cls, data: Any) -> Any:
        # Forget the previous one's id, so that no message names a neighbour.
        if scope := _scope.get():
            scope.row = "?"
        return data

    @field_validator("id")
    @classmethod
    def _id_once_in_zone(cls, value: str) -> str:
        scope = _scope.get()
        if scope is None:
            return value
        scope.row = value
        if value in scope.rows:
            raise PydanticCustomError(
                "seating_row_duplicate",
                "row '{row}' appears twice in zone '{zone}'",
                {"row": value, "zone": scope.zone},
            )
        scope.rows.add(value)
        return value


class Zone(_PlanModel):
    """A part of the venue (stalls, balcony). Its rows are listed in order of preference: the
    first row is the best, and best-available fills the earliest row that fits."""

    id: Id
    name: Label
    rows: list[Row] = Field(min_length=1, max_length=MAX_ROWS_PER_ZONE)

    @model_validator(mode="before")
    @classmethod
    def _entering(cls, data: Any) -> Any:
        # Forget the previous one's id, so that no message names a neighbour.
        if scope := _scope.get():
            scope.zone = "?"
            scope.rows = set()
        return data

    @field_validator("id")
    @classmethod
    def _id_once(cls, value: str) -> str:
        scope = _scope.get()
        if scope is None:
            return value
        scope.zone = value
        if value in scope.zones:
            raise PydanticCustomError(
                "seating_zone_duplicate", "zone '{zone}' appears twice", {"zone": value}
            )
        scope.zones.add(value)
        return value


class Area(_PlanModel):
    """Unnumbered places of one category, such as a standing area: sold by count, not by seat."""

    id: Id
    name: Label
    category: Id
    capacity: int = Field(ge=1, le=MAX_CAPACITY)

    @model_validator(mode="before")
    @classmethod
    def _entering(cls, data: Any) -> Any:
        # Forget the previous one's id, so that no message names a neighbour.
        if scope := _scope.get():
            scope.owner = "an area"
        return data

    @field_validator("id")
    @classmethod
    def _id_once(cls, value: str) -> str:
        scope = _scope.get()
        if scope is None:
            return value
        scope.owner = f"area '{value}'"
        if value in scope.seats:
            raise PydanticCustomError(
                "seating_area_is_seat",
                "area '{area}' has the id of the seat in {place}",
                {"area": value, "place": scope.seats[value]},
            )
        if value in scope.areas:
            raise PydanticCustomError(
                "seating_area_duplicate", "area '{area}' appears twice", {"area": value}
            )
        scope.areas.add(value)
        return value

    @field_validator("category")
    @classmethod
    def _category_known(cls, value: str) -> str:
        if scope := _scope.get():
            scope.check_category(value)
        return value


class SeatingPlan(_PlanModel):
    """A venue's plan: its price categories, its numbered seats by zone and row, and its
    unnumbered areas. It has at least one seat or one area, and at most 100,000 seats."""

    model_config = ConfigDict(
        title="Seating plan",
        json_schema_extra={
            "$id": SCHEMA_ID,
            "description": (
                "A venue's seating plan: price categories, numbered seats in zones of rows "
                "(rows in order of preference, seats in physical order) and unnumbered areas. "
                "Ids must also be unique (seats and areas across the plan, zones, rows within "
                "their zone) and every category must be declared; the service checks those."
            ),
        },
    )

    categories: list[Id] = Field(
        min_length=1, max_length=MAX_CATEGORIES, json_schema_extra={"uniqueItems": True}
    )
    zones: list[Zone] = Field(default_factory=list, max_length=MAX_ZONES)
    areas: list[Area] = Field(default_factory=list, max_length=MAX_AREAS)

    @model_validator(mode="wrap")
    @classmethod
    def _in_scope(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        token = _scope.set(_PlanScope())
        try:
            return handler(data)
        finally:
            _scope.reset(token)

    @field_validator("categories")
    @classmethod
    def _categories_once(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for category in value:
            if category in seen:
                raise PydanticCustomError(
                    "seating_category_duplicate",
                    "category '{category}' appears twice",
                    {"category": category},
                )
            seen.add(category)
        scope = _scope.get()
        if scope is not None:
            scope.categories = frozenset(value)
        return value

    @model_validator(mode="after")
    def _sized(self) -> SeatingPlan:
        count = self.seat_count
        if count == 0 and not self.areas:
            raise PydanticCustomError(
                "seating_plan_empty", "a seating plan has at least one seat or one area"
            )
        if count > MAX_SEATS:
            raise PydanticCustomError(
                "seating_plan_too_large",
                "a seating plan has at most {limit} seats; this one has {count}",
                {"limit": MAX_SEATS, "count": count},
            )
        return self

    def seats(self) -> Iterator[tuple[Zone, Row, Seat]]:
        """Every seat with its zone and row: zones in plan order, rows best first, seats in
        physical order."""
        for zone in self.zones:
            for row in zone.rows:
                for seat in row.seats:
                    yield zone, row, seat

    @property
    def seat_count(self) -> int:
        return sum(len(row.seats) for zone in self.zones for row in zone.rows)

    @property
    def capacity(self) -> int:
        """Everyone the venue holds: its seats and its areas' places."""
        return self.seat_count + sum(area.capacity for area in self.areas)


ROW_LETTERS = re.compile(r"([A-Z])-([A-Z])")
ROW_NUMBERS = re.compile(r"([1-9][0-9]{0,3})-([1-9][0-9]{0,3})")
GRID_STEP = 10


def _row_ids(rows: str) -> list[str]:
    if letters := ROW_LETTERS.fullmatch(rows):
        first, last = (ord(letter) for letter in letters.groups())
        ids = [chr(code) for code in range(first, last + 1)]
    elif numbers := ROW_NUMBERS.fullmatch(rows):
        first, last = (int(number) for number in numbers.groups())
        ids = [str(number) for number in range(first, last + 1)]
    else:
        ids = []
    if not ids:
        raise ValueError(
            f"rows {rows!r}: expected a range of single letters such as 'A-T' (A to Z) or of "
            "numbers such as '1-40', first to last"
        )
    return ids


def rows_plan(
    rows: str, seats_per_row: int, *, category: str = "standard", zone: str = "main"
) -> SeatingPlan:
    """A plan of one zone of `rows` ("A-T" or "1-40", the first the best) of `seats_per_row`
    seats each, all of `category`. Seat ids are "{zone}-{row}-{n}", numbered from 1 left to
    right, on a grid of 10 units."""
    if not 1 <= seats_per_row <= MAX_SEATS_PER_ROW:
        raise ValueError(f"seats_per_row must be 1 to {MAX_SEATS_PER_ROW}, not {seats_per_row}")
    plan = {
        "categories": [category],
        "zones": [
            {
                "id": zone,
                "name": zone,
                "rows": [
                    {
                        "id": row,
                        "label": row,
                        "seats": [
                            {
                                "id": f"{zone}-{row}-{number}",
                                "label": str(number),
                                "category": category,
                                "x": number * GRID_STEP,
                                "y": (index + 1) * GRID_STEP,
                            }
                            for number in range(1, seats_per_row + 1)
                        ],
                    }
                    for index, row in enumerate(_row_ids(rows))
                ],
            }
        ],
    }
    return SeatingPlan.model_validate(plan)


def plan_json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of a seating plan."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **SeatingPlan.model_json_schema(),
    }
