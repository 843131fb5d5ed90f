"""`agora dlt`: dead letters, listed and replayed."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer

from agora import contracts
from agora.cli.settings import DataDir, require_data, settings_from
from agora.settings import Settings

dlt_app = typer.Typer(help="Dead letters: events no consumer could apply.", no_args_is_help=True)


async def _with_log(settings: Settings, work):  # type: ignore[no-untyped-def]
    """Run `work(log)` on the log the settings name: the embedded file, or Kafka."""
    from agora.runtime.runtime import build_log

    log = build_log(settings)
    await log.open()
    try:
        return await work(log)
    finally:
        await log.close()


Topic = Annotated[
    str | None, typer.Option(help=f"One of {', '.join(contracts.TOPICS)} (default: all)")
]


def _topics(topic: str | None) -> list[str]:
    if topic is None:
        return list(contracts.TOPICS)
    if topic not in contracts.TOPICS:
        typer.echo(
            f"agora: unknown topic {topic!r}; topics: {', '.join(contracts.TOPICS)}", err=True
        )
        raise typer.Exit(2)
    return [topic]


@dlt_app.command("list")
def dlt_list(
    data_dir: DataDir = None,
    topic: Topic = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List dead letters, with the error that sent each there."""
    from agora.messaging import list_dead_letters

    settings = settings_from(data_dir=data_dir)
    require_data(settings)
    letters = asyncio.run(_with_log(settings, lambda log: list_dead_letters(log, _topics(topic))))
    if as_json:
        for letter in letters:
            typer.echo(
                orjson.dumps(
                    {
                        "topic": letter.topic,
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "key": letter.key,
                        "group": letter.group,
                        "error": letter.error,
                        "attempts": letter.attempts,
                        "failed_at": letter.failed_at,
                        "replayed": letter.replayed,
                    }
                )
            )
        return
    if not letters:
        typer.echo("no dead letters")
        return
    for letter in letters:
        state = "replayed" if letter.replayed else "pending"
        typer.echo(
            f"{letter.topic}[{letter.partition}]@{letter.offset} key={letter.key} "
            f"group={letter.group} attempts={letter.attempts} {state}\n    {letter.error}"
        )


@dlt_app.command("replay")
def dlt_replay(data_dir: DataDir = None, topic: Topic = None) -> None:
    """Deliver dead letters not yet replayed to their topic again (consumers that applied them
    already skip them)."""
    from agora.messaging import replay_dead_letters

    settings = settings_from(data_dir=data_dir)
    require_data(settings)
    count = asyncio.run(_with_log(settings, lambda log: replay_dead_letters(log, _topics(topic))))
    typer.echo(f"replayed {count} dead letter{'s' if count != 1 else ''}")
