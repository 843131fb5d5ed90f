"""`./dev` finds uv where pip puts it instead of installing it again on every call.

Each case runs a copy of the script in a folder of its own, whose environment is already
installed (its stamp matches the lock), with a PATH that holds no uv and a `python3` that logs
each call and installs uv the way `pip install --user` does: into `$(python3 -m site
--user-base)/bin`. The script's own commands run as they would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL_UV = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")

# Stands in for python3 on PATH: `-m pip install ...uv...` puts uv into the user base's bin as
# pip would (and logs it); anything else runs the real interpreter.
PYTHON3 = f"""#!/bin/sh
echo "python3 $*" >> "$DEV_TEST_LOG"
if [ "$1 $2 $3" = "-m pip install" ]; then
  base=$("{sys.executable}" -m site --user-base)
  mkdir -p "$base/bin" && ln -sf "{REAL_UV}" "$base/bin/uv"
  exit 0
fi
exec "{sys.executable}" "$@"
"""


class Checkout:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "checkout"
        self.root.mkdir()
        for name in ("dev", "requirements.lock", "pyproject.toml"):
            shutil.copy2(ROOT / name, self.root / name)
        bin_dir = self.root / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").symlink_to(sys.executable)
        agora = bin_dir / "agora"
        agora.write_text('#!/bin/sh\necho "agora $*"\n')
        agora.chmod(0o755)
        stamp = subprocess.run(
            "sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16",
            shell=True,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (self.root / ".venv" / ".lock-sha").write_text(stamp)
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.tools = tmp_path / "tools"
        self.tools.mkdir()
        python3 = self.tools / "python3"
        python3.write_text(PYTHON3)
        python3.chmod(0o755)
        self.log = tmp_path / "calls.log"
        self.log.touch()
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{self.tools}:/usr/bin:/bin",
            "DEV_TEST_LOG": str(self.log),
        }

    def dev(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / "dev"), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def pip_calls(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "-m pip" in line]


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    found = subprocess.run(
        ["sh", "-c", "command -v uv"], env={"PATH": "/usr/bin:/bin"}, capture_output=True
    )
    assert found.returncode != 0, "uv on /usr/bin or /bin: these cases cannot hide it"
    return Checkout(tmp_path)


def test_uv_in_the_user_bin_off_path_is_used(checkout: Checkout) -> None:
    user_bin = checkout.home / ".local" / "bin"
    user_bin.mkdir(parents=True)
    (user_bin / "uv").symlink_to(REAL_UV)
    result = checkout.dev("up", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "agora up --help\n"
    assert checkout.pip_calls() == []
    assert "installing uv" not in result.stderr


def test_uv_in_another_user_base_is_used(checkout: Checkout, tmp_path: Path) -> None:
    base = tmp_path / "user-base"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "uv").symlink_to(REAL_UV)
    result = checkout.dev("up", "--help", PYTHONUSERBASE=str(base))
    assert result.returncode == 0, result.stderr
    assert checkout.pip_calls() == []


def test_uv_is_installed_once(checkout: Checkout) -> None:
    first = checkout.dev("up", "--help")
    assert first.returncode == 0, first.stderr
    assert "installing uv" in first.stderr
    assert len(checkout.pip_calls()) == 1
    for _ in range(2):
        again = checkout.dev("up", "--help")
        assert again.returncode == 0, again.stderr
        assert "installing uv" not in again.stderr
    assert len(checkout.pip_calls()) == 1
