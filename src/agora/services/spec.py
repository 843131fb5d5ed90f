"""What a service tells the platform about itself.

Each service package exports one `ServiceSpec` as `SPEC`; `agora.services.registry` lists them,
and everything that needs to know the services reads that list: the runtime (which services to
build, their routers), the entry (which service owns a path), the supervisor (which processes to
start), the import contract and the docs. Adding a service is a package and one line there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from fastapi import APIRouter
from starlette.requests import HTTPConnection

from agora.messaging import Infrastructure, Service
from agora.settings import Settings
from agora.shared.cache import ReadCache
from agora.shared.revocations import Revocations

__all__ = ["PathTable", "ServiceContext", "ServiceSpec", "SharedState", "service_dependency"]

S = TypeVar("S", bound=Service)


class SharedState(Protocol):
    """The state a process's services share with its other processes (Redis on servers, an
    in-process twin on the embedded default), built once per process by the runtime."""

    @property
    def revocations(self) -> Revocations:
        """Revoked sessions, the list the process's token verifier consults."""
        ...

    def read_cache(self, namespace: str) -> ReadCache:
        """A read cache whose keys are apart from every other namespace's."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceContext:
    """What a runtime hands a service's bootstrap: the event platform's parts, the settings,
    and the shared state."""

    infrastructure: Infrastructure
    settings: Settings
    shared: SharedState


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service, as the platform sees it.

    `paths` are the HTTP paths the service owns, as templates: `/api/orders` owns that path and
    every path below it; `{name}` matches one segment, so analytics can own
    `/api/orders/{order_id}/timeline` under orders' prefix (the more specific template wins).
    `consumer_groups` and `workers` name what the built service runs (held to it by a test).
    """

    name: str
    package: str
    bootstrap: Callable[[ServiceContext], Service]
    router: Callable[[], APIRouter]
    paths: tuple[str, ...]
    consumer_groups: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()


def service_dependency(kind: type[S]) -> Callable[[HTTPConnection], S]:
    """A FastAPI dependency giving the running `kind` service of the app serving the request
    (the runtime keeps its services in `app.state.services` by name); a WebSocket's too."""
    name = kind.name

    def dependency(request: HTTPConnection) -> S:
        service = request.app.state.services[name]
        if not isinstance(service, kind):
            raise TypeError(f"app.state.services[{name!r}] is a {type(service).__name__}")
        return service

    return dependency


class PathTable:
    """Which service owns a request path, from the specs' `paths`."""

    def __init__(self, specs: Sequence[ServiceSpec]) -> None:
        rules: list[tuple[int, str, str]] = []
        owners: dict[str, str] = {}
        for spec in specs:
            for template in spec.paths:
                if template in owners:
                    raise ValueError(f"{template} is claimed by {owners[template]} and {spec.name}")
                owners[template] = spec.name
                pattern = self.pattern_of(template)
                # more segments first: a template under another's prefix is more specific
                rules.append((template.strip("/").count("/"), pattern, spec.name))
        rules.sort(key=lambda rule: -rule[0])
        self._patterns = [(pattern, name) for _, pattern, name in rules]
        self._rules = [(re.compile(pattern + "(?:/.*)?"), name) for pattern, name in self._patterns]

    @staticmethod
    def pattern_of(template: str) -> str:
        """The regular expression of the path `template` (a path below it is owned too)."""
        return "".join(
            "/[^/]+" if segment.startswith("{") else "/" + re.escape(segment)
            for segment in template.strip("/").split("/")
        )

    def patterns(self) -> list[tuple[str, str]]:
        """(pattern, service) by precedence: the first whose pattern matches a path, or the
        start of it up to a `/`, owns it (the entry proxy's routes, in this order)."""
        return list(self._patterns)

    def services(self) -> set[str]:
        return {name for _, name in self._patterns}

    def service_for(self, path: str) -> str | None:
        """The service that owns `path`, or None."""
        for pattern, name in self._rules:
            if pattern.fullmatch(path):
                return name
        return None
