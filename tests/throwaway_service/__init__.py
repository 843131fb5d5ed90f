"""A service that exists only in the tests: built from its spec alone, as a new bounded context
would be, to prove that a package and a registry entry are all a service needs. It hears every
product catalog lists and answers, at `/api/echo/products/{product_id}`, the name it heard."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table, insert, select

from agora.contracts import catalog
from agora.messaging import Event, Handler, Infrastructure, Service, UnitOfWork
from agora.problems import NotFound
from agora.services.spec import ServiceContext, ServiceSpec, service_dependency

metadata = MetaData()
heard = Table(
    "heard",
    metadata,
    Column("product_id", String, primary_key=True),
    Column("name", String, nullable=False),
)


async def on_product_listed(event: catalog.ProductListed, uow: UnitOfWork) -> None:
    await uow.conn.execute(insert(heard).values(product_id=event.product_id, name=event.name))


HANDLERS: Mapping[type[Event], Handler[Any]] = {catalog.ProductListed: on_product_listed}


class EchoService(Service):
    name = "echo"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, infrastructure: Infrastructure) -> None:
        super().__init__(infrastructure, metadata)
        self.platform.subscribe(HANDLERS, self.unit_of_work)


EchoServiceDep = Annotated[EchoService, Depends(service_dependency(EchoService))]


class HeardOut(BaseModel):
    product_id: str
    name: str


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/echo", tags=["echo"])

    @router.get("/products/{product_id}", response_model=HeardOut)
    async def heard_of(service: EchoServiceDep, product_id: str) -> HeardOut:
        async with service.platform.db.read() as conn:
            row = (
                await conn.execute(select(heard).where(heard.c.product_id == product_id))
            ).first()
        if row is None:
            raise NotFound("not-heard", "Not heard of", f"no ProductListed for {product_id} yet")
        return HeardOut(product_id=row.product_id, name=row.name)

    return router


def bootstrap(context: ServiceContext) -> EchoService:
    return EchoService(context.infrastructure)


SPEC = ServiceSpec(
    name="echo",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/echo",),
    consumer_groups=("echo",),
)
