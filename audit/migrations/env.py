"""Alembic environment of the audit log: driven programmatically by `audit.migrate`."""

from __future__ import annotations

from alembic import context

from audit.db import VERSION_TABLE
from audit.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run audit migrations through audit.migrate(engine)")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
