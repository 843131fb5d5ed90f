"""The compose file's nginx configuration is the one `agora nginx-config` makes for the compose
topology today: a service added to the registry (or a path to a spec) and not to the committed
file fails here. And every service of the registry has its container."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from agora.cli import app
from agora.services.registry import SERVICE_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict[str, dict[str, object]]:
    loaded: dict[str, dict[str, object]] = yaml.safe_load(
        (DEPLOY / "docker-compose.yml").read_text()
    )
    return loaded["services"]  # type: ignore[return-value]


def test_the_committed_nginx_config_is_the_one_made_for_the_compose_topology() -> None:
    gateway = compose()["gateway"]
    environment = gateway["environment"]
    assert isinstance(environment, dict)
    committed = (DEPLOY / "nginx.conf").read_text()
    made_by = committed.splitlines()[0]
    assert made_by.startswith("# Made by `agora nginx-config ")
    arguments = made_by.split("`")[1].split()[1:]
    made = CliRunner().invoke(
        app, arguments, env={"AGORA_UPSTREAMS": environment["AGORA_UPSTREAMS"]}
    )
    assert made.exit_code == 0, made.output
    assert made.output == committed, "deploy/nginx.conf is stale: make it again (its first line)"


def test_every_service_has_its_container_and_nginx_its_upstream() -> None:
    services = compose()
    config = (DEPLOY / "nginx.conf").read_text()
    for name in SERVICE_NAMES:
        assert services[name]["command"] == ["serve", name]
        assert f"upstream {name} {{" in config
