"""`agora users` and `agora keys`: accounts and signing keys, written to the identity
service's database directly (whether or not Agora is running)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from agora.cli.settings import DataDir, settings_from
from agora.settings import Settings

if TYPE_CHECKING:
    from agora.services.identity.bootstrap import IdentityService

T = TypeVar("T")

users_app = typer.Typer(help="Accounts, in the identity service's database.", no_args_is_help=True)
keys_app = typer.Typer(help="The identity service's signing keys.", no_args_is_help=True)


async def _with_identity(settings: Settings, work: Callable[[IdentityService], Awaitable[T]]) -> T:
    """Run `work(service)` on the identity service's database (no server needed: it writes
    the database directly, whether or not Agora is running)."""
    from sqlalchemy.exc import DBAPIError

    from agora.runtime.runtime import Runtime
    from agora.services.identity.bootstrap import IdentityService

    if not settings.uses_servers:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, ["identity"])
    (service,) = runtime.services
    assert isinstance(service, IdentityService)
    try:
        if settings.should_migrate_on_start:
            await service.migrate()
        return await work(service)
    except DBAPIError as error:
        typer.echo(f"agora: identity's database: {error.orig!r} (run `agora migrate`?)", err=True)
        raise typer.Exit(1) from None
    finally:
        await service.platform.db.dispose()
        if runtime.redis is not None:
            await runtime.redis.aclose()


def _read_password(from_stdin: bool) -> str:
    from agora.services.identity.domain import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        typer.echo(
            f"agora: a password has {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters",
            err=True,
        )
        raise typer.Exit(2)
    return password


@users_app.command("create-admin")
def users_create_admin(
    email: Annotated[str, typer.Option(help="The admin's e-mail address")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an admin account (admins cannot register over HTTP)."""
    from agora.services.identity.domain import is_valid_email, normalise_email
    from agora.services.identity.handlers import EmailTaken

    if not is_valid_email(normalise_email(email)):
        typer.echo(f"agora: {email!r} is not a valid e-mail address", err=True)
        raise typer.Exit(2)
    password = _read_password(password_stdin)
    settings = settings_from(data_dir=data_dir)
    try:
        user = asyncio.run(
            _with_identity(settings, lambda service: service.handlers.create_admin(email, password))
        )
    except EmailTaken as error:
        typer.echo(f"agora: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created admin {user.email} (user id {user.id})")


@keys_app.command("rotate")
def keys_rotate(
    data_dir: DataDir = None,
    activate_after: Annotated[
        float,
        typer.Option(
            help="Seconds until the new key signs (it is published at once, so that every "
            "verifier knows it by then); 0 after a key leaked"
        ),
    ] = 30.0,
) -> None:
    """Add a signing key and retire the ones in use: tokens they signed stay valid until they
    expire; new tokens are signed with the new key once it is active."""
    import datetime as dt

    settings = settings_from(data_dir=data_dir)
    rotation = asyncio.run(
        _with_identity(
            settings,
            lambda service: service.keys.rotate(dt.timedelta(seconds=max(0.0, activate_after))),
        )
    )
    typer.echo(
        f"new signing key {rotation.new}, signing from {rotation.active_at.isoformat()}; "
        f"retired: {', '.join(rotation.retired) or 'none'}"
    )
