"""Alembic environment: always driven programmatically by `vault.storage.migrate`."""

from __future__ import annotations

from alembic import context

from vault.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="vault_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
