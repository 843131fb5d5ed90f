"""The architecture's import rules: services meet only through contracts and messaging."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import agora.services

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_independence_contract_names_every_service() -> None:
    """A new service folder must be added to the contract, or it could import any other."""
    services_dir = Path(agora.services.__file__).parent
    packages = {
        f"agora.services.{path.name}"
        for path in services_dir.iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    }
    independence = [c for c in contracts() if c["type"] == "independence"]

    assert len(packages) >= 6
    assert len(independence) == 1
    assert set(independence[0]["modules"]) == packages


def test_the_platform_and_contracts_may_not_import_services() -> None:
    forbidden = [c for c in contracts() if c["type"] == "forbidden"]
    assert len(forbidden) == 1
    assert set(forbidden[0]["source_modules"]) == {"agora.messaging", "agora.contracts"}
    assert {"agora.services", "agora.runtime"} <= set(forbidden[0]["forbidden_modules"])
