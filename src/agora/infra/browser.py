"""Chromium for the browser tests: Debian's `chromium` package, installed like the servers'
packages by `agora infra up`. Nothing runs here: a test launches the browser itself, headless,
from `find_chromium()`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from agora.infra.state import ServerStatus

__all__ = ["PACKAGE", "Chromium", "find_chromium"]

PACKAGE = "chromium"
DEBIAN_PATH = Path("/usr/bin/chromium")


def find_chromium() -> str | None:
    """Debian's /usr/bin/chromium, else a `chromium` on PATH, else None."""
    if DEBIAN_PATH.exists():
        return str(DEBIAN_PATH)
    return shutil.which("chromium")


class Chromium:
    """The browser the tests drive: installed or not, and which version."""

    def missing_packages(self) -> list[str]:
        """["chromium"] if the browser is not installed, else []."""
        return [] if find_chromium() else [PACKAGE]

    def version(self) -> str | None:
        """What `chromium --version` prints, or None if it is missing or does not answer."""
        binary = find_chromium()
        if binary is None:
            return None
        try:
            done = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None

    def status(self) -> ServerStatus:
        """`up` when the browser is installed and answers `--version`; its address is its path
        (it listens on nothing)."""
        version = self.version()
        return ServerStatus(
            "chromium",
            find_chromium() or str(DEBIAN_PATH),
            version is not None,
            detail=version or f"not installed (apt-get install -y {PACKAGE})",
        )
