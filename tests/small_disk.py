"""A disk of a test's own to fill: a small tmpfs, mounted for the test (root only: elsewhere
the test fails saying so, it is not skipped), and a filler file that takes every free block."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> int:
        """Write the filler until the disk refuses a single block more; its size in bytes."""
        written = 0
        with self.filler.open("wb", buffering=0) as filler:
            for chunk in (1 << 20, 4096):
                block = b"\0" * chunk
                while True:
                    try:
                        written += filler.write(block) or 0
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        self.filler.unlink()


@contextlib.contextmanager
def mounted(path: Path, size: str) -> Iterator[SmallDisk]:
    """A tmpfs of `size` (`mount`'s notation: "64m") on `path` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.fail(
            f"this test mounts a tmpfs of its own and cannot: {mount.stderr.strip()} "
            "(it needs root, or CAP_SYS_ADMIN in a container)"
        )
    try:
        yield SmallDisk(path)
    finally:
        # Every file on it must be closed by now: a busy tmpfs is a leak to report.
        subprocess.run(["umount", str(path)], check=True, capture_output=True)
