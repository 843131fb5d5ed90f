"""Alembic's environment for every service: the connection and the target schema come from
`agora.messaging.migrations`, which runs Alembic inside the service's own transaction."""

from alembic import context

from agora.messaging.migrations import managed_names

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=config.attributes["target_metadata"],
    include_name=managed_names(config.attributes["target_metadata"]),
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
