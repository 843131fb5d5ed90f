"""The architecture's import rules: services meet only through contracts and messaging, and
nothing below the entry imports it.

The contracts in pyproject.toml are checked with the registry's services added: the
independence of the services is generated from `agora.services.registry`, so a new service is
held to it by its one registry line.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from agora.services.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]

INDEPENDENCE = {
    "name": "Services talk only through contracts and messaging",
    "type": "independence",
    "modules": [spec.package for spec in SERVICES],
}


def declared_contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def as_ini(contracts: list[dict[str, Any]]) -> str:
    """import-linter's INI configuration of `contracts`."""
    lines = ["[importlinter]", "root_package = agora", ""]
    for number, contract in enumerate(contracts, start=1):
        lines.append(f"[importlinter:contract:{number}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines.extend(f"    {item}" for item in value)
            else:
                lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)


def test_import_contracts_are_kept(tmp_path: Path) -> None:
    config = tmp_path / "importlinter.ini"
    config.write_text(as_ini([INDEPENDENCE, *declared_contracts()]))
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(declared_contracts()) + 1} kept, 0 broken" in result.stdout


def test_the_platform_and_contracts_may_not_import_services() -> None:
    forbidden = [
        c
        for c in declared_contracts()
        if c["source_modules"] == ["agora.messaging", "agora.contracts"]
    ]
    assert len(forbidden) == 1
    assert {"agora.services", "agora.runtime"} <= set(forbidden[0]["forbidden_modules"])


def test_nothing_below_the_entry_imports_it() -> None:
    below = [c for c in declared_contracts() if "agora.gateway" in c.get("forbidden_modules", [])]
    assert len(below) == 1
    assert {"agora.services", "agora.shared", "agora.auth", "agora.messaging", "agora.web"} <= set(
        below[0]["source_modules"]
    )


def test_the_entry_imports_nothing_above_it() -> None:
    entry = [c for c in declared_contracts() if c["source_modules"] == ["agora.gateway"]]
    assert len(entry) == 1
    assert {"agora.runtime", "agora.cli"} <= set(entry[0]["forbidden_modules"])
