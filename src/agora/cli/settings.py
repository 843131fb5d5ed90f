"""What every command shares: settings from the environment and the flags, the data folder."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from agora.settings import Settings

__all__ = [
    "DataDir",
    "configure_logging",
    "fail",
    "reported_as",
    "require_data",
    "settings_from",
]

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder of the embedded default's files [env AGORA_DATA_DIR]"),
]


# Flags named otherwise than their setting.
_FLAG_OF = {"seed_file": "--seed"}


def settings_from(**overrides: object) -> Settings:
    """Settings from the environment, with the flags given on the command line on top. An
    invalid value ends the command with one line naming its variable or flag (exit status 2)."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings.model_validate({**Settings().model_dump(), **given})
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        source = (
            _FLAG_OF.get(name, f"--{name.replace('_', '-')}")
            if name in given
            else f"{Settings.model_config['env_prefix']}{name.upper()}"
        )
        fail(f"{source}: {first['msg']} (got {first['input']!r})", status=2)
    except SettingsError as error:
        fail(str(error), status=2)


@contextlib.contextmanager
def reported_as(what: str) -> Iterator[None]:
    """A server that cannot be reached or that fails the request (a database, Kafka) ends the
    command with one line: `agora: WHAT: the error`."""
    from aiokafka.errors import KafkaError
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as error:
        fail(f"{what}: {type(error.orig).__name__}: {error.orig}")
    except (OSError, KafkaError) as error:
        text = str(error).replace("\n", " ")
        kind = type(error).__name__
        fail(f"{what}: {text}" if text.startswith(kind) else f"{what}: {kind}: {text}")


def fail(message: str, *, status: int = 1) -> NoReturn:
    """End the command: `message` as one line on stderr, exit status `status`."""
    typer.echo(f"agora: {message}", err=True)
    raise typer.Exit(status)


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
