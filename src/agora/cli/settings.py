"""What every command shares: settings from the environment and the flags, the data folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from agora.runtime.settings import Settings

__all__ = ["DataDir", "configure_logging", "require_data", "settings_from"]

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder of the embedded default's files [env AGORA_DATA_DIR]"),
]


def settings_from(**overrides: object) -> Settings:
    """Settings from the environment, with the flags given on the command line on top."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return Settings.model_validate({**Settings().model_dump(), **given})


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def require_data(settings: Settings) -> None:
    """On the embedded default, the data folder must hold Agora's files (servers need none)."""
    if settings.uses_servers:
        return
    if not (settings.data_dir / "bus.db").exists():
        where = settings.data_dir.resolve()
        typer.echo(f"agora: no Agora data in {where} (see --data-dir)", err=True)
        raise typer.Exit(1)
