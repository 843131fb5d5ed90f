"""Fuzz the HTTP API against its own OpenAPI description (schemathesis, property based).

Whatever schemathesis sends, valid or not, the API must never fail with a 5xx, and every 4xx must
be an RFC 9457 problem. Schemathesis drives the app in process, through its lifespan (which
starts the runtime), on an event loop of its own; the run is seeded and bounded. Every operation
is fuzzed three times: anonymously, as a buyer and as a seller (with a store of its own), so that
the requests reach past authentication into the services.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.python import asgi

from agora.runtime.runtime import Runtime
from agora.settings import Settings

PROBLEM_JSON = "application/problem+json"
EXAMPLES_PER_OPERATION = 25

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same cases on every run
    database=None,  # no .hypothesis folder
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=False,
)


@pytest.fixture(autouse=True)
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis caches constants it collects in its home folder: keep it out of the project."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture
def app(runtime_settings: Settings) -> Iterator[FastAPI]:
    app = Runtime(runtime_settings).app()
    yield app
    asgi.shutdown_lifespans()  # the app's lifespan: stops the runtime schemathesis started


def wait_until_stocked(app: FastAPI, timeout: float = 15.0) -> None:
    with asgi.get_client(app) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = client.get("/api/products").json()["items"]
            if items and all(item["available"] > 0 for item in items):
                return
            time.sleep(0.02)
    raise AssertionError(f"the catalog was not stocked within {timeout}s")


def sessions(app: FastAPI) -> dict[str, dict[str, str]]:
    """The headers of each caller the run plays: anonymous, a buyer, a seller with a store."""
    callers: dict[str, dict[str, str]] = {"anonymous": {}}
    with asgi.get_client(app) as client:
        for role in ("buyer", "seller"):
            account = {"email": f"fuzz-{role}@example.test", "password": "fuzzing password"}
            registered = client.post("/api/auth/register", json={**account, "role": role})
            assert registered.status_code == 202, registered.text
            login = client.post("/api/auth/login", json=account)
            assert login.status_code == 200, login.text
            callers[role] = {"Authorization": f"Bearer {login.json()['access_token']}"}
        store = client.post("/api/stores", json={"name": "Fuzzed"}, headers=callers["seller"])
        assert store.status_code == 201, store.text
    return callers


def check(response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:2000]}"
    if 400 <= status < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM_JSON), f"{status} as {content_type}"
        problem = response.json()
        assert problem["status"] == status
        assert str(problem["type"]).startswith("/problems/")
        assert problem["title"]
        assert problem["detail"]


def fuzzer(
    cases: st.SearchStrategy[schemathesis.Case], headers: dict[str, str], seen: set[int]
) -> Callable[[], None]:
    @FUZZ_SETTINGS
    @given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        # the caller's own credentials over whatever Authorization schemathesis made up
        case.headers = {**(case.headers or {}), **headers}
        response = case.call()
        seen.add(response.status_code)
        check(response)

    return fuzz


@pytest.mark.slow
def test_the_api_survives_fuzzing_of_its_own_spec(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    wait_until_stocked(app)
    callers = sessions(app)
    # Logging out revokes the session it is sent with: that operation goes last. (Logging in
    # again instead would not do: the fuzzed failed logins throttle this client.)
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: op.label == "POST /api/auth/logout",
    )
    assert {op.label for op in operations} >= {
        "POST /api/orders",
        "GET /api/orders/{order_id}",
        "POST /api/orders/{order_id}/pay",
        "GET /api/products",
    }

    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        has_inputs = any(operation.iter_parameters()) or len(operation.body) > 0
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_inputs else [])
        for (caller, headers), mode in itertools.product(callers.items(), modes):
            seen = statuses.setdefault(f"{operation.label} as {caller}", set())
            try:
                fuzzer(operation.as_strategy(generation_mode=mode), headers, seen)()
            except Exception as error:  # a failed check, or the app's own crash (a 500)
                failures.append(
                    f"{operation.label} ({mode}, as {caller}): {type(error).__name__}: {error}"
                )

    assert not failures, "\n\n".join(failures)
    # The run reached past validation: some requests were accepted, some refused.
    every_status = set().union(*statuses.values())
    assert any(200 <= s < 300 for s in every_status), statuses
    assert any(400 <= s < 500 for s in every_status), statuses
    # Authenticated, the callers got past the door: some of their requests were taken.
    for caller in ("buyer", "seller"):
        theirs = set().union(*(seen for label, seen in statuses.items() if label.endswith(caller)))
        assert any(200 <= s < 300 for s in theirs), (caller, statuses)
    # and past the role check to the orders service's own refusals (unknown products)
    assert 422 in statuses["POST /api/orders as buyer"], statuses
