"""nginx, the entry of `agora up` on servers: Debian's `nginx` package, installed like the
servers' packages by `agora infra up` and started by the supervisor with a configuration of its
own (`agora.gateway.nginx`)."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["PACKAGE", "find_nginx", "missing_packages"]

PACKAGE = "nginx"
DEBIAN_PATH = Path("/usr/sbin/nginx")


def find_nginx() -> str | None:
    """Debian's /usr/sbin/nginx, else an `nginx` on PATH, else None."""
    if DEBIAN_PATH.exists():
        return str(DEBIAN_PATH)
    return shutil.which("nginx")


def missing_packages() -> list[str]:
    """["nginx"] if it is not installed, else []."""
    return [] if find_nginx() else [PACKAGE]
