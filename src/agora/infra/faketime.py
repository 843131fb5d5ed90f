"""libfaketime for the fault tests: Debian's `faketime` package, installed like the servers'
packages by `agora infra up`. Preloaded into one process (`agora up`'s `process_env`), it runs
that process's clock off by an offset while every other process keeps the host's."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE", "find_library", "missing_packages", "skewed_env"]

PACKAGE = "faketime"
LIBRARY_GLOB = "*/faketime/libfaketime.so.1"


def find_library() -> Path | None:
    """The preloadable library (under /usr/lib/<multiarch>/faketime), or None if missing."""
    return next(iter(sorted(Path("/usr/lib").glob(LIBRARY_GLOB))), None)


def missing_packages() -> list[str]:
    """["faketime"] if the library is not installed, else []."""
    return [] if find_library() else [PACKAGE]


def skewed_env(offset_seconds: float) -> dict[str, str]:
    """The environment that runs a process's wall clock `offset_seconds` off the host's (ahead
    when positive). Monotonic clocks stay the host's: timeouts and the event loop's schedule
    are unchanged, only what the process reads as the time of day."""
    library = find_library()
    if library is None:
        raise FileNotFoundError(f"libfaketime is not installed: apt-get install {PACKAGE}")
    return {
        "LD_PRELOAD": str(library),
        "FAKETIME": f"{offset_seconds:+.0f}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
