"""`agora up` on servers plans one child per service replica, the gateway process and nginx in
front of them: each Python process gets the settings, and the `process_env` of its own name
only; nginx takes the settings' port and sends each service's paths to its replicas."""

from __future__ import annotations

from agora.runtime.supervisor import plan
from agora.settings import Settings


def test_process_env_reaches_the_processes_it_names_only() -> None:
    settings = Settings(
        replicas=2,
        process_env={"orders": {"FAKETIME": "+180s"}, "gateway": {"EXTRA": "1"}},
    )
    children = plan(settings, ["orders", "inventory"]).children
    by_name: dict[str, list[dict[str, str]]] = {}
    for child in children:
        by_name.setdefault(child.name, []).append(child.env)
    assert [len(by_name[name]) for name in ("orders", "inventory", "gateway", "nginx")] == [
        2,
        2,
        1,
        1,
    ]
    assert all(env["FAKETIME"] == "+180s" for env in by_name["orders"])
    assert not any("FAKETIME" in env for env in by_name["inventory"] + by_name["gateway"])
    assert by_name["gateway"][0]["EXTRA"] == "1"
    assert not any("EXTRA" in env for env in by_name["orders"] + by_name["inventory"])


def test_nginx_takes_the_port_and_each_replica_its_own() -> None:
    settings = Settings(replicas=2, port=18123)
    planned = plan(settings, ["orders", "inventory"])
    *python, entry = planned.children
    assert entry.name == "nginx"
    assert entry.port == 18123
    assert entry.command is not None
    assert "-c" in entry.command
    assert all(child.port != 18123 for child in python)
    assert all(child.env["AGORA_BEHIND_PROXY"] == "true" for child in python)
    assert "listen 127.0.0.1:18123" in planned.nginx_config
    for child in python:
        assert f"server 127.0.0.1:{child.port} " in planned.nginx_config
