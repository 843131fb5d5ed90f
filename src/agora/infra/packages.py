"""Debian packages the servers need, installed with apt-get."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from agora.infra.errors import InfraError
from agora.infra.processes import is_root, run_logged, say

__all__ = ["apt_install"]


def apt_install(packages: Iterable[str], *, log: Path) -> None:
    """Install Debian packages non-interactively (`apt-get install -y`), refreshing the package
    lists once if the first try fails. Raises `InfraError` if not root or if it fails."""
    wanted = sorted(set(packages))
    if not wanted:
        return
    if not is_root():
        raise InfraError(
            f"missing {', '.join(wanted)}: install with `sudo apt-get install -y "
            f"{' '.join(wanted)}` (only root can install packages)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=300",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        *wanted,
    ]
    say(f"installing Debian packages: {' '.join(wanted)} (log {log})")
    try:
        run_logged(install, log=log, what="apt-get install", env=env, timeout=1200)
    except InfraError:
        say("apt-get install failed; refreshing the package lists (apt-get update) and retrying")
        run_logged(["apt-get", "update", "-q"], log=log, what="apt-get update", env=env)
        run_logged(install, log=log, what="apt-get install", env=env, timeout=1200)
