"""The one list of services: every consumer of it sees the same services, and each spec says
what its service really is."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

import agora.services
from agora.runtime.runtime import Runtime
from agora.services.registry import SERVICE_NAMES, SERVICES, spec_of
from agora.services.spec import PathTable, ServiceSpec
from agora.settings import Settings


def test_every_service_package_is_registered_once() -> None:
    services_dir = Path(agora.services.__file__).parent
    packages = {
        f"agora.services.{path.name}"
        for path in services_dir.iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    }
    assert sorted(spec.package for spec in SERVICES) == sorted(packages)
    assert len(set(SERVICE_NAMES)) == len(SERVICES)


def test_spec_of_names_the_services_when_unknown() -> None:
    assert spec_of("orders").name == "orders"
    with pytest.raises(ValueError, match="services: identity, catalog"):
        spec_of("no-such-service")


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/api/orders", "orders"),
        ("/api/orders/0193/pay", "orders"),
        ("/api/orders/0193/timeline", "analytics"),
        ("/api/orders/0193/timeline/x", "analytics"),
        ("/api/orderswhatever", None),
        ("/api/products/p-1", "catalog"),
        ("/api/stores", "catalog"),
        ("/.well-known/jwks.json", "identity"),
        ("/api/stock/p-1", "inventory"),
        ("/api/payments/o-1", "payments"),
        ("/api/notifications", "notifications"),
        ("/api/nothing", None),
        ("/", None),
    ],
)
def test_the_path_table_gives_each_path_its_owner(path: str, owner: str | None) -> None:
    assert PathTable(SERVICES).service_for(path) == owner


def test_two_services_cannot_claim_one_path() -> None:
    orders = spec_of("orders")
    clone = ServiceSpec(
        name="clone",
        package="clone",
        bootstrap=orders.bootstrap,
        router=orders.router,
        paths=("/api/orders",),
    )
    with pytest.raises(ValueError, match="claimed by orders and clone"):
        PathTable([*SERVICES, clone])


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_each_route_of_a_service_is_on_a_path_it_owns(spec: ServiceSpec) -> None:
    table = PathTable(SERVICES)
    app = FastAPI()
    app.include_router(spec.router())
    paths = list(app.openapi()["paths"])
    assert paths
    assert {path: table.service_for(path) for path in paths} == dict.fromkeys(paths, spec.name)


def test_a_spec_names_the_consumer_groups_and_workers_its_service_runs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, smtp_host="127.0.0.1", seed_file=None)
    runtime = Runtime(settings)
    for spec, service in zip(runtime.specs, runtime.services, strict=True):
        assert service.name == spec.name
        groups = {runner.group for runner in service.platform.runners}
        loops = {loop.name for loop in service.platform.loops}
        assert groups == set(spec.consumer_groups), spec.name
        assert loops == {f"{spec.name}.outbox-relay", *(f"{spec.name}.{w}" for w in spec.workers)}


def test_the_architecture_page_describes_every_registered_service() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    table = page.split("| service | owns", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert [row.split("|")[1].strip() for row in rows] == list(SERVICE_NAMES)
