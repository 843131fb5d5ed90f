"""Fuzz the whole API through the entry of the servers topology (nginx in front of PostgreSQL,
Kafka, Redis and one process per service), as a buyer and as a seller, against the OpenAPI
document the gateway process serves. The embedded default is fuzzed in process
(tests/api/test_api_fuzz.py).

Whatever schemathesis sends, no answer is a 5xx and every 4xx is an RFC 9457 problem. The run is
seeded and bounded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode

from harness import PASSWORD, AgoraProcess, product, servers_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.kafka]

PROBLEM_JSON = "application/problem+json"

FUZZ_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=False,
)


@pytest.fixture(scope="module")
def agora(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgoraProcess]:
    process = AgoraProcess(
        tmp_path_factory.mktemp("fuzz") / "data",
        seed=[product("widget", 1_000)],
        env=servers_env(request),
    ).start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


def session(agora: AgoraProcess, role: str) -> dict[str, str]:
    email = f"fuzz-{role}-{uuid.uuid4().hex[:8]}@example.test"
    registered = agora.client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "role": role}
    )
    assert registered.status_code == 202, registered.text
    token = agora.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def check(response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:2000]}"
    if 400 <= status < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM_JSON), f"{status} as {content_type}"
        problem = response.json()
        assert problem["status"] == status
        assert str(problem["type"]).startswith("/problems/")


def fuzzer(
    cases: st.SearchStrategy[schemathesis.Case], headers: dict[str, str], seen: set[int]
) -> Callable[[], None]:
    @FUZZ_SETTINGS
    @given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        # the caller's token, unless the case is about a malformed Authorization itself
        response = case.call(headers={**headers, **(case.headers or {})}, timeout=30)
        seen.add(response.status_code)
        check(response)

    return fuzz


@pytest.mark.parametrize("role", ["buyer", "seller"])
def test_the_entry_survives_fuzzing_as_a_buyer_and_a_seller(agora: AgoraProcess, role: str) -> None:
    headers = session(agora, role)
    schema = schemathesis.openapi.from_url(f"{agora.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 15

    failures: list[str] = []
    statuses: set[int] = set()
    for operation in operations:
        has_inputs = any(operation.iter_parameters()) or len(operation.body) > 0
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_inputs else [])
        for mode in modes:
            try:
                fuzzer(operation.as_strategy(generation_mode=mode), headers, statuses)()
            except Exception as error:  # a failed check, or a crash upstream (a 5xx)
                failures.append(f"{operation.label} ({mode}): {type(error).__name__}: {error}")

    assert not failures, "\n\n".join(failures)
    assert any(200 <= s < 300 for s in statuses), statuses
    assert any(400 <= s < 500 for s in statuses), statuses


def test_a_header_that_is_not_ascii_passes_the_entry(agora: AgoraProcess) -> None:
    """`curl -A $'caf\\xc3\\xa9'` answered 500 from an earlier Python proxy at the entry."""
    response = agora.client.get("/api/products", headers={"User-Agent": "café".encode()})

    assert response.status_code == 200, response.text
    assert response.json()["items"]


def test_a_path_with_a_control_character_is_forwarded_as_it_came(agora: AgoraProcess) -> None:
    """An earlier Python proxy at the entry decoded the path and built the upstream URL again:
    a %1A in it was a 500."""
    response = agora.client.get("/api/products/a%1Ab")

    assert response.status_code == 404, response.text
    assert response.json()["type"] == "/problems/product-not-found"
