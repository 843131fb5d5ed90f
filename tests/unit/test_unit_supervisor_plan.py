"""`agora up` on servers plans one child per service replica and the gateway: each gets the
settings, and the `process_env` of its own name only."""

from __future__ import annotations

from agora.runtime.supervisor import plan
from agora.settings import Settings


def test_process_env_reaches_the_processes_it_names_only() -> None:
    settings = Settings(
        replicas=2,
        process_env={"orders": {"FAKETIME": "+180s"}, "gateway": {"EXTRA": "1"}},
    )
    children = plan(settings, ["orders", "inventory"])
    by_name: dict[str, list[dict[str, str]]] = {}
    for child in children:
        by_name.setdefault(child.name, []).append(child.env)
    assert [len(by_name[name]) for name in ("orders", "inventory", "gateway")] == [2, 2, 1]
    assert all(env["FAKETIME"] == "+180s" for env in by_name["orders"])
    assert not any("FAKETIME" in env for env in by_name["inventory"] + by_name["gateway"])
    assert by_name["gateway"][0]["EXTRA"] == "1"
    assert not any("EXTRA" in env for env in by_name["orders"] + by_name["inventory"])
