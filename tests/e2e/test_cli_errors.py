"""The `agora` command on a user's mistake: one line on stderr naming it, a non-zero exit, no
traceback, and nothing started (no "API on http://..." announced)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from agora.runtime.supervisor import LOOPBACK, free_port
from harness import AgoraProcess, product

pytestmark = [pytest.mark.e2e]

# The console script the package installs, beside the interpreter running the tests.
AGORA = str(Path(sys.executable).with_name("agora"))


def agora(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `agora ARGS`; a mistake not caught up front would start a server and time out."""
    return subprocess.run(
        [AGORA, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "AGORA_LOG_LEVEL": "WARNING", **env},
        timeout=60,
        check=False,
    )


def up(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    port = str(free_port(LOOPBACK))
    return agora("up", "--data-dir", str(data_dir), "--port", port, *args, **env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "API on http://" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("agora: "), line
    for name in names:
        assert name in line, line
    return line


def test_a_missing_seed_file_is_named(tmp_path: Path) -> None:
    seed = tmp_path / "missing.json"
    line = assert_one_line_error(up(tmp_path / "data", "--seed", str(seed)), str(seed))
    assert "No such file" in line


def test_a_seed_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    seed = tmp_path / "catalog.json"
    seed.write_text("products: mug, lamp\n")
    line = assert_one_line_error(up(tmp_path / "data", "--seed", str(seed)), str(seed))
    assert "JSON" in line


def test_a_seed_file_of_the_wrong_shape_names_the_field(tmp_path: Path) -> None:
    seed = tmp_path / "catalog.json"
    good = product("mug", 5)
    seed.write_bytes(orjson.dumps([good, {**good, "id": "lamp", "stock": -1}]))
    assert_one_line_error(up(tmp_path / "data", "--seed", str(seed)), str(seed), "[1].stock")


def test_a_second_up_on_a_data_folder_in_use_says_so(
    agora_factory: Callable[..., AgoraProcess],
) -> None:
    running = agora_factory([product("mug", 5)])
    result = up(running.data_dir)
    assert_one_line_error(result, "another agora process is using", str(running.data_dir))
    assert running.client.get("/api/products").status_code == 200  # the first one is unharmed


def test_a_data_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")
    assert_one_line_error(up(not_a_folder), str(not_a_folder))


def test_an_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    assert_one_line_error(up(tmp_path / "data", AGORA_HOLD_SECONDS="-5"), "AGORA_HOLD_SECONDS")
    assert_one_line_error(up(tmp_path / "data", "--hold-seconds", "0"), "--hold-seconds")


def test_serve_with_an_invalid_seed_file_says_so(tmp_path: Path) -> None:
    seed = tmp_path / "catalog.json"
    seed.write_text("[")
    port = str(free_port(LOOPBACK))
    result = agora(
        "serve", "catalog", "--port", port, AGORA_SEED_FILE=str(seed), AGORA_DATA_DIR=str(tmp_path)
    )
    assert_one_line_error(result, str(seed))


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_port(LOOPBACK)  # nothing listens: refused
    url = f"postgresql+asyncpg://agora@{LOOPBACK}:{port}/{{service}}"
    for command in (("outbox", "status"), ("check",), ("ledger", "check")):
        result = agora(*command, AGORA_DATABASE_URL_TEMPLATE=url)
        assert_one_line_error(result, command[-1], f"{LOOPBACK}', {port})")


def test_a_check_of_a_folder_without_data_says_so(tmp_path: Path) -> None:
    for command in (("check",), ("ledger", "check")):
        result = agora(*command, "--data-dir", str(tmp_path))
        assert_one_line_error(result, "no Agora data", str(tmp_path))
        assert list(tmp_path.iterdir()) == []  # nothing created


def test_an_unreachable_kafka_is_one_line(tmp_path: Path) -> None:
    bootstrap = f"{LOOPBACK}:{free_port(LOOPBACK)}"
    for command in (("dlt", "list"), ("dlt", "replay")):
        result = agora(*command, AGORA_KAFKA_BOOTSTRAP=bootstrap)
        assert_one_line_error(result, "dead letters", bootstrap)


def test_migrate_on_the_embedded_default_creates_the_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    result = agora("migrate", AGORA_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (data_dir / "orders.db").exists()
