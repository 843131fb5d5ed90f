"""`agora.infra.infra_dir`: the directory a linked infra dir points to is the one used."""

from __future__ import annotations

from pathlib import Path

from agora.infra import infra_dir


def test_a_linked_infra_dir_is_its_target(tmp_path: Path) -> None:
    """A worktree's `.agora-infra` linking to a shared one must find the servers that were
    started there: they are recognised by the real path on their command lines."""
    shared = tmp_path / "main" / ".agora-infra"
    shared.mkdir(parents=True)
    link = tmp_path / "worktree" / ".agora-infra"
    link.parent.mkdir()
    link.symlink_to(shared)

    assert infra_dir(link) == shared.resolve()
