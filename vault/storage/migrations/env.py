"""Alembic environment: always driven programmatically by `vault.storage.migrate`."""

from __future__ import annotations

from alembic import context

import vault.storage.consent_tables  # registers the consent tables on `metadata`
import vault.storage.customer_links  # registers the customer links on `metadata`
import vault.storage.events  # registers the outbox on `metadata`
import vault.storage.idempotency  # registers the idempotency keys on `metadata`
import vault.storage.policy_versions  # registers the policy versions on `metadata`
import vault.storage.retention_tables  # registers the retention tables on `metadata`
import vault.storage.subject_requests  # noqa: F401 - registers the data-subject requests on `metadata`
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
